"""URC parser: classifies one line from the modem, allocating nothing.

Tolerates the shapes of docs/FIELD.md, "URC shapes": any spacing, spaces inside the quotes
(``" DOWNLOADING"``), any casing (``HTTPEnd``/``HTTPEND``), ``"HTTP END"`` with a space,
``37%`` and extra fields after the value. A FOTA line that cannot be read whole
(``+QIND: "FOTA","DOWNLOA``) is ``INCOMPLETE``: the caller logs it and goes on.

    >>> p = UrcParser()
    >>> line = b'+QIND: "FOTA"," DOWNLOADING",50'
    >>> p.parse(line, len(line)) == DOWNLOADING, p.value
    (True, 50)
"""

from qfota.compat import const

# Kinds. 0 is "not a URC this parser knows": the AT channel decides what it is.
NONE = const(0)
FTPSTART = const(1)
FTPEND = const(2)
HTTPSTART = const(3)
HTTPEND = const(4)
FILESTART = const(5)
FILEEND = const(6)
DOWNLOADING = const(7)
START = const(8)
UPDATING = const(9)
END = const(10)
RESTORE = const(11)
RDY = const(20)  # the module (re)booted
BOOT = const(21)  # other boot-time URCs: +CFUN, +CPIN, SMS DONE, APP RDY, ...
INCOMPLETE = const(30)  # a FOTA line we could not read whole

# Index = kind. Matched against the line with spaces and quotes removed, upper case.
NAMES = (
    b"",
    b"FTPSTART",
    b"FTPEND",
    b"HTTPSTART",
    b"HTTPEND",
    b"FILESTART",
    b"FILEEND",
    b"DOWNLOADING",
    b"START",
    b"UPDATING",
    b"END",
    b"RESTORE",
)
# Kinds whose URC carries a number; a line of these kinds without one is INCOMPLETE.
_NEEDS_VALUE = (FTPEND, HTTPEND, FILEEND, DOWNLOADING, UPDATING, END)

_QIND = b"+QIND:"
_FOTA = b"FOTA"
_BOOT_PREFIXES = (
    b"+CFUN:",
    b"+CPIN:",
    b"+QUSIM:",
    b"APP RDY",
    b"POWERED DOWN",
    b"NORMAL POWER DOWN",
)
_BOOT_QIND = (b"SMSDONE", b"PBDONE")

_SP = const(32)
_QUOTE = const(34)
_COMMA = const(44)


def _upper(c):
    return c - 32 if 97 <= c <= 122 else c


def starts_with(buf, s, n, prefix):
    """``buf[s:n]`` begins with ``prefix``, ignoring case."""
    m = len(prefix)
    if n - s < m:
        return False
    for i in range(m):
        if _upper(buf[s + i]) != _upper(prefix[i]):
            return False
    return True


def _match(buf, a, b, name):
    """``buf[a:b]`` equals ``name`` ignoring case, spaces and quotes."""
    j = 0
    m = len(name)
    for i in range(a, b):
        c = buf[i]
        if c == _SP or c == _QUOTE:
            continue
        if j >= m or _upper(c) != name[j]:
            return False
        j += 1
    return j == m


def _field_end(buf, a, n):
    while a < n and buf[a] != _COMMA:
        a += 1
    return a


class UrcParser:
    """``parse(buf, n)`` returns a kind; ``value`` holds the number, or -1."""

    def __init__(self):
        self.value = -1

    def parse(self, buf, n):
        self.value = -1
        s = 0
        while s < n and buf[s] == _SP:
            s += 1
        if n - s == 3 and _match(buf, s, n, b"RDY"):
            return RDY
        for p in _BOOT_PREFIXES:
            if starts_with(buf, s, n, p):
                return BOOT
        if not starts_with(buf, s, n, _QIND):
            return NONE
        # +QIND: <first>[,<name>[,<value>...]]
        a = s + len(_QIND)
        b = _field_end(buf, a, n)
        if not _match(buf, a, b, _FOTA):
            for q in _BOOT_QIND:
                if _match(buf, a, b, q):
                    return BOOT
            return NONE
        if b >= n:
            return INCOMPLETE
        a = b + 1
        b = _field_end(buf, a, n)
        kind = NONE
        for k in range(1, len(NAMES)):
            if _match(buf, a, b, NAMES[k]):
                kind = k
                break
        if kind == NONE:
            # "HTTP START"/"HTTP END" match above (spaces are skipped); anything
            # else is a FOTA line we do not understand.
            return INCOMPLETE
        if b < n:
            self.value = self._number(buf, b + 1, n)
        if self.value < 0 and kind in _NEEDS_VALUE:
            return INCOMPLETE
        return kind

    @staticmethod
    def _number(buf, a, n):
        while a < n and (buf[a] == _SP or buf[a] == _QUOTE):
            a += 1
        v = -1
        while a < n and 48 <= buf[a] <= 57:
            v = (0 if v < 0 else v * 10) + buf[a] - 48
            a += 1
            if v > 99999:  # no code or percent is this long: garbage
                return -1
        return v
