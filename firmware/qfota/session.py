"""The FOTA protocol as a sans-I/O state machine: bytes in, commands out, no waiting.

A driver (``qfota.driver``) owns the port and the clock and moves bytes::

    s = Session(FileSource(4884688), upgrade_mode=1, download_urcs=50)
    s.start(now)
    while not s.done:
        cmd = s.take_output()          # a command line to write, or None
        ...write it...
        s.feed(rx, 0, n, now)          # whatever the modem said
        if s.streaming: ...write package bytes...; s.image_sent(k, now)
        s.poll(now)                    # deadlines; raises FotaError when one passes

Every failure is a ``FotaError(stage, code, detail)``. ``on_event`` may raise to stop the
session: raised from the ``EV_REVISION`` "before" event it stops the update before flow
control or ``AT+QFOTADL`` is sent (the app refuses a modem on the wrong revision so). The session never sleeps, reads
a clock or touches a port; the same code runs on MicroPython and CPython.
"""

from qfota import urc
from qfota.compat import const, ticks_add, ticks_diff
from qfota.errors import TIMEOUT, FotaError, redact
from qfota.lines import LineFramer

# Events reported to ``on_event(event, a, b)``.
EV_STAGE = const(1)  # a: stage name
EV_REVISION = const(2)  # a: "before" | "after", b: revision
EV_SENT = const(3)  # a: package bytes sent, b: total (from the driver)
EV_DOWNLOADING = const(4)  # a: URC index, b: download_URC_max
EV_UPDATING = const(5)  # a: URC index, b: update_URC_max
EV_LOG = const(6)  # a: text (a line not understood, a warning)
EV_REBOOT = const(7)  # a: reboots seen since AT+QFOTADL
EV_TX = const(8)  # a: command line sent (redacted)
EV_RX = const(9)  # a: line received (redacted)
EV_DONE = const(10)  # a: revision after

FLOW_NONE = const(0)
FLOW_HW = const(1)

# Defaults from FIELD_NOTES ("Timing others use"), in ms; all settable.
TIMEOUTS = {
    "probe_ms": 10_000,  # modem answers AT before we start
    "command_ms": 5_000,  # an ordinary command's final response
    "pdp_ms": 150_000,  # AT+QIACT
    "filestart_ms": 10_000,  # OK/FILESTART after AT+QFOTADL="FILE:..."
    "stall_ms": 10_000,  # the UART takes no byte for this long (CTS held)
    "fileend_ms": 30_000,  # FILEEND after the last byte
    "dlstart_ms": 60_000,  # FTPSTART/HTTPSTART after AT+QFOTADL=<url>
    "download_ms": 1_800_000,  # whole URL download when no progress URCs come
    "progress_ms": 120_000,  # between two progress URCs (DOWNLOADING/UPDATING)
    "start_ms": 60_000,  # START after the download ended
    "end_ms": 300_000,  # END after START when no UPDATING URCs come
    "reboot_ms": 60_000,  # RDY after a reboot
    "settle_ms": 15_000,  # modem answers AT again after a reboot
}

# States. _STAGE maps each to the name a failure reports.
_PROBE = const(0)
_ECHO = const(1)
_REV = const(2)
_REV_ATI = const(3)
_TEST = const(4)
_CBC = const(5)
_FLOW = const(6)
_FLOW_READ = const(7)
_CSGP_READ = const(8)
_CSGP = const(9)
_FCID_READ = const(10)
_FCID = const(11)
_ACT_READ = const(12)
_ACT = const(13)
_FOTADL = const(14)
_FILESTART = const(15)
_STREAM = const(16)
_FILEEND = const(17)
_DLSTART = const(18)
_DLEND = const(19)
_START = const(20)
_UPDATING = const(21)
_REBOOT = const(22)
_SETTLE = const(23)
_POST_ECHO = const(24)
_POST_REV = const(25)
_POST_REV_ATI = const(26)
_DONE = const(27)
_RECOVER = const(28)

_STAGE = (
    "PREFLIGHT",
    "PREFLIGHT",
    "PREFLIGHT",
    "PREFLIGHT",
    "PREFLIGHT",
    "POWER",
    "FLOWCTRL",
    "FLOWCTRL",
    "PDP",
    "PDP",
    "PDP",
    "PDP",
    "PDP",
    "PDP",
    "QFOTADL",
    "FILESTART",
    "STREAM",
    "FILEEND",
    "DLSTART",  # replaced by FTPSTART/HTTPSTART
    "DLEND",  # replaced by FTPEND/HTTPEND
    "START",
    "UPDATING",
    "REBOOT",
    "REBOOT",
    "VERIFY",
    "VERIFY",
    "VERIFY",
    "DONE",
    "RECOVER",
)

# AT channel: what the pending command is waiting for.
_IDLE = const(0)
_WAITING = const(1)

_PROBE_QUIET = const(
    1500
)  # ms without an OK after a probe answered, when several went out  # echo lines longer than this are compared by prefix only
_BODY_MAX = const(20)  # lines kept of one response (16 PDP contexts fit); the rest is noise


_DOWNLOAD_KINDS = (urc.FTPSTART, urc.FTPEND, urc.HTTPSTART, urc.HTTPEND, urc.FILESTART, urc.FILEEND)


def _text(buf, n):
    """``buf[:n]`` as text; bytes outside printable ASCII as ``\\xNN`` (MicroPython's
    ``decode`` has no ``errors="replace"`` and raises on bad UTF-8)."""
    if _printable(buf, n):
        return bytes(buf[:n]).decode()
    out = []
    for i in range(n):
        c = buf[i]
        out.append(chr(c) if 32 <= c <= 126 else "\\x%02x" % c)
    return "".join(out)


def _printable(buf, n):
    for i in range(n):
        c = buf[i]
        if c < 32 or c > 126:
            return False
    return True


def check_params(upgrade_mode, download_urcs, update_urcs):
    """The note's ranges: upgrade_mode 0|1, URC max values 0 or 5-100."""
    if upgrade_mode not in (0, 1):
        raise FotaError("PARAMS", None, "upgrade_mode must be 0 or 1, not %r" % (upgrade_mode,))
    for name, v in (("download_URC_max", download_urcs), ("update_URC_max", update_urcs)):
        if not isinstance(v, int) or not (v == 0 or 5 <= v <= 100):
            raise FotaError("PARAMS", None, "%s must be 0 or 5-100, not %r" % (name, v))


def parse_ranges(text):
    """``(0,5-100)`` -> ``[(0, 0), (5, 100)]``."""
    out = []
    for part in text.strip().strip("()").split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            lo, hi = part.split("-", 1)
            out.append((int(lo), int(hi)))
        else:
            out.append((int(part), int(part)))
    return out


def _in_ranges(v, ranges):
    for lo, hi in ranges:
        if lo <= v <= hi:
            return True
    return False


class Session:
    """One FOTA update. FILE mode with ``length``, URL mode with ``url``.

    ``flow``: FLOW_HW sends ``AT+IFC=2,2`` (``usb=True``: ``AT+QCFG="usbifc",2,2`` and reads
    it back); FLOW_NONE sends ``AT+IFC=0,0`` and the driver paces the stream.
    ``protocol_download=True`` asks for the note's ``"FILE:<length>",2`` mode, which is
    recognised (``010003``) and then refused: its framing is not published.
    """

    def __init__(
        self,
        length=None,
        url=None,
        upgrade_mode=1,
        download_urcs=0,
        update_urcs=100,
        flow=FLOW_HW,
        usb=False,
        cid=None,
        apn=None,
        min_voltage_mv=None,
        timeouts=None,
        on_event=None,
        protocol_download=False,
        recover=False,
        trace=False,
    ):
        # Everything is checked here, before a byte goes to the modem.
        if recover:
            self.scheme = "file"
        elif (length is None) == (url is None):
            raise FotaError("PARAMS", None, "give either an image length or a URL")
        elif length is not None and (not isinstance(length, int) or length <= 0):
            raise FotaError("PARAMS", None, "image length must be > 0, not %r" % (length,))
        else:
            self.scheme = "file"
        if url is not None:
            from qfota.urls import check_url  # URL mode only: not loaded for FILE mode

            self.scheme = check_url(url)[0]
        check_params(upgrade_mode, download_urcs, update_urcs)
        if cid is not None and not (isinstance(cid, int) and 1 <= cid <= 16):
            raise FotaError("PARAMS", None, "cid must be 1-16, not %r" % (cid,))
        if apn is not None and (len(apn) > 62 or '"' in apn):
            raise FotaError("PARAMS", None, "APN must be at most 62 characters without quotes")
        if flow not in (FLOW_HW, FLOW_NONE):
            raise FotaError("PARAMS", None, "flow must be hw or none")
        self.timeouts = dict(TIMEOUTS)
        if timeouts:
            for k, v in timeouts.items():
                if k not in TIMEOUTS:
                    raise FotaError("PARAMS", None, "unknown timeout %r" % (k,))
                if not isinstance(v, int) or v <= 0:
                    raise FotaError("PARAMS", None, "timeout %s must be > 0 ms" % k)
                self.timeouts[k] = v
        self.length = length
        self.url = url
        self.upgrade_mode = upgrade_mode
        self.download_urcs = download_urcs
        self.update_urcs = update_urcs
        self.flow = flow
        self.usb = usb
        self.cid = cid if cid is not None else (1 if apn is not None else None)
        self.apn = apn
        self.min_voltage_mv = min_voltage_mv
        self.protocol_download = protocol_download
        self.recover = recover
        self.trace = trace  # report every line sent and received (EV_TX, EV_RX)
        self.recovered = (
            None  # recover mode: the last download/upgrade URC seen, e.g. "FILEEND 500"
        )
        self.on_event = on_event
        if self.scheme == "file":
            self._dl_names = ("FILESTART", "FILEEND")
            self._dl_kinds = (urc.FILESTART, urc.FILEEND)
        elif self.scheme == "ftp":
            self._dl_names = ("FTPSTART", "FTPEND")
            self._dl_kinds = (urc.FTPSTART, urc.FTPEND)
        else:
            self._dl_names = ("HTTPSTART", "HTTPEND")
            self._dl_kinds = (urc.HTTPSTART, urc.HTTPEND)
        self._dl_max = 0  # highest DOWNLOADING / UPDATING index seen
        self._up_max = 0

        self.revision_before = None
        self.revision_after = None
        self.voltage_mv = None
        self.supported = None  # ranges from AT+QFOTADL=?
        self.sent = 0  # package bytes the driver has written
        self.stream_ms = 0  # first to last package byte, measured by the driver
        self.downloading = 0  # last DOWNLOADING index
        self.updating = 0  # last UPDATING index
        self.reboots = 0  # RDY seen after AT+QFOTADL
        self.end_code = None
        self.done = False
        self.streaming = False

        self._state = _PROBE
        self._restarts = 0
        self._now = 0
        self._wait_key = "probe_ms"
        self._filestart_seen = False
        self._dlstart_seen = False
        self._deadline = 0
        self._resend_at = 0
        self._probes = 0  # "AT" probes sent in this probing phase
        self._answered = False  # one was answered: now waiting out the others' OKs
        self._quiet_until = 0
        self._out = None
        self._cmd = None  # the pending command line, for echo detection
        self._at = _IDLE
        self._prefix = None
        self._body = []
        self._urc = urc.UrcParser()
        self._framer = LineFramer(self._on_line)

    # ---------------------------------------------------------------- driver API
    def start(self, now):
        self._enter(_RECOVER if self.recover else _PROBE, now)

    def take_output(self):
        """The next command line to write (bytes), or None."""
        out = self._out
        self._out = None
        return out

    def feed(self, data, start, end, now):
        """Bytes from the modem: ``data[start:end]``."""
        self._now = now
        self._framer.feed(data, start, end)

    def image_sent(self, n):
        """The driver wrote ``n`` more package bytes; True once all are out. Allocates nothing."""
        self.sent += n
        return self.sent >= self.length

    def image_complete(self, now):
        """The driver wrote the last byte: now wait for FILEEND."""
        self.streaming = False
        if self._state == _STREAM:
            self._enter(_FILEEND, now)

    def poll(self, now):
        """Check the current wait's deadline; resend probes. Raises FotaError."""
        if self.done:
            return
        st = self._state
        if st in (_PROBE, _SETTLE, _RECOVER):
            if self._answered:
                if ticks_diff(now, self._quiet_until) >= 0:
                    self._after(st, now)
            elif ticks_diff(now, self._resend_at) >= 0:
                self._resend_at = ticks_add(now, 1000 if st != _RECOVER else 2000)
                self._probes += 1
                self._command(b"AT")
        if ticks_diff(now, self._deadline) >= 0:
            self._timeout(now)

    @property
    def has_output(self):
        return self._out is not None

    @property
    def stage(self):
        return self._stage_name(self._state)

    # ---------------------------------------------------------------- internals
    def _stage_name(self, state):
        if state == _DLSTART:
            return self._dl_names[0]
        if state == _DLEND:
            return self._dl_names[1]
        return _STAGE[state]

    def _cmd_text(self):
        return self._cmd.decode() if self._cmd is not None else ""

    def _event(self, ev, a=None, b=None):
        if self.on_event is not None:
            self.on_event(ev, a, b)

    def _fail(self, code=None, detail=None, stage=None, kind=None):
        self.streaming = False
        raise FotaError(stage or self._stage_name(self._state), code, detail, kind)

    def _wait(self, now, key, extra=0):
        self._deadline = ticks_add(now, self.timeouts[key] + extra)
        self._wait_key = key

    def _command(self, line, prefix=None):
        self._cmd = line
        self._prefix = prefix
        self._body = []
        self._at = _WAITING
        self._out = line + b"\r"
        if self.trace:
            self._event(EV_TX, redact(line.decode()))

    def _enter(self, state, now, cmd_timeout="command_ms"):
        prev = self._state
        self._state = state
        self._answered = False
        if self._stage_name(prev) != self._stage_name(state) or state == _PROBE:
            self._event(EV_STAGE, self._stage_name(state))
        self._wait(now, cmd_timeout)
        if state == _PROBE or state == _SETTLE:
            self._wait(now, "probe_ms" if state == _PROBE else "settle_ms")
            self._resend_at = ticks_add(now, 1000)
            self._answered = False
            self._probes = 1
            self._command(b"AT")
        elif state == _ECHO or state == _POST_ECHO:
            self._command(b"ATE0")
        elif state == _REV or state == _POST_REV:
            self._command(b"AT+QGMR")
        elif state == _REV_ATI or state == _POST_REV_ATI:
            self._command(b"ATI")
        elif state == _TEST:
            self._command(b"AT+QFOTADL=?", b"+QFOTADL:")
        elif state == _CBC:
            self._command(b"AT+CBC", b"+CBC:")
        elif state == _FLOW:
            v = b"2,2" if self.flow == FLOW_HW else b"0,0"
            self._command((b'AT+QCFG="usbifc",' if self.usb else b"AT+IFC=") + v)
        elif state == _FLOW_READ:
            self._command(b'AT+QCFG="usbifc"', b"+QCFG:")
        elif state == _CSGP_READ:
            self._command(b"AT+QICSGP=%d" % self.cid, b"+QICSGP:")
        elif state == _CSGP:
            self._command(b'AT+QICSGP=%d,1,"%s","","",1' % (self.cid, (self.apn or "").encode()))
        elif state == _FCID_READ:
            self._command(b'AT+QFOTA="fota/cid"', b"+QFOTA:")
        elif state == _FCID:
            self._command(b'AT+QFOTA="fota/cid",%d' % self.cid)
        elif state == _ACT_READ:
            self._command(b"AT+QIACT?", b"+QIACT:")
        elif state == _ACT:
            self._wait(now, "pdp_ms")
            self._command(b"AT+QIACT=%d" % self.cid)
        elif state == _FOTADL:
            self._wait(now, "filestart_ms" if self.scheme == "file" else "command_ms")
            self._filestart_seen = False
            self._dlstart_seen = False
            self._command(self._fotadl_line())
        elif state == _FILESTART:
            pass  # deadline carried over from _FOTADL: FILESTART within filestart_ms
        elif state == _STREAM:
            self.streaming = True
        elif state == _FILEEND:
            self._wait(now, "fileend_ms")
        elif state == _DLSTART:
            self._wait(now, "dlstart_ms")
        elif state == _DLEND:
            self._wait(now, "progress_ms" if self.download_urcs else "download_ms")
        elif state == _START:
            # upgrade_mode 0: the module reboots before upgrading; allow for it.
            extra = self.timeouts["reboot_ms"] if self.upgrade_mode == 0 else 0
            self._wait(now, "start_ms", extra)
        elif state == _UPDATING:
            self._wait(now, "progress_ms" if self.update_urcs else "end_ms")
        elif state == _REBOOT:
            self._wait(now, "reboot_ms")
        elif state == _RECOVER:
            # After an MCU reset: the modem may be mid-upgrade (listen for END/RDY) or
            # still in a half-sent FILE transfer, where an "AT" would be taken as package
            # data: so listen quietly first, and only then probe.
            self._deadline = ticks_add(now, self.timeouts["end_ms"] + self.timeouts["reboot_ms"])
            self._wait_key = "end_ms"
            self._resend_at = ticks_add(now, self.timeouts["fileend_ms"])
            self._answered = False
            self._probes = 0
        elif state == _DONE:
            self.done = True
            self._event(EV_DONE, self.revision_after)

    def _fotadl_line(self):
        if self.scheme == "file":
            if self.protocol_download:
                return b'AT+QFOTADL="FILE:%d",2' % self.length
            target = b"FILE:%d" % self.length
        else:
            target = (self.url or "").encode()
        return b'AT+QFOTADL="%s",%d,%d,%d' % (
            target,
            self.upgrade_mode,
            self.download_urcs,
            self.update_urcs,
        )

    def _timeout(self, now):
        st = self._state
        if st == _REBOOT:
            # No RDY seen: some modules print END after their reboot. Probe instead.
            self._event(
                EV_LOG,
                "no RDY within %d ms after END; probing with AT" % self.timeouts["reboot_ms"],
            )
            self._enter(_SETTLE, now)
            return
        if st == _TEST and self._at == _WAITING:
            # AT+QFOTADL=? is optional: older firmware may not answer it.
            self._event(EV_LOG, "AT+QFOTADL=? not answered; using the note's ranges")
            self._at = _IDLE
            self._after(st, now)
            return
        what = {
            _PROBE: "the modem did not answer AT",
            _RECOVER: "the modem neither finished an update nor answered AT",
            _SETTLE: "the modem did not answer AT after its reboot",
            _FOTADL: "no OK / FILESTART after AT+QFOTADL"
            if self.scheme == "file"
            else "no OK after AT+QFOTADL",
            _FILESTART: 'no +QIND: "FOTA","FILESTART"',
            _FILEEND: 'no +QIND: "FOTA","FILEEND" after the last byte',
            _DLSTART: 'no +QIND: "FOTA","%s"' % self._dl_names[0],
            _DLEND: 'no +QIND: "FOTA","%s"' % self._dl_names[1],
            _START: 'no +QIND: "FOTA","START"',
            _UPDATING: 'no +QIND: "FOTA","UPDATING"/"END"',
        }.get(st)
        if what is None:
            what = "no answer to %s" % redact(self._cmd_text()) if self._cmd else "no answer"
        self._fail(
            None,
            "timeout after %d s: %s" % (self.timeouts[self._wait_key] // 1000, what),
            kind=TIMEOUT,
        )

    # ---------------------------------------------------------------- lines
    def _on_line(self, buf, n):
        now = self._now
        kind = self._urc.parse(buf, n)
        if self.trace:
            self._event(EV_RX, redact(_text(buf, n)))
        if kind == urc.NONE:
            if self._at == _WAITING:
                self._response(buf, n, now)
            elif self._answered and n == 2 and urc.starts_with(buf, 0, n, b"OK"):
                self._stray_ok(now)  # a late answer to an earlier probe
            return
        if kind == urc.INCOMPLETE:
            self._event(EV_LOG, "incomplete FOTA line ignored: %r" % bytes(buf[:n]))
            return
        if kind == urc.RDY or kind == urc.BOOT:
            self._on_boot(kind, now)
            return
        self._on_fota(kind, self._urc.value, now)

    def _response(self, buf, n, now):
        # Echo: the command line itself (echo is on again after every reboot).
        cmd = self._cmd
        if cmd is not None and n == len(cmd) and urc.starts_with(buf, 0, n, cmd):
            return
        if urc.starts_with(buf, 0, n, b"OK") and n == 2:
            self._at = _IDLE
            self._ok(now)
        elif n == 5 and urc.starts_with(buf, 0, n, b"ERROR"):
            self._at = _IDLE
            self._error(None, now)
        elif urc.starts_with(buf, 0, n, b"+CME ERROR:"):
            self._at = _IDLE
            self._error(_text(buf, n)[11:].strip(), now)
        elif n == 6 and urc.starts_with(buf, 0, n, b"010003"):
            self._at = _IDLE
            self._fail(
                None,
                "protocol-download file mode answered 010003; not supported: framing not published by the vendor",
            )
        elif not _printable(buf, n):
            self._event(EV_LOG, "garbage line ignored (%d bytes)" % n)
        elif len(self._body) >= _BODY_MAX:
            pass  # a chatty or broken modem must not grow memory while we wait
        elif self._prefix is not None:
            if urc.starts_with(buf, 0, n, self._prefix):
                self._body.append(bytes(buf[:n]).decode())
        elif buf[0] != 43:  # '+': other URCs are not part of a bare response
            self._body.append(bytes(buf[:n]).decode())

    def _error(self, cme, now):
        st = self._state
        if st == _REV:
            self._enter(_REV_ATI, now)
            return
        if st == _POST_REV:
            self._enter(_POST_REV_ATI, now)
            return
        if st == _TEST or (st == _CBC and self.min_voltage_mv is None):
            self._event(EV_LOG, "%s not supported by this modem" % self._cmd_text())
            self._after(st, now)
            return
        if st == _PROBE or st == _SETTLE or st == _RECOVER:
            return  # keep probing
        what = "+CME ERROR: %s" % cme if cme is not None else "ERROR"
        self._fail(None, "modem answered %s to %s" % (what, redact(self._cmd_text())))

    def _ok(self, now):
        st = self._state
        body = self._body
        if st == _PROBE or st == _SETTLE or st == _RECOVER:
            self._probe_answered(now)
            return
        if st == _REV or st == _POST_REV:
            rev = body[0].strip() if body else ""
            if not rev:
                self._enter(_REV_ATI if st == _REV else _POST_REV_ATI, now)
                return
            self._set_revision(st, rev, now)
            return
        if st == _REV_ATI or st == _POST_REV_ATI:
            rev = ""
            for line in body:
                if line.lower().startswith("revision:"):
                    rev = line[9:].strip()
            if not rev:
                self._fail(None, "no revision in the answer to ATI")
            self._set_revision(st, rev, now)
            return
        if st == _TEST:
            self._check_supported(body)
        elif st == _CBC:
            self._check_voltage(body)
        elif st == _FLOW_READ:
            if not body or body[0].replace(" ", "").lower() != '+qcfg:"usbifc",2,2':
                self._fail(
                    None, 'AT+QCFG="usbifc" reads back %r, not 2,2' % (body[0] if body else "")
                )
        elif st == _CSGP_READ:
            want = '"%s"' % self.apn
            if not body or want not in body[0]:
                self._enter(_CSGP, now)
                return
        elif st == _FCID_READ:
            if not body or not body[0].replace(" ", "").endswith(",%d" % self.cid):
                self._enter(_FCID, now)
                return
        elif st == _ACT_READ:
            for line in body:
                fields = line[7:].replace(" ", "").split(",")
                if fields and fields[0] == str(self.cid) and len(fields) > 1 and fields[1] == "1":
                    self._after(_ACT, now)
                    return
            self._enter(_ACT, now)
            return
        elif st == _FOTADL:
            if self.scheme == "file":
                if self._filestart_seen:
                    self._enter(_STREAM, now)
                else:
                    self._state = _FILESTART
                    self._event(EV_STAGE, "FILESTART")
                return
            if self._dlstart_seen:
                self._enter(_DLEND, now)
            else:
                self._enter(_DLSTART, now)
            return
        elif st == _PROBE:
            pass
        self._after(st, now)

    def _probe_answered(self, now):
        """An ``AT`` probe was answered. When several went out (a slow or booting modem),
        the others may still answer: wait until the line has had no OK for
        ``_PROBE_QUIET`` ms, or a late OK would be taken for the next command's."""
        if self._probes <= 1:
            self._after(self._state, now)
            return
        self._answered = True
        self._stray_ok(now)

    def _stray_ok(self, now):
        self._quiet_until = ticks_add(now, _PROBE_QUIET)
        self._deadline = ticks_add(self._quiet_until, 1000)

    def _after(self, st, now):
        """Move on from a finished command state."""
        if st == _PROBE:
            self._enter(_ECHO, now)
        elif st == _ECHO:
            self._enter(_REV, now)
        elif st == _TEST:
            self._enter(_CBC, now) if self.min_voltage_mv is not None else self._after(_CBC, now)
        elif st == _CBC:
            if self.scheme == "file":
                self._enter(_FLOW, now)
            elif self.cid is not None:
                self._enter(_CSGP_READ if self.apn is not None else _FCID_READ, now)
            else:
                self._enter(_FOTADL, now)
        elif st == _FLOW:
            self._enter(_FLOW_READ if self.usb and self.flow == FLOW_HW else _FOTADL, now)
        elif st == _FLOW_READ:
            self._enter(_FOTADL, now)
        elif st == _CSGP_READ or st == _CSGP:
            self._enter(_FCID_READ, now)
        elif st == _FCID_READ or st == _FCID:
            self._enter(_ACT_READ, now)
        elif st == _ACT_READ or st == _ACT:
            self._enter(_FOTADL, now)
        elif st == _SETTLE or st == _RECOVER:
            self._enter(_POST_ECHO, now)
        elif st == _POST_ECHO:
            self._enter(_POST_REV, now)

    def _set_revision(self, st, rev, now):
        if st == _REV or st == _REV_ATI:
            self.revision_before = rev
            self._event(EV_REVISION, "before", rev)
            self._enter(_TEST, now)
        else:
            self.revision_after = rev
            self._event(EV_REVISION, "after", rev)
            if rev == self.revision_before:
                self._event(EV_LOG, "revision unchanged after the update: %s" % rev)
            self._enter(_DONE, now)

    def _check_supported(self, body):
        if not body:
            return
        # +QFOTADL: <url>,(0,1),(0,5-100),(0,5-100)
        text = body[0]
        groups = []
        i = text.find("(")
        while i >= 0:
            j = text.find(")", i)
            if j < 0:
                break
            try:
                groups.append(parse_ranges(text[i : j + 1]))
            except ValueError:
                self._event(EV_LOG, "cannot read AT+QFOTADL=? answer: %r" % text)
                return
            i = text.find("(", j)
        if len(groups) < 3:
            self._event(EV_LOG, "cannot read AT+QFOTADL=? answer: %r" % text)
            return
        self.supported = groups
        names = ("upgrade_mode", "download_URC_max", "update_URC_max")
        values = (self.upgrade_mode, self.download_urcs, self.update_urcs)
        for name, v, ranges in zip(names, values, groups):
            if not _in_ranges(v, ranges):
                raise FotaError(
                    "PARAMS", None, "%s %d is not supported by this modem %s" % (name, v, text)
                )

    def _check_voltage(self, body):
        # +CBC: <bcs>,<bcl>,<voltage mV>
        try:
            mv = int(body[0].split(",")[2].strip())
        except (IndexError, ValueError):
            self._fail(None, "cannot read the voltage from AT+CBC: %r" % (body[0] if body else ""))
        self.voltage_mv = mv
        if self.min_voltage_mv is not None and mv < self.min_voltage_mv:
            self._fail(
                None,
                "supply %d mV below %d mV: power loss during the upgrade is unrecoverable (note, chapter 5)"
                % (mv, self.min_voltage_mv),
            )

    # ---------------------------------------------------------------- URCs
    def _on_boot(self, kind, now):
        st = self._state
        if kind == urc.BOOT:
            return
        if st <= _FOTADL:
            # A reboot before the update began: commands in flight are lost; start over.
            if st != _PROBE:
                self._restarts += 1
                if self._restarts > 3:
                    self._fail(None, "the modem keeps rebooting (RDY) before the update")
                self._event(EV_LOG, "modem rebooted during preflight; starting over")
                self._enter(_PROBE, now)
            return
        if st in (_FILESTART, _STREAM, _FILEEND, _DLSTART, _DLEND):
            self._fail(None, "the modem rebooted (RDY) during the download")
        self.reboots += 1
        self._event(EV_REBOOT, self.reboots)
        if st == _REBOOT or st == _RECOVER:
            self._enter(_SETTLE, now)

    def _on_fota(self, kind, value, now):
        st = self._state
        if st < _FOTADL and not self.recover:
            # Left over from an earlier, aborted update: not ours.
            self._event(
                EV_LOG,
                "FOTA URC before AT+QFOTADL ignored: %s %d" % (urc.NAMES[kind].decode(), value),
            )
            return
        if kind in _DOWNLOAD_KINDS and kind not in self._dl_kinds and not self.recover:
            self._event(
                EV_LOG,
                "%s ignored: this is a %s download" % (urc.NAMES[kind].decode(), self.scheme),
            )
            return
        # A progress URC re-arms its wait only when it goes further than any before: a
        # module repeating the same line (a retrying bootloader) cannot wait forever.
        if kind == urc.DOWNLOADING:
            advanced = value > self._dl_max
            if advanced:
                self._dl_max = value
            self.downloading = value
            self._event(EV_DOWNLOADING, value, self.download_urcs)
            if st == _DLEND and self.download_urcs and advanced:
                self._wait(now, "progress_ms")
            return
        if kind == urc.UPDATING or kind == urc.RESTORE:
            advanced = value > self._up_max
            if advanced:
                self._up_max = value
            self.updating = value
            self._event(EV_UPDATING, value, self.update_urcs)
            if st == _START or st == _RECOVER:
                self._state = _UPDATING
                st = _START
                advanced = True
            if st in (_START, _UPDATING) and advanced:
                self._wait(now, "progress_ms" if self.update_urcs else "end_ms")
            return
        if kind == urc.FILESTART:
            if st == _FOTADL:
                self._filestart_seen = True  # before OK: stream once OK arrives
            elif st == _FILESTART:
                self._enter(_STREAM, now)
            else:
                self._event(EV_LOG, "FILESTART out of turn ignored")
            return
        if kind == urc.FTPSTART or kind == urc.HTTPSTART:
            if st == _FOTADL:
                self._dlstart_seen = True
            elif st == _DLSTART:
                self._enter(_DLEND, now)
            return
        if kind == urc.FILEEND or kind == urc.FTPEND or kind == urc.HTTPEND:
            stage = "FILEEND" if kind == urc.FILEEND else self._dl_names[1]
            if st == _RECOVER:
                self.recovered = "%s %d" % (urc.NAMES[kind].decode(), value)
                self._event(EV_LOG, "recovering: the modem reports %s" % self.recovered)
                if value == 0:
                    self._enter(_START, now)
                return
            if value != 0:
                self._fail(value, None, stage)
            if kind == urc.FILEEND and self.length is not None and self.sent < self.length:
                self._fail(
                    0,
                    "FILEEND before all bytes were sent (%d of %d)" % (self.sent, self.length),
                    stage,
                )
            if st in (_FILEEND, _STREAM, _DLEND, _DLSTART, _FOTADL):
                self.streaming = False
                self._enter(_START, now)
            return
        if kind == urc.START:
            if st in (_START, _FILEEND, _DLEND, _RECOVER):
                self._enter(_UPDATING, now)
            return
        if kind == urc.END:
            self.end_code = value
            if value != 0:
                self._fail(value, None, "END")
            if st in (_START, _UPDATING, _RECOVER):
                self._enter(_REBOOT, now)
            else:
                self._event(EV_LOG, "END out of turn ignored")
            return
