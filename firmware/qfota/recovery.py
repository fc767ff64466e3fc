"""The URC phase of a session, its tables and its rules: the states after ``AT+QFOTADL``
(``URC_STATES``: what the session waits for in each, ``wait``), the note's URCs that
move it (``URC_NEXT``, applied by ``begin`` and ``on_fota``), those of an update begun
before a session that listens first (``qfota recover``, a rerun), the modem's reboots
(``on_rdy``), and what a cut in a stage leaves the modem doing (``where``).

Loaded by the session when AT+QFOTADL is answered, on a FOTA URC (one in an AT step is
a stale or repeated line, only logged) or on RDY; let go while the package streams and
when VERIFY begins: an update's AT phase and its stream run without this code and these
tables in the heap. It records what the modem reported (``end_code``, progress,
``recovered``, reboots) and asks the session to move: ``_enter``, ``_next`` and
``_run_plan`` are the session's, the one place its state moves (a failure is a
``FotaError`` raised, which the session makes its state); ``begin`` returns what the
session takes on, and the session assigns it.
"""

from qfota import urc
from qfota.at import (
    DOWNLOAD,
    ENDED,
    EV_DOWNLOADING,
    EV_LOG,
    EV_REBOOT,
    EV_UPDATING,
    SAFE,
    TRANSFER,
    UPGRADE,
)
from qfota.compat import const, release
from qfota.errors import MODEM, FotaError

NONE_UNDER_WAY = (
    "no update under way: the modem answers AT and reported no FOTA URC; reading its revision"
)
_RESTARTS_MAX = const(3)  # reboots before the update that start the plan over

_END_KINDS = (urc.FILEEND, urc.FTPEND, urc.HTTPEND, urc.END)


# fmt: off
# The states after AT+QFOTADL (the note's words), and what the session waits for in each
# (``wait``): ``wait``, the ``TIMEOUTS`` key (None: no new wait; the driver bounds the
# stream by stall_ms); ``cut``, what a run cut there leaves the modem doing (as a step's,
# ``qfota.steps``); ``progress``, the option whose progress URCs, when it is not 0, bound
# the wait by progress_ms instead (each URC that goes further arms it again); ``reboot``:
# upgrade_mode 0 adds reboot_ms (the module reboots before it upgrades).
URC_STATES = {
    # state       wait            cut       progress         reboot
    "FILESTART": (None,           TRANSFER, None,            False),
    "STREAM":    (None,           TRANSFER, None,            False),
    "FILEEND":   ("fileend_ms",   TRANSFER, None,            False),
    "FTPSTART":  ("dlstart_ms",   DOWNLOAD, None,            False),
    "HTTPSTART": ("dlstart_ms",   DOWNLOAD, None,            False),
    "FTPEND":    ("download_ms",  DOWNLOAD, "download_urcs", False),
    "HTTPEND":   ("download_ms",  DOWNLOAD, "download_urcs", False),
    "START":     ("start_ms",     UPGRADE,  None,            True),
    "UPDATING":  ("end_ms",       UPGRADE,  "update_urcs",   False),
    "REBOOT":    ("reboot_ms",    UPGRADE,  None,            False),
    "DONE":      (None,           ENDED,    None,            False),
}

# The URC phase, in the manner of h11: (state, URC) -> next state. URCs not listed are
# logged and ignored; codes and progress are recorded by ``on_fota``.
URC_NEXT = {
    ("FILESTART", urc.FILESTART): "STREAM",
    ("STREAM",    urc.FILEEND):   "START",
    ("FILEEND",   urc.FILEEND):   "START",
    ("FTPSTART",  urc.FTPSTART):  "FTPEND",
    ("FTPSTART",  urc.FTPEND):    "START",
    ("FTPEND",    urc.FTPEND):    "START",
    ("HTTPSTART", urc.HTTPSTART): "HTTPEND",
    ("HTTPSTART", urc.HTTPEND):   "START",
    ("HTTPEND",   urc.HTTPEND):   "START",
    ("START",     urc.START):     "UPDATING",
    ("START",     urc.UPDATING):  "UPDATING",  # a START line lost or garbled
    ("START",     urc.RESTORE):   "UPDATING",
    ("START",     urc.END):       "REBOOT",
    ("UPDATING",  urc.END):       "REBOOT",
    # listening: the modem may be anywhere in an update begun before we started
    ("RECOVER",   urc.START):     "UPDATING",
    ("RECOVER",   urc.UPDATING):  "UPDATING",
    ("RECOVER",   urc.RESTORE):   "UPDATING",
    ("RECOVER",   urc.END):       "REBOOT",
}
# The download's (start, end) URCs, by scheme.
KINDS = {
    "file": (urc.FILESTART, urc.FILEEND),
    "ftp":  (urc.FTPSTART,  urc.FTPEND),
    "http": (urc.HTTPSTART, urc.HTTPEND),
}
# fmt: on


def wait(s):
    """What session ``s`` waits for in its URC state, by ``URC_STATES``: ``(key, extra
    ms)`` for ``Session._wait`` (key None: no new wait)."""
    key, _cut, urcs, reboot = URC_STATES[s.state]
    o = s.opt
    if urcs and o[urcs]:
        return "progress_ms", 0
    return key, o["timeouts"]["reboot_ms"] if reboot and o["upgrade_mode"] == 0 else 0


def where(s):
    """What a run cut in session ``s``'s stage leaves the modem doing (SAFE, TRANSFER...):
    the ``cut`` column of its URC state's row or its step's (``qfota.steps``)."""
    st = s.stage
    if st in URC_STATES:
        return URC_STATES[st][1]
    for row in s._rows.values():
        if row[0] == st:
            return row[6]
    return SAFE


def on_urc(s, kind, value, now):
    """A line the URC parser named for session ``s``: RDY, or a FOTA URC (``value``: its
    number)."""
    if kind == urc.RDY:
        on_rdy(s, now)
    else:
        on_fota(s, kind, value, now)


def on_fota(s, kind, value, now):
    """A FOTA URC ``kind`` (``value``: its number) for session ``s`` at ``now``."""
    st = s.state
    name = urc.NAMES[kind].decode()
    if st in s._rows and st not in ("qfotadl", "listen", "await"):
        # Before AT+QFOTADL: left over from an earlier, aborted update; after the
        # upgrade: a repeated line. Not ours either way.
        when = "before AT+QFOTADL" if where(s) == SAFE else "in " + s.stage
        s._event(EV_LOG, "FOTA URC %s ignored: %s %d" % (when, name, value))
        return
    if st == "listen" or st == "await":
        # While listening before the first probe: an update begun before this session.
        s._heard = True
        if kind in _END_KINDS and kind != urc.END:  # its download ended
            s.recovered = "%s %d" % (name, value)
            s._event(EV_LOG, "recovering: the modem reports %s" % s.recovered)
            if value == 0 and s.mode == "recover":
                s._enter("START", now)
            elif value != 0:
                s._next(now)  # the old transfer is over: probe now
            return
        if s.mode != "recover":  # a rerun found the modem in the middle of an earlier update
            why = "the modem is in the middle of an earlier update (%s): follow it with `qfota recover`"
            raise FotaError("RECOVER", None, why % name)
        if kind == urc.END:
            s.end_code = value
            s.recovered = "END %d" % value
            if value != 0:
                raise FotaError("END", value, None, MODEM)
        elif kind == urc.UPDATING or kind == urc.RESTORE:
            s.updating = value
            s._event(EV_UPDATING, value, s.opt["update_urcs"])
        nxt = URC_NEXT.get(("RECOVER", kind))
        if nxt is not None:
            s._enter(nxt, now)
        return
    if (
        urc.FTPSTART <= kind <= urc.FILEEND and kind not in KINDS[s.opt["scheme"]]
    ):  # a download's, not ours
        s._event(EV_LOG, "%s ignored: this is a %s download" % (name, s.opt["scheme"]))
    elif kind in _END_KINDS and value != 0:
        if kind == urc.END:
            s.end_code = value
        raise FotaError(name, value, None, MODEM)
    elif kind == urc.DOWNLOADING:
        # A progress URC re-arms its wait only when it goes further than any before: a
        # module repeating the same line (a retrying bootloader) cannot wait forever.
        s.downloading = value
        s._event(EV_DOWNLOADING, value, s.opt["download_urcs"])
        if value > s._dl_max:
            s._dl_max = value
            if st in ("FTPEND", "HTTPEND") and s.opt["download_urcs"]:
                s._enter(st, now)  # its wait starts over
    elif kind == urc.UPDATING or kind == urc.RESTORE:
        s.updating = value
        s._event(EV_UPDATING, value, s.opt["update_urcs"])
        if st == "START":
            s._enter("UPDATING", now)
        elif st == "UPDATING" and value > s._up_max:
            s._enter(st, now)  # its wait starts over
        s._up_max = max(s._up_max, value)
    elif st == "qfotadl":
        if kind == KINDS[s.opt["scheme"]][0]:
            s._early = True  # before the OK: go on once it arrives
    elif kind == urc.FILEEND and s.sent < (s.length or 0):
        why = "FILEEND before all bytes were sent (%d of %d)" % (s.sent, s.length)
        raise FotaError(s.stage, 0, why)
    else:
        if kind == urc.END:
            s.end_code = value
        nxt = URC_NEXT.get((st, kind))
        if nxt is None:
            s._event(EV_LOG, "%s out of turn ignored (in %s)" % (name, st))
        else:
            s._enter(nxt, now)


def begin(s):
    """The modem answered OK to AT+QFOTADL: session ``s``'s transfer begins. Returns
    ``(rows, state)``: the rows it keeps, VERIFY's only (a RDY now is a failure, not a
    restart; the stream wants the room of the others), and the URC state it enters."""
    rows = {}
    for name in s._verify:
        rows[name] = s._rows[name]
    start = KINDS[s.opt["scheme"]][0]
    st = urc.NAMES[start].decode()
    return rows, URC_NEXT[(st, start)] if s._early else st


def on_rdy(s, now):
    """RDY for session ``s``: a reboot before the update began starts the plan over (at
    most ``_RESTARTS_MAX`` times); during a transfer or download it is a failure; after
    the upgrade it is the reboot VERIFY waits for."""
    st, stage, cut = s.state, s.stage, where(s)
    if st == "listen" and s.mode != "recover":
        s._next(now)  # a rerun found the modem rebooting: probe it now
    elif cut == SAFE or stage == "QFOTADL":
        # Commands in flight are lost; start over.
        s._restarts += 1
        if s._restarts > _RESTARTS_MAX:
            raise FotaError(s.stage, None, "the modem keeps rebooting (RDY) before the update")
        s._event(EV_LOG, "modem rebooted during %s; starting over" % stage)
        s._at.cancel()
        s._run_plan(s._plan, now, s._plan.index("probe"))
    else:
        s.reboots += 1
        s._event(EV_REBOOT, s.reboots)  # the journal learns the transfer is over
        if cut == TRANSFER or cut == DOWNLOAD:
            raise FotaError(s.stage, None, "the modem rebooted (RDY) during the download")
        if st in ("REBOOT", "listen", "await", "settle") or stage == "VERIFY":
            s._at.cancel()
            release("recovery")  # the URC phase is over: VERIFY runs without it
            s._run_plan(s._verify, now)
