"""Why a run stopped, in words: loaded only when one does (on MicroPython code is heap,
and the stream wants it).

``os_error(e)`` names an ``OSError`` the same way on both interpreters; ``gap_error``
and ``changed`` are the driver's two stream stops that are nobody's fault on the line:
qfota did not run for a while (Ctrl-Z), and the package file changed while it was sent.
``on_timeout`` and ``on_error`` are the session's when a wait runs out or the modem
refuses a command; ``advice`` what the modem is doing when a run is cut short and what to
do. They read the session and ask it to move (``_next``, ``_run_plan``), or raise the
``FotaError`` that ends it.
"""

from qfota.at import CME, DOWNLOAD, EV_LOG, FAIL, OPTIONAL, PROTO, SAFE, TRANSFER, UPGRADE
from qfota.compat import release, ticks_diff
from qfota.errors import FAILED, TIMEOUT, FotaError, redact

_RX_DRAIN = 64  # reads of the modem's lines after a gap, at most

# The errors a port, a log or a journal meets, in words: MicroPython's errno module names
# only some (no ENOTTY, EBUSY, ENXIO, ENOSPC...) and its OSError carries no text. Numbers
# as on Linux, which MicroPython's own ports use too.
_ERRNO = {
    1: ("EPERM", "operation not permitted"),
    2: ("ENOENT", "no such file or directory"),
    5: ("EIO", "input/output error"),
    6: ("ENXIO", "no such device or address"),
    9: ("EBADF", "bad file descriptor"),
    11: ("EAGAIN", "resource temporarily unavailable"),
    13: ("EACCES", "permission denied"),
    16: ("EBUSY", "device or resource busy"),
    19: ("ENODEV", "no such device"),
    20: ("ENOTDIR", "not a directory"),
    21: ("EISDIR", "is a directory"),
    25: ("ENOTTY", "not a serial device"),
    27: ("EFBIG", "file too large"),
    28: ("ENOSPC", "no space left on device"),
    30: ("EROFS", "read-only file system"),
    32: ("EPIPE", "broken pipe: the reader went away"),
    110: ("ETIMEDOUT", "timed out"),
}


def os_error(e):
    """``[Errno 5] EIO (input/output error)``: the same words on both interpreters."""
    import errno

    code = e.args[0] if e.args else None
    if not isinstance(code, int):
        return str(e)
    name = errno.errorcode.get(code)
    known = _ERRNO.get(code)
    if known is not None and name in (None, known[0]):
        name, words = known
    else:
        words = getattr(e, "strerror", None)
        words = words[:1].lower() + words[1:] if words else None
    if name and words:
        return "[Errno %d] %s (%s)" % (code, name, words)
    return "[Errno %d] %s" % (code, name) if name else "[Errno %d]" % code


def gap(d, now):
    """Driver ``d`` streamed, then did not run until ``now`` (stopped by Ctrl-Z, say):
    before another byte goes out, read what the modem said meanwhile. True: go on. A
    modem that ended the transfer in the gap (FILEEND 500) takes no more of it, nor does
    one whose line was quiet longer than ``stall_ms`` (the longest the port may take no
    byte): then stop, saying so."""
    ms = ticks_diff(now, d._ran)
    s = d.session
    for _ in range(_RX_DRAIN):
        if not d._poll_rx() or not s.streaming:
            break
    if s.streaming and ms <= d.stall_ms:
        return True  # a pause the modem sat out
    s.image_sent(d.flight)  # of the chunk being written, what went out before the gap
    d.flight = 0
    d._gap_err = _gap_error(s, ms)
    return False


def _gap_error(s, gap):
    """Session ``s`` streamed, then qfota did not run for ``gap`` ms: the error to raise
    when the modem ended the transfer meanwhile, else None (``s`` is aborted)."""
    what = "qfota did not run for %d ms in the middle of the transfer (stopped: Ctrl-Z, " % gap
    what += "or starved); %d of %d package bytes sent; " % (s.sent, s.length or 0)
    e = s.error
    if s.done and e is not None:
        said = e.stage if e.code is None else "%s %d" % (e.stage, e.code)
        return FotaError(
            "STREAM",
            e.code,
            what + "the modem ended the transfer meanwhile (%s): it takes no more of this "
            "package, and nothing more was sent. Run `qfota recover` (or `qfota update` "
            "again): it listens before it sends anything" % said,
            e.kind,
        )
    s.abort(
        what + "a modem ends a transfer whose line stays quiet (FILEEND 500), so nothing "
        "more was sent; " + advice(s),
        FAILED,
    )
    return None


def changed(d, got):
    """Driver ``d``'s package file ended early (``got`` 0) or is not the one it began to
    send: stop before its last bytes go out (the session is aborted; raises its error)."""
    import os

    s = d.session
    if got:
        try:
            size = os.stat(d.path)[6]  # not qfota.driver's _stamp: no import circle
        except OSError:
            size = -1
        how = "%d bytes, modified, was %d" % (size, d.stamp[0])
    else:
        how = "it ended at %d of %d bytes" % (s.sent, s.length)
    s.abort(
        "the image changed while it was sent (%s); %d of %d bytes sent; %s"
        % (how, s.sent, s.length or 0, advice(s)),
        FAILED,
    )
    raise s.error


def on_timeout(s, now):
    """Session ``s``'s wait ran out: an optional step goes on, a lost RDY is probed for,
    anything else fails saying what was missing."""
    name = s.state
    row = s._rows.get(name)
    if row is not None and row[4] == OPTIONAL:
        if row[1] is not None:
            s._event(EV_LOG, "%s not answered: going on" % row[1].decode())
        s._at.cancel()
        s._next(now)
        return
    if name == "REBOOT":
        # No RDY: some modules print END after their reboot, or the RDY was lost.
        ms = s.opt["timeouts"]["reboot_ms"]
        s._event(EV_LOG, "no RDY within %d ms after END; probing with AT" % ms)
        release("recovery")  # the URC phase is over: VERIFY runs without it
        s._run_plan(s._verify, now)
        return
    if row is None:
        what = {"FILEEND": '"FILEEND" after the last byte', "UPDATING": '"UPDATING"/"END"'}
        what = 'no +QIND: "FOTA",' + what.get(name, '"%s"' % name)
    elif name == "qfotadl" and s.opt["scheme"] == "file":
        what = "no OK / FILESTART after AT+QFOTADL"
    elif name == "await":
        what = "the modem neither finished an update nor answered AT"
    elif name == "settle":
        what = "the modem did not answer AT after its reboot"
    elif row[1] == b"AT":
        what = "the modem did not answer AT"
    else:
        what = "no answer to %s" % redact(s._at.command_text())
    limit = s.opt["timeouts"][s._wait_key] // 1000
    raise FotaError(s.stage, None, "timeout after %d s: %s" % (limit, what), TIMEOUT)


def on_error(s, kind, now):
    """ERROR, +CME ERROR or 010003 to session ``s``'s command: a step that may fail goes
    on (said), else the session fails naming the answer and the command."""
    if kind == PROTO:
        why = "the modem answered 010003 (protocol-download file mode): not supported"
        raise FotaError(s.stage, None, why)
    name = s.state
    what = "+CME ERROR: %s" % s._at.cme if kind == CME else "ERROR"
    cmd = redact(s._at.command_text())
    if s._rows[name][4] == FAIL or (name == "qiact" and s.pdp is not None):
        raise FotaError(s.stage, None, "modem answered %s to %s" % (what, cmd))
    # qiact: AT+QIACT? was not answered, so the context may be active already (modems
    # answer ERROR then): the download says 708/605 if the network is not there.
    why = "the context may be active already" if name == "qiact" else "going on"
    s._event(EV_LOG, "%s answered %s: %s" % (cmd, what, why))
    s._next(now)


def advice(s):
    """What the modem is doing now and what to do, for session ``s`` cut short here (or
    anything with its ``stage``, ``result``, ``sent`` and ``length``)."""
    if s.result is not None:
        return "the update is over"
    if hasattr(s, "_rows"):  # a Session: its rows say
        from qfota.recovery import where

        cut = where(s)
    else:  # the agent's record of one: what its stage's rows say
        from qfota.steps import stages

        for cut in (TRANSFER, DOWNLOAD, UPGRADE, SAFE):
            if s.stage in stages(cut):
                break
    if cut == SAFE:
        return "nothing was sent that changes the modem; it runs its old firmware"
    if cut == TRANSFER:
        return (
            "the modem may still be inside the FILE transfer (%d of %d bytes sent); the "
            "note has no abort: it ends the transfer itself (FILEEND 500) once the line "
            "stays quiet. Run `qfota recover` (or `qfota update` again): it waits for that "
            "end without sending into the transfer" % (s.sent, s.length or 0)
        )
    if cut == DOWNLOAD:
        return (
            "the modem is downloading the package itself and upgrades when it is done: "
            "keep it powered and follow it with `qfota recover`"
        )
    if cut == UPGRADE:
        return (
            "the modem may be upgrading: do not power it off (note, chapter 5: power loss "
            "during the upgrade cannot be recovered); follow it with `qfota recover`"
        )
    return "the upgrade reported its end; `qfota recover` reads the revision it runs now"
