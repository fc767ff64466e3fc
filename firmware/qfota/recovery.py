"""Runs that meet an update begun before them, and runs cut short.

Loaded only then: by the session when it listens before probing (``qfota recover``,
an MCU reset, a rerun after a cut transfer), by the driver when it is interrupted or
loses its port.
"""

from qfota import urc
from qfota.errors import MODEM
from qfota.session import _END_KINDS, _URC_NEXT, EV_LOG, EV_UPDATING, SAFE_STAGES, TRANSFER_STAGES


def advice(s):
    """What the modem is doing now and what to do, for session ``s`` cut short here."""
    st = s.stage
    if s.result is not None:
        return "the update is over"
    if st in SAFE_STAGES or (st == "PREFLIGHT" and not s.recover):
        return "nothing was sent that changes the modem; it runs its old firmware"
    if st in TRANSFER_STAGES:
        return (
            "the modem may still be inside the FILE transfer (%d of %d bytes sent); the "
            "note has no abort: it ends the transfer itself (FILEEND 500) once the line "
            "stays quiet. Run `qfota recover` (or `qfota update` again): it waits for that "
            "end without sending into the transfer" % (s.sent, s.length or 0)
        )
    if st in ("FTPSTART", "FTPEND", "HTTPSTART", "HTTPEND"):
        return (
            "the modem is downloading the package itself and upgrades when it is done: "
            "keep it powered and follow it with `qfota recover`"
        )
    if st in ("START", "UPDATING", "REBOOT", "RECOVER"):
        return (
            "the modem may be upgrading: do not power it off (note, chapter 5: power loss "
            "during the upgrade cannot be recovered); follow it with `qfota recover`"
        )
    return "the upgrade reported its end; `qfota recover` reads the revision it runs now"


def on_urc(s, kind, name, value, now):
    """A FOTA URC while we listen before probing: an update begun before this session."""
    if kind in _END_KINDS and kind != urc.END:
        s.recovered = "%s %d" % (name, value)
        s._event(EV_LOG, "recovering: the modem reports %s" % s.recovered)
        if value == 0 and s.recover:
            s._enter("START", now)
        elif value != 0:
            s._next(now)  # the old transfer is over: probe now
        return
    if not s.recover:
        # A rerun found the modem in the middle of an earlier update.
        s._fail(
            None,
            "the modem is in the middle of an earlier update (%s): follow it with "
            "`qfota recover`" % name,
            "RECOVER",
        )
    if kind == urc.END:
        s.end_code = value
        s.recovered = "END %d" % value
        if value != 0:
            s._fail(value, None, "END", MODEM)
    elif kind == urc.UPDATING or kind == urc.RESTORE:
        s.updating = value
        s._event(EV_UPDATING, value, s.update_urcs)
    nxt = _URC_NEXT.get(("RECOVER", kind))
    if nxt is not None:
        s._enter(nxt, now)
