"""The session beyond its AT plan: the note's URCs from ``AT+QFOTADL`` to ``END`` (the
URC phase), those of an update begun before a session that listens first (``qfota
recover``, a rerun), what a wait that ran out was waiting for, and what to say when a
run is cut short: what the modem is doing now and what to do.

Loaded only then: by ``Session._on_fota`` on the first FOTA URC outside an AT step (let
go when VERIFY begins: an update's AT phase runs without this code in the heap), by the
session when a wait runs out, by the driver (interrupted, or its port lost). It records what the modem reported (``end_code``, progress,
``recovered``) and asks the session to move: ``_enter``, ``_next`` and ``_fail`` are
the session's, the one place its state moves; the transitions are
``qfota.steps.URC_NEXT``.
"""

from qfota import urc
from qfota.at import DOWNLOAD, EV_DOWNLOADING, EV_LOG, EV_UPDATING, SAFE, TRANSFER, UPGRADE
from qfota.errors import MODEM, redact

_END_KINDS = (urc.FILEEND, urc.FTPEND, urc.HTTPEND, urc.END)


def on_fota(s, kind, value, now):
    """A FOTA URC ``kind`` (``value``: its number) for session ``s`` at ``now``."""
    st = s.state
    name = urc.NAMES[kind].decode()
    if st == "listen" or st == "await":
        # While listening before the first probe: an update begun before this session.
        s._heard = True
        if kind in _END_KINDS and kind != urc.END:  # its download ended
            s.recovered = "%s %d" % (name, value)
            s._event(EV_LOG, "recovering: the modem reports %s" % s.recovered)
            if value == 0 and s.recover:
                s._enter("START", now)
            elif value != 0:
                s._next(now)  # the old transfer is over: probe now
            return
        if not s.recover:  # a rerun found the modem in the middle of an earlier update
            why = "the modem is in the middle of an earlier update (%s): follow it with `qfota recover`"
            s._fail(None, why % name, "RECOVER")
        if kind == urc.END:
            s.end_code = value
            s.recovered = "END %d" % value
            if value != 0:
                s._fail(value, None, "END", MODEM)
        elif kind == urc.UPDATING or kind == urc.RESTORE:
            s.updating = value
            s._event(EV_UPDATING, value, s.update_urcs)
        nxt = s._next_of.get(("RECOVER", kind))
        if nxt is not None:
            s._enter(nxt, now)
        return
    if urc.FTPSTART <= kind <= urc.FILEEND and kind not in s._kinds:  # a download's, not ours
        s._event(EV_LOG, "%s ignored: this is a %s download" % (name, s.scheme))
    elif kind in _END_KINDS and value != 0:
        if kind == urc.END:
            s.end_code = value
        s._fail(value, None, name, MODEM)
    elif kind == urc.DOWNLOADING:
        # A progress URC re-arms its wait only when it goes further than any before: a
        # module repeating the same line (a retrying bootloader) cannot wait forever.
        s.downloading = value
        s._event(EV_DOWNLOADING, value, s.download_urcs)
        if value > s._dl_max:
            s._dl_max = value
            if st in ("FTPEND", "HTTPEND") and s.download_urcs:
                s._wait(now, "progress_ms")
    elif kind == urc.UPDATING or kind == urc.RESTORE:
        s.updating = value
        s._event(EV_UPDATING, value, s.update_urcs)
        if st == "START":
            s._enter("UPDATING", now)
        elif st == "UPDATING" and value > s._up_max:
            s._wait(now, "progress_ms" if s.update_urcs else "end_ms")
        s._up_max = max(s._up_max, value)
    elif st == "qfotadl":
        if kind == s._kinds[0]:
            s._early = True  # before the OK: go on once it arrives
    elif kind == urc.FILEEND and s.sent < (s.length or 0):
        s._fail(0, "FILEEND before all bytes were sent (%d of %d)" % (s.sent, s.length))
    else:
        if kind == urc.END:
            s.end_code = value
        nxt = s._next_of.get((st, kind))
        if nxt is None:
            s._event(EV_LOG, "%s out of turn ignored (in %s)" % (name, st))
        else:
            s._enter(nxt, now)


def timed_out(s, row):
    """What was missing when session ``s``'s wait ran out in a step (``row``) or a URC
    state (``row`` None): the failure's detail. Loaded only then."""
    name = s.state
    if row is None:
        what = {"FILEEND": '"FILEEND" after the last byte', "UPDATING": '"UPDATING"/"END"'}
        what = 'no +QIND: "FOTA",' + what.get(name, '"%s"' % name)
    elif name == "qfotadl" and s.scheme == "file":
        what = "no OK / FILESTART after AT+QFOTADL"
    elif name == "await":
        what = "the modem neither finished an update nor answered AT"
    elif name == "settle":
        what = "the modem did not answer AT after its reboot"
    elif row[1] == b"AT":
        what = "the modem did not answer AT"
    else:
        what = "no answer to %s" % redact(s._at.command_text())
    return "timeout after %d s: %s" % (s.timeouts[s._wait_key] // 1000, what)


def advice(s):
    """What the modem is doing now and what to do, for session ``s`` cut short here."""
    if s.result is not None:
        return "the update is over"
    cut = s.cut
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
