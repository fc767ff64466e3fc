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

Up to ``AT+QFOTADL`` the session runs a plan of AT steps (``qfota.steps``, rows of data;
the readers of ``qfota.answers`` return what they read); then the note's URCs move it
through ``recovery.URC_NEXT`` (the URC phase's tables and rules, loaded only then); a
last plan (VERIFY) reads the revision after the reboot.
The state moves here only (h11's ``_state.py``): ``state`` is a step's name, a URC state,
``"DONE"`` or ``"FAILED"`` (``error`` holds the ``FotaError``). Nothing here sleeps,
reads a clock, touches a port or calls back into the caller.
"""

from qfota import at, urc
from qfota.compat import const, release, ticks_add, ticks_diff
from qfota.errors import INTERRUPTED, FotaError, redact
from qfota.lines import LineFramer

_PROBE_EVERY = const(1000)  # ms between probes
_PROBE_QUIET = const(1500)  # ms without an OK after a probe answered, when several went out
_REPORTS = const(100)  # EV_SENT at most this many times per transfer
_EVENTS_MAX = const(32)  # events queued between two next_event() calls, beyond the vital ones


class Session:
    """One FOTA update: FILE mode with ``length``, URL mode with ``url``; or, with
    ``recover=True``, following an update begun before to its end; or, with
    ``info=True``, reading the modem's state and changing nothing.

    ``options``: the rows of ``qfota.checks.OPTIONS``, all checked here, before a byte
    goes out. ``listen_first``: listen quietly for ``fileend_ms`` before the first probe
    (the last run may have cut a transfer; default: only for ``recover``).
    ``table``/``plan``: the step rows and the plan function, instead of ``qfota.steps``'s.
    """

    def __init__(
        self,
        length=None,
        url=None,
        recover=False,
        info=False,
        listen_first=None,
        protocol_download=False,
        trace=False,
        table=None,
        plan=None,
        **options,
    ):
        self.mode = "recover" if recover else "info" if info else "update"
        from qfota import checks

        # One dict, read where it is needed (``s.opt["timeouts"]``): every option set or
        # defaulted, ``scheme``, and ``gates`` (step -> (option, refusal)).
        self.opt = checks.session_options(length, url, protocol_download, self.mode, options)
        del checks  # with the release, nothing holds it: its code can be collected
        release("checks")
        self.length = length
        self.url = url
        self.listen_first = recover if listen_first is None else listen_first
        self.trace = trace  # report every line sent and received (EV_TX, EV_RX)
        # The plan, the rows of its steps and their templates' values, taken from
        # qfota.steps once; then the module is released (on MicroPython its code and data
        # are heap). The URC phase's tables are qfota.recovery's, loaded only for it.
        from qfota import steps

        self._plan = (plan or steps.plan)(self)  # type: list[str]
        self._verify = steps.VERIFY
        self._rows = steps.rows(self, self._plan + list(self._verify), table)
        self._args = steps.args(self)
        del steps
        release("steps")
        # What the modem told us and how far the run got: all set here, so the instance's
        # attribute table has its size before the heap is in pieces (a table that grows
        # later needs a new block, of ~750 bytes on a 64-bit port, mid-run).
        self.revision_before = self.revision_after = self.voltage_mv = self.rssi = None
        self.supported = self.flow_setting = self.imei = self.pdp = self.usbifc = None  # as read
        self.recovered = None  # listening: the last download/upgrade URC seen ("FILEEND 500")
        self.end_code = self.result = self.error = None  # "updated" | "current" | ...
        self.sent = self.stream_ms = self.downloading = self.updating = self.reboots = 0
        self.events_dropped = 0
        self.streaming = False
        self.state = ""  # a step's name, a URC state, "DONE" or "FAILED"
        self._stage = self._deadline = self._out = None
        self._phase = ()  # type: tuple[str, ...] | list[str]  # the plan being run
        self._i = self._now = self._probes = self._resend_at = self._quiet_until = 0
        self._restarts = self._dl_max = self._up_max = self._t_stream = self._next_report = 0
        self._wait_key = "probe_ms"
        self._answered = False  # a probe was answered: waiting out the others' OKs
        self._early = False  # FILESTART/FTPSTART before the OK to AT+QFOTADL (qfota.recovery)
        self._heard = False  # listening: a FOTA URC of an earlier update came (qfota.recovery)
        self._events = []
        self._at = at.AtChannel()
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

    @property
    def done(self):
        return self.state == "DONE" or self.state == "FAILED"

    def next_event(self):
        """The oldest event not yet taken, ``(EV_*, a, b)``, or None."""
        return self._events.pop(0) if self._events else None

    def feed(self, data, start, end, now):
        """Bytes from the modem: ``data[start:end]``."""
        if not self.done:
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
            self._next_report = self.sent + max(1, (self.length or 0) // _REPORTS)
            self._event(at.EV_SENT, self.sent, self.length)

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
        """Stop here: the session fails with ``FotaError(stage, None, reason, kind)``."""
        if not self.done:
            self._terminate(FotaError(self.stage, None, reason, kind))

    @property
    def stage(self):
        return self._stage or "PREFLIGHT"

    # ---------------------------------------------------------------- internals
    def _guard(self, fn, a, b, c=None):
        # Every public call ends here: a failure is a state, not an exception through
        # the driver's loop.
        try:
            if c is None:
                fn(a, b)
            else:
                fn(a, b, c)
        except FotaError as e:
            self._terminate(e)

    def _terminate(self, err):
        self.error = err
        self.state = "FAILED"
        self.streaming = False
        self._out = self._deadline = None
        self._at.cancel()

    def _event(self, ev, a=None, b=None):
        # Past _EVENTS_MAX, log, trace and progress events are counted, not kept.
        if len(self._events) >= _EVENTS_MAX and ev in at.CHATTY_EVENTS:
            self.events_dropped += 1
        else:
            self._events.append((ev, a, b))

    def _set_stage(self, stage):
        if stage != self._stage:
            self._stage = stage
            self._event(at.EV_STAGE, stage)

    def _wait(self, now, key, extra=0):
        self._deadline = ticks_add(now, self.opt["timeouts"][key] + extra)
        self._wait_key = key

    def _send(self, line, prefix=None):
        self._out = self._at.send(line, prefix)
        if self.trace:
            self._event(at.EV_TX, redact(line.decode()))

    # ------------------------------------------------ AT phase: running the plan
    def _run_plan(self, plan, now, i=0):
        self._phase = plan
        self._step(i, now)

    def _step(self, i, now):
        plan = self._phase
        if i >= len(plan):
            self._finish({"recover": "recovered", "info": "info"}.get(self.mode, "updated"))
            return
        self._i = i
        name = self.state = plan[i]
        stage, cmd, prefix, wait, on_err, _r, _c = self._rows[name]
        self._set_stage(stage)
        self._wait(now, wait)
        self._answered = False
        self._probes = 0
        if cmd is None:
            return  # listen only
        args = self._args.get(name)
        self._send(cmd if args is None else cmd % args, prefix)
        if on_err == at.RETRY:
            self._probes = 1
            self._resend_at = ticks_add(now, _PROBE_EVERY)
        for later in plan[i:]:
            if self._rows[later][5]:
                break
        else:  # no step left reads an answer: the readers' code can go (the stream's room)
            release("answers")
        if name == "qfotadl":
            self._early = False
            if self.opt["scheme"] == "file":
                self._wait(now, "filestart_ms")

    def _next(self, now, skip=0):
        self._step(self._i + 1 + skip, now)

    def _finish(self, result):
        rev = self.revision_after  # judged already (answers.judge): the target, or not the old one
        self.result = result
        self._set_stage("DONE")
        self.state = "DONE"
        self._deadline = None
        self._event(at.EV_DONE, rev or self.revision_before)

    def _answer(self, kind, now):
        name = self.state
        row = self._rows[name]
        on_err, reader = row[4], row[5]
        if kind == at.OK and on_err == at.RETRY:  # a probe answered
            if name == "await" and not self._heard:
                from qfota.recovery import NONE_UNDER_WAY

                self._event(at.EV_LOG, NONE_UNDER_WAY)
            if self._probes <= 1:
                self._next(now)
            else:  # others may still answer: wait for a quiet line, or a late OK is
                self._answered = True  # taken for the next command's
                self._stray_ok(now)
        elif kind == at.OK and name == "qfotadl":  # the transfer begins: the URC phase
            from qfota.recovery import begin

            self._rows, state = begin(self)
            self._args = {}
            self._enter(state, now)
        elif kind == at.OK:
            skip = None
            if reader:
                if not callable(reader):  # a reader of qfota.answers by name: loaded now
                    from qfota import answers

                    reader = getattr(answers, reader)
                skip = self._took(*reader(self._at.body))  # type: ignore
            if self.state == name:  # the answer did not end the session
                self._next(now, 1 if skip == at.SKIP else 0)
        elif kind == at.PROTO or on_err != at.RETRY:  # ERROR or +CME ERROR to a probe: keep probing
            from qfota.cut import on_error  # rare: loaded only now

            on_error(self, kind, now)

    def _took(self, what, value):
        """What a step's reader read, recorded: the one place an answer moves the session
        (what it means is ``qfota.answers.judge``'s: it raises a failure or a refusal).
        Returns SKIP when the step after this one is not needed."""
        from qfota.answers import judge

        if what == "revision" and value is not None:
            after = self.stage == "VERIFY"  # after the upgrade's reboot: what it runs now
            if after:
                self.revision_after = value
            else:
                self.revision_before = value
            self._event(at.EV_REVISION, "after" if after else "before", value)
        then, log = judge(self, what, value)
        if log:
            self._event(at.EV_LOG, log)
        if then == "current":
            self._finish("current")
        elif value is not None and what != "revision":
            setattr(self, what, value)
        return then

    def _stray_ok(self, now):
        self._quiet_until = ticks_add(now, _PROBE_QUIET)
        self._deadline = ticks_add(self._quiet_until, 1000)

    def _poll(self, now, _unused):
        row = self._rows.get(self.state)
        if row is not None and row[4] == at.RETRY:
            if self._answered:
                if ticks_diff(now, self._quiet_until) >= 0:
                    self._next(now)
                    return
            elif ticks_diff(now, self._resend_at) >= 0:
                self._resend_at = ticks_add(now, _PROBE_EVERY)
                self._probes += 1
                self._send(row[1])
        if self._deadline is not None and ticks_diff(now, self._deadline) >= 0:
            from qfota.cut import on_timeout  # a wait ran out: rare, loaded only now

            on_timeout(self, now)

    # ------------------------------------------------ URC phase
    def _enter(self, state, now):
        """Into URC state ``state`` (again into the one it is in when a progress URC goes
        further): its wait, ``qfota.recovery.wait``'s, starts."""
        self.state = state
        self._set_stage(state)
        self.streaming = state == "STREAM"
        if self.streaming:
            self._t_stream = now
            self._deadline = None  # the driver bounds the stream (stall_ms)
            release("recovery")  # the URC phase's rules: the stream wants the room
            return
        from qfota.recovery import wait

        key, extra = wait(self)
        if key is not None:
            self._wait(now, key, extra)

    def _on_line(self, buf, n):
        now = self._now
        kind = self._urc.parse(buf, n)
        if self.trace:
            self._event(at.EV_RX, redact(at.text(buf, n)))
        if kind == urc.NONE:
            answer = self._at.take(buf, n)
            if answer == at.GARBAGE:
                self._event(at.EV_LOG, "garbage line ignored (%d bytes)" % n)
            elif answer:
                self._answer(answer, now)
            elif self._answered and n == 2 and urc.starts_with(buf, 0, n, b"OK"):
                self._stray_ok(now)  # a late answer to an earlier probe
        elif kind == urc.INCOMPLETE:
            self._event(at.EV_LOG, "incomplete FOTA line ignored: %r" % bytes(buf[:n]))
        elif kind != urc.BOOT:  # a FOTA URC or RDY: the URC phase's rules, loaded only now
            from qfota.recovery import on_urc

            on_urc(self, kind, self._urc.value, now)
