"""The FOTA protocol as a sans-I/O state machine: bytes in, command lines and events out.

A driver (``qfota.driver``) owns the port, the clock and the package file::

    s = Session(length=4884688, upgrade_mode=1, download_urcs=50)
    s.start(now)
    while not s.done:
        out = s.take_output()          # a command line to write, or None
        s.feed(rx, 0, n, now)          # whatever the modem said
        ev = s.next_event()            # (EV_*, a, b) tuples, delivered after feed returns
        if s.streaming: ...write package bytes...; s.image_sent(k)
        s.poll(now)                    # deadlines and probes
    if s.error: raise s.error

Two phases. Up to ``AT+QFOTADL`` the session runs a plan of AT steps (``qfota.steps``:
a table). After it, the note's URCs move it through the states of ``_URC_NEXT``
(FILESTART, STREAM, FILEEND or FTPSTART/FTPEND, HTTPSTART/HTTPEND, START, UPDATING,
REBOOT), then a last plan (VERIFY) reads the revision the modem runs after its reboot.
Nothing here sleeps, reads a clock, touches a port or calls back into the caller: every
public call returns, and a failure makes the session terminal (``done``, ``error``
holds the ``FotaError``); a terminal session sends nothing more.
"""

from qfota import urc
from qfota.at import CME, FAIL, NEXT, OK, OPTIONAL, PROTO, RETRY, SKIP, AtChannel, printable, text
from qfota.compat import const, release, ticks_add, ticks_diff
from qfota.defaults import DEFAULTS
from qfota.errors import INTERRUPTED, MODEM, TIMEOUT, FotaError, redact, refuse
from qfota.lines import LineFramer

# Events: (EV_*, a, b), taken with ``next_event()``.
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

FLOW_NONE = const(0)
FLOW_HW = const(1)

# Stages, in the order an update passes them; the app's journal and the CLI use these.
STAGES = (
    "RECOVER",
    "PREFLIGHT",
    "POWER",
    "FLOWCTRL",
    "PDP",
    "QFOTADL",
    "FILESTART",
    "STREAM",
    "FILEEND",
    "FTPSTART",
    "FTPEND",
    "HTTPSTART",
    "HTTPEND",
    "START",
    "UPDATING",
    "REBOOT",
    "VERIFY",
    "DONE",
)
# Before these are over nothing of a transfer reached the modem: safe to start afresh.
SAFE_STAGES = ("PREFLIGHT", "POWER", "FLOWCTRL", "PDP", "INFO")
# In these the modem may be inside a FILE transfer: an "AT" would be package data.
TRANSFER_STAGES = ("QFOTADL", "FILESTART", "STREAM", "FILEEND")

# The URC phase, in the manner of h11: (state, URC) -> next state. The states are the
# note's words. URCs not listed are logged and ignored; codes and progress are in code.
_URC_NEXT = {
    ("FILESTART", urc.FILESTART): "STREAM",
    ("STREAM", urc.FILEEND): "START",
    ("FILEEND", urc.FILEEND): "START",
    ("FTPSTART", urc.FTPSTART): "FTPEND",
    ("FTPSTART", urc.FTPEND): "START",
    ("FTPEND", urc.FTPEND): "START",
    ("HTTPSTART", urc.HTTPSTART): "HTTPEND",
    ("HTTPSTART", urc.HTTPEND): "START",
    ("HTTPEND", urc.HTTPEND): "START",
    ("START", urc.START): "UPDATING",
    ("START", urc.UPDATING): "UPDATING",  # a START line lost or garbled
    ("START", urc.RESTORE): "UPDATING",
    ("START", urc.END): "REBOOT",
    ("UPDATING", urc.END): "REBOOT",
    # recovery: the modem may be anywhere in an update begun before we started
    ("RECOVER", urc.START): "UPDATING",
    ("RECOVER", urc.UPDATING): "UPDATING",
    ("RECOVER", urc.RESTORE): "UPDATING",
    ("RECOVER", urc.END): "REBOOT",
}

# The wait of each URC state (None: none; the driver bounds the stream by stall_ms).
_WAIT = {
    "FILESTART": None,  # carried over from AT+QFOTADL: FILESTART within filestart_ms
    "STREAM": None,
    "FILEEND": "fileend_ms",
    "FTPSTART": "dlstart_ms",
    "HTTPSTART": "dlstart_ms",
    "FTPEND": "download_ms",
    "HTTPEND": "download_ms",
    "START": "start_ms",
    "UPDATING": "end_ms",
    "REBOOT": "reboot_ms",
}
# What was missing when a URC state's wait ran out.
_MISSING = {
    "FILESTART": 'no +QIND: "FOTA","FILESTART"',
    "FILEEND": 'no +QIND: "FOTA","FILEEND" after the last byte',
    "FTPSTART": 'no +QIND: "FOTA","FTPSTART"',
    "HTTPSTART": 'no +QIND: "FOTA","HTTPSTART"',
    "FTPEND": 'no +QIND: "FOTA","FTPEND"',
    "HTTPEND": 'no +QIND: "FOTA","HTTPEND"',
    "START": 'no +QIND: "FOTA","START"',
    "UPDATING": 'no +QIND: "FOTA","UPDATING"/"END"',
}
_START_OF = {"file": urc.FILESTART, "ftp": urc.FTPSTART, "http": urc.HTTPSTART}
_KINDS_OF = {
    "file": (urc.FILESTART, urc.FILEEND),
    "ftp": (urc.FTPSTART, urc.FTPEND),
    "http": (urc.HTTPSTART, urc.HTTPEND),
}
_DOWNLOAD_KINDS = (urc.FTPSTART, urc.FTPEND, urc.HTTPSTART, urc.HTTPEND, urc.FILESTART, urc.FILEEND)
_END_KINDS = (urc.FILEEND, urc.FTPEND, urc.HTTPEND, urc.END)

_READERS = ("answers", "urls", "info")  # modules of the steps' readers (qfota.steps)
_PROBE_EVERY = const(1000)  # ms between probes
_PROBE_QUIET = const(1500)  # ms without an OK after a probe answered, when several went out
_RESTARTS_MAX = const(3)
_REPORTS = const(100)  # EV_SENT at most this many times per transfer
_EVENTS_MAX = const(32)  # events queued between two next_event() calls, beyond the vital ones
CHATTY_EVENTS = (EV_LOG, EV_TX, EV_RX, EV_DOWNLOADING, EV_UPDATING, EV_SENT)


def same_revision(a, b):
    """``AT+QGMR`` answers ``EC200TCNDAR02A07M16_01.001.01.001``, ``ATI`` only
    ``Revision: EC200TCNDAR02A07M16`` (a modem that answers only the note's commands): the
    same revision when equal, or when the longer is the shorter plus an ``_`` suffix."""
    if not a or not b:
        return False
    if a == b:
        return True
    short, full = (a, b) if len(a) < len(b) else (b, a)
    return full.startswith(short) and full[len(short)] == "_"


class Session:
    """One FOTA update: FILE mode with ``length``, URL mode with ``url``; or, with
    ``recover=True``, following an update begun before (an MCU reset) to its end; or,
    with ``info=True``, reading the modem's state and changing nothing.

    ``flow``: FLOW_HW (or "hw") sends ``AT+IFC=2,2`` (``usb=True``:
    ``AT+QCFG="usbifc",2,2``, read back); FLOW_NONE ("none") ``AT+IFC=0,0`` and the
    driver paces the stream. ``expect_source``/``target``: the revision gate (already
    at ``target``: nothing to do, ``result == "current"``; running neither: refused;
    not at ``target`` after the update: failed). ``listen_first``: listen quietly for
    ``fileend_ms`` before the first probe (the last run may have cut a transfer).
    Everything is checked here, before a byte goes to the modem.
    """

    def __init__(
        self,
        length=None,
        url=None,
        upgrade_mode=DEFAULTS["upgrade_mode"],
        download_urcs=DEFAULTS["download_urcs"],
        update_urcs=DEFAULTS["update_urcs"],
        flow=FLOW_HW,
        usb=False,
        cid=None,
        apn=None,
        min_voltage_mv=None,
        timeouts=None,
        protocol_download=False,
        recover=False,
        info=False,
        listen_first=False,
        expect_source=None,
        target=None,
        trace=False,
    ):
        if flow not in (FLOW_HW, FLOW_NONE, "hw", "none"):
            raise refuse("PARAMS", "flow must be hw or none, not %r" % (flow,))
        self.upgrade_mode = upgrade_mode
        self.download_urcs = download_urcs
        self.update_urcs = update_urcs
        self.expect_source = expect_source
        self.target = target
        self.mode = "recover" if recover else "info" if info else "update"
        from qfota import checks

        self.scheme, self.timeouts = checks.session_options(
            self, length, url, cid, apn, timeouts, protocol_download, self.mode
        )
        del checks  # with the release, nothing holds it: its code can be collected
        release("checks")
        self.length = length
        self.url = url
        self.flow_hw = flow in (FLOW_HW, "hw")
        self.usb = usb
        self.cid = cid if cid is not None else DEFAULTS["cid"]
        self.apn = apn
        self.min_voltage_mv = min_voltage_mv
        self.recover = recover
        self.listen_first = listen_first
        self.trace = trace  # report every line sent and received (EV_TX, EV_RX)

        # The plan, and the rows of its steps and of VERIFY's, taken from the table once;
        # then the table is released (on MicroPython its code and data are heap).
        from qfota import steps

        if recover:
            self._plan = list(steps.RECOVER)  # type: list[str]
        elif info:
            self._plan = steps.info_plan(self)
        else:
            self._plan = steps.plan(self)
        self._verify = steps.VERIFY
        self._rows = {}
        for name in self._plan + list(self._verify):
            self._rows[name] = steps.STEPS[name]
        self._args = steps.args(self)
        del steps
        release("steps")

        # What the modem told us.
        self.revision_before = None
        self.revision_after = None
        self.voltage_mv = None
        self.supported = None  # ranges from AT+QFOTADL=?
        self.flow_setting = None  # info: AT+IFC? / AT+QCFG="usbifc" as read
        self.imei = None  # info: AT+CGSN
        self.pdp = None  # [(cid, state)] from AT+QIACT?
        self.recovered = None  # recovery: the last download/upgrade URC seen ("FILEEND 500")
        self.sent = 0  # package bytes the driver has written
        self.stream_ms = 0  # first to last package byte
        self.downloading = 0  # last DOWNLOADING index
        self.updating = 0  # last UPDATING index
        self.reboots = 0  # RDY seen after AT+QFOTADL
        self.end_code = None  # <err> of +QIND: "FOTA","END"
        self.result = None  # "updated" | "current" | "recovered" | "info"
        self.error = None
        self.events_dropped = 0
        self.done = False
        self.streaming = False

        self.state = ""  # a step's name in the AT phases, a URC state after AT+QFOTADL
        self._stage = None
        self._phase = ()  # type: tuple[str, ...] | list[str]  # the plan being run
        self._i = 0  # index of the current step in it
        self._now = 0
        self._deadline = None
        self._wait_key = "probe_ms"
        self._probes = 0  # probes sent in this probing step
        self._resend_at = 0
        self._answered = False  # a probe was answered: waiting out the others' OKs
        self._quiet_until = 0
        self._restarts = 0
        self._started_early = False  # FILESTART/FTPSTART before the OK to AT+QFOTADL
        self._pdp_inactive = False  # AT+QIACT? answered and the context was not active
        self._dl_max = 0  # highest DOWNLOADING / UPDATING index seen
        self._up_max = 0
        self._t_stream = 0
        self._next_report = 0
        self._report_every = max(1, (length or 0) // _REPORTS)
        self._out = None
        self._events = []
        self._at = AtChannel()
        self._urc = urc.UrcParser()
        self._framer = LineFramer(self._on_line)

    # ---------------------------------------------------------------- driver API
    def start(self, now):
        self._guard(self._run_plan, self._plan, now)

    def take_output(self):
        """The next command line to write (bytes), or None."""
        out = self._out
        self._out = None
        return out

    @property
    def has_output(self):
        return self._out is not None

    def next_event(self):
        """The oldest event not yet taken, ``(EV_*, a, b)``, or None."""
        if self._events:
            return self._events.pop(0)
        return None

    def feed(self, data, start, end, now):
        """Bytes from the modem: ``data[start:end]``."""
        if self.done:
            return
        self._now = now
        self._guard(self._framer.feed, data, start, end)

    def poll(self, now):
        """Deadlines and probes."""
        if not self.done:
            self._guard(self._poll, now, None)

    def image_sent(self, n):
        """The driver wrote ``n`` more package bytes; True once all are out. Allocates nothing."""
        self.sent += n
        return self.sent >= self.length

    def progress(self):
        """Queue EV_SENT when the package has gone another step of ``_REPORTS`` further."""
        if self.sent >= self._next_report:
            self._next_report = self.sent + self._report_every
            self._event(EV_SENT, self.sent, self.length)

    def image_complete(self, now):
        """The driver wrote the last byte: now wait for FILEEND."""
        if self.done:
            return
        self.streaming = False
        self.stream_ms = ticks_diff(now, self._t_stream)
        self._next_report = 0
        self.progress()
        if self.state == "STREAM":
            self._guard(self._enter, "FILEEND", now)

    def abort(self, reason, kind=INTERRUPTED):
        """Stop here: the session becomes terminal with ``FotaError(stage, None, reason, kind)``."""
        if not self.done:
            self._terminate(FotaError(self.stage, None, reason, kind))

    @property
    def stage(self):
        return self._stage or "PREFLIGHT"

    # ---------------------------------------------------------------- internals
    def _guard(self, fn, a, b, c=None):
        # Every public call ends here: a failure makes the session terminal instead of
        # raising through the driver's loop.
        try:
            if c is None:
                fn(a, b)
            else:
                fn(a, b, c)
        except FotaError as e:
            self._terminate(e)

    def _terminate(self, err):
        self.error = err
        self.done = True
        self.streaming = False
        self._out = None
        self._deadline = None
        self._at.cancel()

    def _event(self, ev, a=None, b=None):
        # A chatty modem fed in one large piece must not grow the queue: past
        # _EVENTS_MAX, log, trace and progress events are counted, not kept.
        if len(self._events) >= _EVENTS_MAX and ev in CHATTY_EVENTS:
            self.events_dropped += 1
            return
        self._events.append((ev, a, b))

    def _fail(self, code=None, detail=None, stage=None, kind=None):
        raise FotaError(stage or self.stage, code, detail, kind)

    def _set_stage(self, stage):
        if stage != self._stage:
            self._stage = stage
            self._event(EV_STAGE, stage)

    def _wait(self, now, key, extra=0):
        self._deadline = ticks_add(now, self.timeouts[key] + extra)
        self._wait_key = key

    def _send(self, line, prefix=None):
        self._out = self._at.send(line, prefix)
        if self.trace:
            self._event(EV_TX, redact(line.decode()))

    # ------------------------------------------------ AT phase: running the plan
    def _run_plan(self, plan, now, i=0):
        self._phase = plan
        self._step(i, now)

    def _step(self, i, now):
        plan = self._phase
        if i >= len(plan):
            self._plan_done(now)
            return
        self._i = i
        name = plan[i]
        stage, cmd, prefix, wait, _on_err, _on_ok = self._rows[name]
        self.state = name
        self._set_stage(stage)
        self._wait(now, wait)
        self._answered = False
        self._probes = 0
        if cmd is None:
            return  # listen only
        args = self._args.get(name)
        if args is not None:
            cmd = cmd % args
        self._send(cmd, prefix)
        if self._rows[name][4] == RETRY:
            self._probes = 1
            self._resend_at = ticks_add(now, _PROBE_EVERY)
        if name == "qfotadl":
            for mod in _READERS:
                release(mod)  # the answers before AT+QFOTADL are read: see _call
            self._started_early = False
            if self.scheme == "file":
                self._wait(now, "filestart_ms")

    def _next(self, now, skip=0):
        self._step(self._i + 1 + skip, now)

    def _plan_done(self, now):
        if self._phase is self._verify or self.recover:
            self._finish("recovered" if self.recover else "updated")
        else:
            self._finish("info")

    def _finish(self, result):
        if result == "updated" and self.revision_after is not None:
            rev = self.revision_after
            if self.target is not None and not same_revision(rev, self.target):
                self._fail(
                    None,
                    "the modem runs %s after the update, not %s" % (rev, self.target),
                    "VERIFY",
                )
            if self.target is None and same_revision(rev, self.revision_before):
                self._fail(
                    None,
                    "the modem reported END 0 but still runs %s after its reboot" % rev,
                    "VERIFY",
                )
        self.result = result
        self.state = "DONE"
        self._set_stage("DONE")
        self._deadline = None
        self.done = True
        self._event(EV_DONE, self.revision_after or self.revision_before)

    def _in_step(self):
        return self.state in self._rows

    def _answer(self, kind, now):
        name = self.state
        _stage, _cmd, _prefix, _wait, on_err, on_ok = self._rows[name]
        if kind == OK:
            if on_err == RETRY:
                self._probe_answered(now)
                return
            skip = self._call(on_ok, self._at.body, now) if on_ok else None
            if self.state == name and not self.done:  # the handler did not move on itself
                self._next(now, 1 if skip == SKIP else 0)
            return
        if kind == PROTO:
            self._fail(
                None, "the modem answered 010003 (protocol-download file mode): not supported"
            )
        # ERROR or +CME ERROR
        if on_err == RETRY:
            return  # keep probing
        what = "+CME ERROR: %s" % self._at.cme if kind == CME else "ERROR"
        if on_err == FAIL:
            self._fail(None, "modem answered %s to %s" % (what, redact(self._at.command_text())))
        if on_err in (NEXT, OPTIONAL):
            self._event(EV_LOG, "%s answered %s: going on" % (self._at.command_text(), what))
            self._next(now)
            return
        self._call(on_err, what, now)

    def _call(self, handler, a, now):
        # "_name": a method here; "module.name": a function of a module loaded on first
        # use (qfota.answers, urls, info) and released when AT+QFOTADL goes out, so a
        # FILE update's heap holds none of them while the package streams.
        if callable(handler):  # a function in the row itself: handler(session, body, now)
            return handler(self, a, now)
        if "." in handler:
            mod, fn = handler.split(".")
            __import__("qfota." + mod)
            return getattr(getattr(__import__("qfota"), mod), fn)(self, a, now)
        return getattr(self, handler)(a, now)

    def _probe_answered(self, now):
        """An ``AT`` probe was answered. When several went out (a slow or booting modem),
        the others may still answer: wait until the line has had no OK for
        ``_PROBE_QUIET`` ms, or a late OK would be taken for the next command's."""
        if self._probes <= 1:
            self._next(now)
            return
        self._answered = True
        self._stray_ok(now)

    def _stray_ok(self, now):
        self._quiet_until = ticks_add(now, _PROBE_QUIET)
        self._deadline = ticks_add(self._quiet_until, 1000)

    def _poll(self, now, _unused):
        name = self.state
        if name in self._rows and self._rows[name][4] == RETRY:
            if self._answered:
                if ticks_diff(now, self._quiet_until) >= 0:
                    self._next(now)
                    return
            elif ticks_diff(now, self._resend_at) >= 0:
                self._resend_at = ticks_add(now, _PROBE_EVERY)
                self._probes += 1
                self._send(self._rows[name][1])
        if self._deadline is not None and ticks_diff(now, self._deadline) >= 0:
            self._timeout(now)

    def _timeout(self, now):
        name = self.state
        limit = "timeout after %d s: " % (self.timeouts[self._wait_key] // 1000)
        if name in self._rows:
            stage, cmd, _p, _w, on_err, _ok = self._rows[name]
            if on_err == OPTIONAL:
                if cmd is not None:
                    self._event(EV_LOG, "%s not answered: going on" % cmd.decode())
                self._at.cancel()
                self._next(now)
                return
            if name == "qfotadl" and self.scheme == "file":
                what = "no OK / FILESTART after AT+QFOTADL"
            elif cmd == b"AT":
                what = {
                    "await": "the modem neither finished an update nor answered AT",
                    "settle": "the modem did not answer AT after its reboot",
                }.get(name, "the modem did not answer AT")
            else:
                what = "no answer to %s" % redact(self._at.command_text())
            self._fail(None, limit + what, kind=TIMEOUT)
        if name == "REBOOT":
            # No RDY: some modules print END after their reboot, or the RDY was lost.
            self._event(
                EV_LOG,
                "no RDY within %d ms after END; probing with AT" % self.timeouts["reboot_ms"],
            )
            self._run_plan(self._verify, now)
            return
        self._fail(None, limit + _MISSING.get(name, "no answer"), kind=TIMEOUT)

    # ------------------------------------------------ answers read by the steps
    def _got_qfotadl(self, body, now):
        start = _START_OF[self.scheme]
        if self._started_early:
            self._enter(_URC_NEXT[(urc.NAMES[start].decode(), start)], now)
        else:
            self._enter(urc.NAMES[start].decode(), now)

    # ------------------------------------------------ URC phase
    def _enter(self, state, now):
        self.state = state
        self._set_stage(state)
        key = _WAIT.get(state)
        self.streaming = state == "STREAM"
        if state == "STREAM":
            self._t_stream = now
            self._deadline = None
        elif state in ("FTPEND", "HTTPEND") and self.download_urcs:
            self._wait(now, "progress_ms")
        elif state == "START":
            # upgrade_mode 0: the module reboots before upgrading; allow for it.
            self._wait(now, key, self.timeouts["reboot_ms"] if self.upgrade_mode == 0 else 0)
        elif state == "UPDATING" and self.update_urcs:
            self._wait(now, "progress_ms")
        elif key is not None:
            self._wait(now, key)

    def _on_line(self, buf, n):
        now = self._now
        kind = self._urc.parse(buf, n)
        if self.trace:
            self._event(EV_RX, redact(text(buf, n)))
        if kind == urc.NONE:
            if self._at.waiting:
                answer = self._at.take(buf, n)
                if answer:
                    self._answer(answer, now)
                elif self._at.garbage:
                    self._at.garbage = 0
                    self._event(EV_LOG, "garbage line ignored (%d bytes)" % n)
            elif self._answered and n == 2 and urc.starts_with(buf, 0, n, b"OK"):
                self._stray_ok(now)  # a late answer to an earlier probe
            elif not printable(buf, n):
                self._event(EV_LOG, "garbage line ignored (%d bytes)" % n)
            return
        if kind == urc.INCOMPLETE:
            self._event(EV_LOG, "incomplete FOTA line ignored: %r" % bytes(buf[:n]))
            return
        if kind == urc.BOOT:
            return
        if kind == urc.RDY:
            self._on_rdy(now)
            return
        self._on_fota(kind, self._urc.value, now)

    def _on_rdy(self, now):
        st = self.state
        stage = self.stage
        if st == "listen" and not self.recover:
            self._next(now)  # a rerun found the modem rebooting: probe it now
            return
        if stage in SAFE_STAGES or stage == "QFOTADL":
            # A reboot before the update began: commands in flight are lost; start over.
            self._restarts += 1
            if self._restarts > _RESTARTS_MAX:
                self._fail(None, "the modem keeps rebooting (RDY) before the update")
            self._event(EV_LOG, "modem rebooted during %s; starting over" % stage)
            self._at.cancel()
            self._run_plan(self._plan, now, self._plan.index("probe"))
            return
        if stage in TRANSFER_STAGES or st in ("FTPSTART", "FTPEND", "HTTPSTART", "HTTPEND"):
            self._fail(None, "the modem rebooted (RDY) during the download")
        self.reboots += 1
        self._event(EV_REBOOT, self.reboots)
        if st in ("REBOOT", "listen", "await") or stage == "VERIFY" or st == "settle":
            self._at.cancel()
            self._run_plan(self._verify, now)

    def _on_fota(self, kind, value, now):
        st = self.state
        name = urc.NAMES[kind].decode()
        listening = st in ("listen", "await")
        if self._in_step() and st != "qfotadl" and not listening:
            # Before AT+QFOTADL: left over from an earlier, aborted update; after the
            # upgrade: a repeated line. Not ours either way.
            when = "before AT+QFOTADL" if self.stage in SAFE_STAGES else "in " + self.stage
            self._event(EV_LOG, "FOTA URC %s ignored: %s %d" % (when, name, value))
            return
        if listening:
            from qfota.recovery import on_urc

            on_urc(self, kind, name, value, now)
            return
        if kind in _DOWNLOAD_KINDS and kind not in _KINDS_OF[self.scheme]:
            self._event(EV_LOG, "%s ignored: this is a %s download" % (name, self.scheme))
            return
        if kind in _END_KINDS and value != 0:
            if kind == urc.END:
                self.end_code = value
            self._fail(value, None, "HTTPEND" if kind == urc.HTTPEND else name, MODEM)
        if kind == urc.DOWNLOADING:
            self._progress_urc(value, now)
            return
        if kind == urc.UPDATING or kind == urc.RESTORE:
            advanced = value > self._up_max
            if advanced:
                self._up_max = value
            self.updating = value
            self._event(EV_UPDATING, value, self.update_urcs)
            if st == "START":
                self._enter("UPDATING", now)
            elif st == "UPDATING" and advanced:
                self._wait(now, "progress_ms" if self.update_urcs else "end_ms")
            return
        if st == "qfotadl":
            if kind == _START_OF[self.scheme]:
                self._started_early = True  # before the OK: go on once it arrives
            return
        if kind == urc.FILEEND and self.sent < (self.length or 0):
            self._fail(
                0, "FILEEND before all bytes were sent (%d of %d)" % (self.sent, self.length)
            )
        if kind == urc.END:
            self.end_code = value
        nxt = _URC_NEXT.get((st, kind))
        if nxt is None:
            self._event(EV_LOG, "%s out of turn ignored (in %s)" % (name, st))
            return
        self._enter(nxt, now)

    def _progress_urc(self, value, now):
        # A progress URC re-arms its wait only when it goes further than any before: a
        # module repeating the same line (a retrying bootloader) cannot wait forever.
        advanced = value > self._dl_max
        if advanced:
            self._dl_max = value
        self.downloading = value
        self._event(EV_DOWNLOADING, value, self.download_urcs)
        if self.state in ("FTPEND", "HTTPEND") and self.download_urcs and advanced:
            self._wait(now, "progress_ms")
