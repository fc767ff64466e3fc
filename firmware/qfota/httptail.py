"""The rare endings of a response read through ``qfota.httpat``: a body without a length,
read up to the modem's trailer, and a body gone quiet, whose last bytes are read for the
modem's own lines (``OK``/``+QHTTPREAD: <err>`` after a short body, ``RDY`` and boot URCs
after a reboot). Loaded when one of them happens and let go after the request
(``compat.release``): on MicroPython code is heap.
"""

from qfota import urc
from qfota.at import text

REBOOTED = 1  # verdict(): RDY or a boot URC
READ = 2  # verdict(): +QHTTPREAD: <err>

_CR = 13
_LF = 10


def find_trailer(acc, scan, read_urc, most):
    """``(body_end, trailer_end, err)`` once ``acc`` holds the modem's trailer
    ``\\r\\nOK\\r\\n\\r\\n+QHTTPREAD: <err>\\r\\n`` (``read_urc``: its prefix; ``most``: its
    longest length), else ``(None, scan)``: where to look again when more came."""
    k = acc.find(b"\r\nOK\r\n", max(0, scan - most))
    while k >= 0:
        j = k + 6
        while j < len(acc) and acc[j] in (_CR, _LF):
            j += 1
        if len(acc) - j < len(read_urc) + 2:
            return None, k  # not all there yet
        if acc[j : j + len(read_urc)] == read_urc:
            e = acc.find(b"\r", j)
            if e < 0:
                e = acc.find(b"\n", j)
            if e < 0:
                return None, k
            try:
                err = int(bytes(acc[j + len(read_urc) : e]).strip())
            except ValueError:
                err = None
            if err is not None:
                if e + 1 < len(acc) and acc[e + 1] == _LF:
                    e += 1
                return k, e + 1, err
        k = acc.find(b"\r\nOK\r\n", k + 1)
    return None, len(acc)


def _lines(t, e):
    """The lines of ``t[:e]`` that CR/LF end on both sides (the first may be cut), last first."""
    if not e or t[e - 1] not in (_CR, _LF):
        return []
    out = []
    while True:
        while e and t[e - 1] in (_CR, _LF):
            e -= 1
        s = e
        while s and t[s - 1] not in (_CR, _LF):
            s -= 1
        if s == 0 or s == e:
            return out
        out.append(bytes(t[s:e]))
        e = s


def verdict(tail, n, parser, read_urc):
    """What the modem's own lines among the last ``n`` bytes of a quiet body say (other
    URCs may follow them): ``(REBOOTED, None)``, ``(READ, err)``, or None."""
    for line in _lines(tail, n):
        m = len(line)
        kind = parser.parse(line, m)
        if kind in (urc.RDY, urc.BOOT):
            return REBOOTED, None
        if urc.starts_with(line, 0, m, read_urc):
            try:
                return READ, int(text(line, m)[len(read_urc) :].strip())
            except ValueError:
                return None
    return None
