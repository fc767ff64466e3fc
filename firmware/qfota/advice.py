"""What the modem is doing, and what to do, when a run stops in the middle.

Loaded only then (the driver imports it when it is interrupted or loses its port).
"""

from qfota.session import SAFE_STAGES, TRANSFER_STAGES


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
