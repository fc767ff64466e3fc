"""The AT channel: one command in flight, its echo, its final answer, a bounded body.

    ch = AtChannel()
    out = ch.send(b"AT+QGMR")          # b"AT+QGMR\\r": the bytes to write
    ch.take(line, n)                   # each line from the modem while it waits
    -> NONE (echo, a body line, or not ours), OK, ERROR, CME, PROTO, GARBAGE

Final answers: ``OK``, ``ERROR``, ``+CME ERROR: <n>`` (``cme`` holds ``<n>``) and the
note's ``010003`` (protocol-download file mode). A line that begins with ``AT`` is an
echo (echo is on again after every reboot), this command's or a late one, and is dropped.
``body`` keeps at most ``BODY_MAX``
lines, only those beginning with ``prefix`` when one is given, so a chatty or broken
modem cannot grow memory while we wait. ``send`` allocates the line and ``take`` the
body lines it keeps; nothing else allocates.
"""

from qfota.compat import const
from qfota.urc import starts_with

NONE = const(0)
OK = const(1)
ERROR = const(2)
CME = const(3)
PROTO = const(4)  # 010003: the note's answer in protocol-download file mode
GARBAGE = const(5)  # an unprintable line, waiting or not: dropped (the session logs it)

# What a step of qfota.steps does on ERROR: stop; log it and go on; go on after an ERROR
# or no answer at all; keep sending until its wait runs out. Here, not in qfota.steps, so
# the session can read a step's row once the table itself is released (the stream's heap).
FAIL = const(0)
NEXT = const(1)
OPTIONAL = const(2)
RETRY = const(3)
SKIP = const(1)  # a reader's answer: the step after this one is not needed
# What a run cut in a step's stage leaves the modem doing (a row's "cut"): nothing of a
# transfer reached it; inside a FILE transfer; downloading by itself; maybe upgrading;
# the upgrade is over.
SAFE = const(0)
TRANSFER = const(1)
DOWNLOAD = const(2)
UPGRADE = const(3)
ENDED = const(4)

# A session's events: (EV_*, a, b), taken with Session.next_event(); their one home,
# beside the rows' constants, so qfota.recovery queues them too and the readers import them.
EV_STAGE = const(1)  # a: stage name
EV_REVISION = const(2)  # a: "before" | "after", b: revision
EV_SENT = const(3)  # a: package bytes sent, b: total
EV_DOWNLOADING = const(4)  # a: URC index, b: download_URC_max
EV_UPDATING = const(5)  # a: URC index, b: update_URC_max
EV_LOG = const(6)  # a: text (a line not understood, a warning)
EV_REBOOT = const(7)  # a: reboots seen since AT+QFOTADL
EV_TX = const(8)  # a: command line sent (redacted)
EV_RX = const(9)  # a: line received (redacted)
EV_DONE = const(10)  # a: revision after (or now, for info and "current")
CHATTY_EVENTS = (EV_LOG, EV_TX, EV_RX, EV_DOWNLOADING, EV_UPDATING, EV_SENT)

BODY_MAX = const(20)  # lines kept of one response (16 PDP contexts fit)
_PLUS = const(43)


def same_revision(a, b):
    """``AT+QGMR`` answers ``EC200TCNDAR02A07M16_01.001.01.001``, ``ATI`` only
    ``Revision: EC200TCNDAR02A07M16``: the same revision when equal, or when the longer is
    the shorter plus an ``_`` suffix."""
    if not a or not b:
        return False
    if a == b:
        return True
    short, full = (a, b) if len(a) < len(b) else (b, a)
    return full.startswith(short) and full[len(short)] == "_"


def bad_char(text, extra=""):
    """The first character of ``text`` that must not stand inside an AT command, described;
    None when there is none. CR/LF would end the command line, a quote the string."""
    ex = extra.encode()
    for o in text.encode():  # bytes: a str's characters would each be interned (qstrs)
        if o == 13:
            return "a carriage return (CR)"
        if o == 10:
            return "a line feed (LF)"
        if o == 34:
            return "a double quote"
        if o < 32 or o == 127:
            return "a control character (0x%02x)" % o
        if o > 126:
            return "a non-ASCII character"
        if o in ex:
            return "a %r" % chr(o)
    return None


def printable(buf, n):
    for i in range(n):
        c = buf[i]
        if c < 32 or c > 126:
            return False
    return True


def text(buf, n):
    """``buf[:n]`` as text; bytes outside printable ASCII as ``\\xNN`` (MicroPython's
    ``decode`` has no ``errors="replace"`` and raises on bad UTF-8)."""
    if printable(buf, n):
        return bytes(buf[:n]).decode()
    out = []
    for i in range(n):
        c = buf[i]
        out.append(chr(c) if 32 <= c <= 126 else "\\x%02x" % c)
    return "".join(out)


class AtChannel:
    def __init__(self):
        self.cmd = None  # the command line in flight (without CR), for the echo
        self.prefix = None
        self.body = []
        self.cme = None
        self.waiting = False

    def send(self, line, prefix=None):
        """Start waiting for ``line``'s answer; returns the bytes to write."""
        self.cmd = line
        self.prefix = prefix
        self.body = []
        self.cme = None
        self.waiting = True
        return line + b"\r"

    def cancel(self):
        self.waiting = False

    def take(self, buf, n):
        """One line that is not a URC; what it means for the command in flight."""
        if not self.waiting:
            return NONE if printable(buf, n) else GARBAGE
        if starts_with(buf, 0, n, b"AT"):
            # An echo: this command's, or a late one of an earlier command (echo is on
            # again after a reboot); no answer's line begins with AT.
            return NONE
        if n == 2 and starts_with(buf, 0, n, b"OK"):
            self.waiting = False
            return OK
        if n == 5 and starts_with(buf, 0, n, b"ERROR"):
            self.waiting = False
            return ERROR
        if starts_with(buf, 0, n, b"+CME ERROR:"):
            self.waiting = False
            self.cme = text(buf, n)[11:].strip()
            return CME
        if n == 6 and starts_with(buf, 0, n, b"010003"):
            self.waiting = False
            return PROTO
        if not printable(buf, n):
            return GARBAGE
        if len(self.body) >= BODY_MAX:
            return NONE
        if self.prefix is not None:
            if starts_with(buf, 0, n, self.prefix):
                self.body.append(bytes(buf[:n]).decode())
        elif buf[0] != _PLUS:  # other URCs are no part of a bare response
            self.body.append(bytes(buf[:n]).decode())
        return NONE

    def command_text(self):
        return self.cmd.decode() if self.cmd is not None else ""
