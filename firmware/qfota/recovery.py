"""What to say when a run is cut short: what the modem is doing now and what to do.

Loaded only then: by the driver (interrupted, or its port lost), by the session when a
wait runs out (``timed_out``), by the journals for ``stages()``. It reads the session
and changes nothing; the runs that meet an update begun before are the session's own
(``Session._on_earlier``).
"""

from qfota.at import DOWNLOAD, SAFE, TRANSFER, UPGRADE
from qfota.errors import redact


def stages(cut):
    """The stages whose rows (``qfota.steps``: ``STEPS``, ``URC_STATES``; URL mode's and
    info's rows where shipped) say ``cut``, sorted; for the runner's and the app's
    journals: no list kept by hand. (Here, not in ``qfota.steps``: the session loads that
    table on a small heap, this only when asked.)"""
    from qfota.steps import STEPS, URC_STATES

    rows = list(STEPS.values())
    for mod in ("urls", "info"):
        try:
            __import__("qfota." + mod)
        except ImportError:  # not shipped to this board: neither are its stages
            continue
        rows += list(getattr(__import__("qfota"), mod).STEPS.values())
    found = []
    for row in rows:
        if row[6] == cut and row[0] not in found:
            found.append(row[0])
    for state, row in URC_STATES.items():
        if row[1] == cut and state not in found:
            found.append(state)
    return tuple(sorted(found))


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


def timed_out(s, row):
    """What was missing when session ``s``'s wait ran out in a step (``row``) or a URC
    state (``row`` None): the failure's detail. Loaded only then."""
    name = s.state
    limit = "timeout after %d s: " % (s.timeouts[s._wait_key] // 1000)
    if row is None:
        what = {"FILEEND": '"FILEEND" after the last byte', "UPDATING": '"UPDATING"/"END"'}
        return limit + 'no +QIND: "FOTA",' + what.get(name, '"%s"' % name)
    if name == "qfotadl" and s.scheme == "file":
        return limit + "no OK / FILESTART after AT+QFOTADL"
    if name == "await":
        return limit + "the modem neither finished an update nor answered AT"
    if name == "settle":
        return limit + "the modem did not answer AT after its reboot"
    if row[1] == b"AT":
        return limit + "the modem did not answer AT"
    return limit + "no answer to %s" % redact(s._at.command_text())
