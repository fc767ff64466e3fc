"""The rare endings of a request run by ``qfota.httpat``: a body without a length, read up
to the modem's trailer; a body gone quiet, whose last bytes are read for the modem's own
lines (``OK``/``+QHTTPREAD: <err>`` after a short body, ``RDY`` and boot URCs after a
reboot); an ERROR answer; a timeout. Loaded when one of them happens and let go after the
request (``compat.release``): on MicroPython code is heap, and these words are not needed
by a request that goes well.
"""

from qfota import urc
from qfota.at import CME, PROTO, text
from qfota.compat import const, ticks_add
from qfota.errors import FAILED, MODEM, TIMEOUT

REBOOTED = 1  # verdict(): RDY or a boot URC
READ = 2  # verdict(): +QHTTPREAD: <err>

_CR = 13
_LF = 10
_TRAILER_MAX = const(40)  # the OK/+QHTTPREAD trailer of a body without a length


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


def gather(core, data, i, end, now, read_urc):
    """A body without a length: gathered in ``core._acc`` (bounded by ``core.limit``)
    until the modem's trailer ``\\r\\nOK\\r\\n\\r\\n+QHTTPREAD: <err>\\r\\n``; returns the
    bytes of ``data[i:end]`` taken."""
    acc = core._acc
    if acc is None:
        return end - i
    acc.extend(data[i:end])
    core._last = now
    core._deadline = ticks_add(now, core._read_wait)
    at = find_trailer(acc, core._scan, read_urc, _TRAILER_MAX)
    if at[0] is None:
        core._scan = at[1]
        if len(acc) > core.limit + _TRAILER_MAX:
            core._fail(None, "response over %d bytes" % core.limit, FAILED, "HTTP")
        return end - i
    body_end, trailer_end, err = at
    extra = len(acc) - trailer_end
    core.body = bytes(acc[:body_end])
    core.got = body_end
    core._acc = None
    if err:
        core._fail(err, None, MODEM, "HTTPREAD")
    if body_end > core.limit:
        core._fail(None, "response over %d bytes" % core.limit, FAILED, "HTTP")
    core._finish()
    return end - i - extra


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


def check_tail(core, read_urc):
    """The body went quiet: the modem's own lines in its last bytes (``core.tail``) end
    it (raises the failure), or it goes on."""
    v = verdict(core.tail, core.tail_n, core._urc, read_urc)
    if v is None:
        return
    if v[0] == REBOOTED:
        core._fail(
            None,
            "the modem rebooted (RDY) during the body, at about %d of %d bytes"
            % (core.got, core.length or 0),
        )
    err = v[1]
    core._fail(
        err or None,
        "the body stopped short of %d bytes" % (core.length or 0),
        MODEM if err else FAILED,
    )


def answered(core, answer, request):
    """ERROR, +CME ERROR or 010003 to the core's command (``request``: one that sends the
    request): raises the failure, or sets the modem up again once (730)."""
    cmd = core._at.command_text()
    if answer == CME:
        cme = core._at.cme or ""
        if cme == "730" and request and core._again(core._now, cmd + ": 730"):
            return  # invalid parameter: requestheader is not what the core set
        if cme.isdigit():
            core._fail(int(cme), "+CME ERROR to %s" % cmd, MODEM)
        core._fail(None, "modem answered +CME ERROR: %s to %s" % (cme, cmd))
    if answer == PROTO:
        core._fail(None, "modem answered 010003 to %s" % cmd)
    core._fail(None, "modem answered ERROR to %s" % cmd)


def timed_out(core, where, connect, prefix, read_urc):
    """The core's wait ran out ``where`` (its phase's name); ``connect``: the step waits
    for CONNECT; ``prefix``: the URC its request answers with. Raises the failure."""
    cmd = core._at.command_text()
    if where == "body":
        check_tail(core, read_urc)
        what = "the body stopped at %d of %d bytes" % (core.got, core.length or 0)
    elif where == "open":
        what = "the body did not end (%d bytes)" % len(core._acc or b"")
    elif where == "tail":
        what = "no OK / +QHTTPREAD after the body"
    elif where == "await":
        what = "no %s after %s" % (prefix.decode()[:-1], cmd)
    elif where == "data":
        what = "no OK after the data of %s" % cmd
    elif connect:
        what = "no CONNECT to %s" % cmd
    else:
        what = "no answer to %s" % cmd
    core._fail(None, "timeout: " + what, TIMEOUT)
