"""The URC phase of a session: the note's URCs from ``AT+QFOTADL`` to ``END`` (``begin``,
``on_fota``), those of an update begun before a session that listens first (``qfota
recover``, a rerun), and the modem's reboots (``on_rdy``).

Loaded by the session when AT+QFOTADL is answered, on a FOTA URC (one in an AT step is
a stale or repeated line, only logged) or on RDY; let go while the package streams and when VERIFY begins: an update's AT phase and
its stream run without this code in the heap. It records what the modem reported
(``end_code``, progress, ``recovered``, reboots) and asks the session to move:
``_enter``, ``_next``, ``_run_plan`` and ``_fail`` are the session's, the one place its
state moves; the transitions are ``qfota.steps.URC_NEXT``.
"""

from qfota import urc
from qfota.at import (
    DOWNLOAD,
    EV_DOWNLOADING,
    EV_LOG,
    EV_REBOOT,
    EV_UPDATING,
    SAFE,
    TRANSFER,
)
from qfota.compat import const, release
from qfota.errors import MODEM

NONE_UNDER_WAY = (
    "no update under way: the modem answers AT and reported no FOTA URC; reading its revision"
)
_RESTARTS_MAX = const(3)  # reboots before the update that start the plan over

_END_KINDS = (urc.FILEEND, urc.FTPEND, urc.HTTPEND, urc.END)


def on_fota(s, kind, value, now):
    """A FOTA URC ``kind`` (``value``: its number) for session ``s`` at ``now``."""
    st = s.state
    name = urc.NAMES[kind].decode()
    if st in s._rows and st not in ("qfotadl", "listen", "await"):
        # Before AT+QFOTADL: left over from an earlier, aborted update; after the
        # upgrade: a repeated line. Not ours either way.
        when = "before AT+QFOTADL" if s.cut == SAFE else "in " + s.stage
        s._event(EV_LOG, "FOTA URC %s ignored: %s %d" % (when, name, value))
        return
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


def begin(s, now):
    """The modem answered OK to AT+QFOTADL: session ``s``'s transfer begins. Only
    VERIFY's steps run again (a RDY now is a failure, not a restart); the stream wants
    the room of the others."""
    for done in s._plan:
        if done not in s._verify:
            s._rows.pop(done, None)
    s._args = {}
    s.opt = {"target": s.opt.get("target")}
    start = s._kinds[0]
    st = urc.NAMES[start].decode()
    s._enter(s._next_of[(st, start)] if s._early else st, now)


def on_rdy(s, now):
    """RDY for session ``s``: a reboot before the update began starts the plan over (at
    most ``_RESTARTS_MAX`` times); during a transfer or download it is a failure; after
    the upgrade it is the reboot VERIFY waits for."""
    st, stage, cut = s.state, s.stage, s.cut
    if st == "listen" and not s.recover:
        s._next(now)  # a rerun found the modem rebooting: probe it now
    elif cut == SAFE or stage == "QFOTADL":
        # Commands in flight are lost; start over.
        s._restarts += 1
        if s._restarts > _RESTARTS_MAX:
            s._fail(None, "the modem keeps rebooting (RDY) before the update")
        s._event(EV_LOG, "modem rebooted during %s; starting over" % stage)
        s._at.cancel()
        s._run_plan(s._plan, now, s._plan.index("probe"))
    else:
        s.reboots += 1
        s._event(EV_REBOOT, s.reboots)  # the journal learns the transfer is over
        if cut == TRANSFER or cut == DOWNLOAD:
            s._fail(None, "the modem rebooted (RDY) during the download")
        if st in ("REBOOT", "listen", "await", "settle") or stage == "VERIFY":
            s._at.cancel()
            release("recovery")  # the URC phase is over: VERIFY runs without it
            s._run_plan(s._verify, now)
