"""The modem's HTTP(S) AT commands as a sans-I/O core: one request at a time, bytes in,
command lines, raw bytes and events out (``qfota.httpdrv`` is its driver).

The commands (Quectel's HTTP(S) AT manuals; docs/FIELD.md, "HTTP AT commands"):
``AT+QHTTPCFG``, ``AT+QHTTPURL`` + CONNECT + the URL, ``AT+QHTTPGET``/``AT+QHTTPPOST``
(+ CONNECT + the raw request or body) and ``+QHTTPGET: <err>,<code>,<length>`` later,
``AT+QHTTPREAD`` + CONNECT + the body as raw bytes + ``OK`` + ``+QHTTPREAD: <err>``.
``requestheader`` 1 (the MCU writes the whole request) carries ``Authorization`` and
``Range`` headers and a ``PUT``; 0 a plain GET or POST. The setting is sticky: the core
sends it only when the last value it set differs (unknown after a failure or a reboot).
The PDP context comes up first, as URL mode does (``AT+QIACT?``, ``AT+QIACT=<cid>``).

    h = HttpAt(cid=1)
    h.begin(now, "GET", "http://10.0.0.2/a.bin", (("Range", "bytes=0-4095"),))
    while not h.done:
        out = h.take_output()              # a command line, the URL or the raw request
        i += h.feed(rx, i, n, now)         # how many bytes it took; stops after a READ's CONNECT
        if h.body_left: ...                # the body: the driver copies it from its own buffer,
        h.body_taken(rx, i, k, now)        # then says how much (no per-byte work here)
        h.poll(now)                        # deadlines
    h.status, h.length, h.error

The body is binary and never scanned: the core knows its length from ``+QHTTPGET``.
``body_taken`` keeps the last ``HOLD`` bytes in ``tail`` (a copy of at most ``HOLD``
bytes per call, no allocation): a short body is followed by the modem's own
``OK``/``+QHTTPREAD: 717`` and a reboot by ``RDY`` and the boot URCs, which come as body
bytes; when the body goes quiet the core reads the tail's last line, and the driver writes
the tail to the sink only once ``+QHTTPREAD: 0`` has confirmed it. A response without a
length (chunked) is read up to the ``OK``/``+QHTTPREAD`` trailer, only for bodies up to
``limit``. Every value that goes into an AT line or the raw request is checked first
(``qfota.at.bad_char``): nothing from a caller or a server can end a line or add a
header. An ``Authorization`` value never appears in an event or an error.
"""

from qfota import urc
from qfota.at import CME, ERROR, EV_LOG, EV_RX, EV_TX, OK, PROTO, AtChannel, printable, text
from qfota.compat import const, release, ticks_add, ticks_diff
from qfota.defaults import TIMEOUTS as _ENGINE
from qfota.errors import FAILED, MODEM, FotaError, refuse
from qfota.lines import LineFramer

# Events (ev, a, b): qfota.at's EV_LOG, EV_TX (a command line or the raw request sent,
# Authorization redacted) and EV_RX, so one handler (qfota.report) reads both.

# Body bytes held back: the modem's own lines that follow a short body ("\r\nOK\r\n\r\n
# +QHTTPREAD: 717\r\n", 25 bytes) or a reboot (RDY and the boot URCs, about 100 bytes)
# fit, so they are found there and never reach the sink.
HOLD = const(128)

# The waits of this module, in ms; each can be overridden by name. The modem's own
# bounds (<rsp_s>, <wait_s>, <input_s>) are these in seconds; the core's are longer by
# command_ms, so the modem's answer (728, 726) comes first when it keeps to them.
TIMEOUTS = {
    "command_ms": _ENGINE["command_ms"],  # an OK, ERROR or CONNECT
    "pdp_ms": _ENGINE["pdp_ms"],  # AT+QIACT
    "stall_ms": _ENGINE["stall_ms"],  # the port takes no byte (the driver's bound)
    "response_ms": 60_000,  # <rsp_s>: +QHTTPGET/+QHTTPPOST after the request
    "read_ms": 60_000,  # <wait_s>: between two pieces of a body
    "input_ms": 30_000,  # <timeout_s>/<input_s>: the modem's bound on our URL/request
    "quiet_ms": 500,  # a body quiet this long: its last bytes are read for the modem's lines
}

# Kinds of step: what ends it.
_PLAIN = const(0)  # OK
_DATA = const(1)  # CONNECT, our bytes, OK
_REQ = const(2)  # OK, then +QHTTPGET/+QHTTPPOST
_DATA_REQ = const(3)  # CONNECT, our bytes, OK, then +QHTTPGET/+QHTTPPOST
_READ = const(4)  # CONNECT, the body, OK, +QHTTPREAD
_DRAIN = const(5)  # nothing sent: what is left of a failed request, read until quiet

_CMD = "command_ms"
# fmt: off
STEPS = {
    # name       stage       command                               kind       wait           body prefix
    "drain":   ("HTTP",     None,                                 _DRAIN,    "quiet_ms",    None),
    "cid":     ("PDP",      b'AT+QHTTPCFG="contextid",%d',        _PLAIN,    _CMD,          None),
    "rsphdr":  ("HTTPCFG",  b'AT+QHTTPCFG="responseheader",0',    _PLAIN,    _CMD,          None),
    "ssl":     ("HTTPCFG",  b'AT+QHTTPCFG="sslctxid",%d',         _PLAIN,    _CMD,          None),
    "qiact?":  ("PDP",      b"AT+QIACT?",                         _PLAIN,    _CMD,          b"+QIACT:"),
    "qicsgp":  ("PDP",      b'AT+QICSGP=%d,1,"%s","","",1',       _PLAIN,    _CMD,          None),
    "qiact":   ("PDP",      b"AT+QIACT=%d",                       _PLAIN,    "pdp_ms",      None),
    "reqhdr":  ("HTTPCFG",  b'AT+QHTTPCFG="requestheader",%d',    _PLAIN,    _CMD,          None),
    "url":     ("HTTPURL",  b"AT+QHTTPURL=%d,%d",                 _DATA,     _CMD,          None),
    "get":     ("HTTPGET",  b"AT+QHTTPGET=%d",                    _REQ,      "response_ms", None),
    "get_raw": ("HTTPGET",  b"AT+QHTTPGET=%d,%d,%d",              _DATA_REQ, "response_ms", None),
    "post":    ("HTTPPOST", b"AT+QHTTPPOST=%d,%d,%d",             _DATA_REQ, "response_ms", None),
    "read":    ("HTTPREAD", b"AT+QHTTPREAD=%d",                   _READ,     "read_ms",     None),
}
# fmt: on
_URCS = {"get": b"+QHTTPGET:", "get_raw": b"+QHTTPGET:", "post": b"+QHTTPPOST:"}
_LOST = (708, 709)  # network not configured, deactivated: the context is not up
_READ_URC = b"+QHTTPREAD:"
_PDPDEACT = b'+QIURC: "pdpdeact"'

# Phases inside a step.
_CMD_SENT = const(0)  # the command is out: its answer (or CONNECT)
_DATA_SENT = const(1)  # our bytes are out: OK
_AWAIT = const(2)  # OK seen: the +QHTTPGET/+QHTTPPOST line
_BODY = const(3)  # raw body: the driver copies it
_OPEN = const(4)  # a body without a length: the core gathers it up to the trailer
_TAIL = const(5)  # after the body: OK and +QHTTPREAD
_LF = const(6)  # a READ's CONNECT ended by CR: its LF may follow
# Each phase's name, for what a timeout says (qfota.httptail.timed_out)
_WHERE = ("command", "data", "await", "body", "open", "tail", "command")

_CR = const(13)
_LF_BYTE = const(10)
_PLUS = const(43)
_EVENTS_MAX = const(32)


class HttpAt:
    """One HTTP request at a time through the modem; the PDP context and the sticky
    settings are remembered from one request to the next.

    ``cid``: the PDP context (``AT+QHTTPCFG="contextid"``, ``AT+QIACT``); ``apn``: set with
    ``AT+QICSGP`` when the context must be brought up; ``timeouts``: ``TIMEOUTS`` by name;
    ``trace``: EV_TX/EV_RX events of every line (Authorization redacted); ``sslctxid``: for
    https, the SSL context the product configured (``AT+QSSLCFG``), sent with
    ``AT+QHTTPCFG="sslctxid"`` (Quectel's range 0-5).
    """

    def __init__(self, cid=1, apn=None, timeouts=None, trace=False, sslctxid=None):
        from qfota.httpcfg import check_http

        try:
            self.timeouts = check_http(TIMEOUTS, cid, apn, sslctxid, timeouts)
        finally:
            release("httpcfg")  # the options' checks: not held while a request runs
        self.cid = cid
        self.apn = apn
        self.sslctxid = sslctxid  # https: the SSL context (AT+QSSLCFG) the product set up
        self.trace = trace
        self.keep_checks = True  # qfota.httpreq held between requests (see begin())
        self.tail = bytearray(HOLD)  # the last body bytes (see the module's doc)
        self.tail_n = 0
        self.events_dropped = 0
        self._events = []
        self._at = AtChannel()
        self._urc = urc.UrcParser()
        self._framer = LineFramer(self._on_line)
        self._ready = False  # the context is up and responseheader is 0
        self._rh = None  # the requestheader value last set (None: not known)
        self._dirty = False  # the last request failed: the modem may still be talking
        self.done = True
        self.error = None
        self._reset()

    def forget(self):
        """The modem rebooted since the last request (an update on this port): its context
        is down and its sticky settings are back to their defaults; set them all up with
        the next request instead of finding out from a failed one."""
        self._ready = False
        self._rh = None

    def _reset(self):
        self.status = None  # the HTTP status code
        self.length = None  # <content_length>, None when the response gave none
        self.got = 0  # body bytes taken
        self.body_left = 0  # raw body bytes the driver is to copy now
        self.body = None  # a body without a length, gathered here (bytes)
        self.tail_n = 0
        self._out = None
        self._deadline = None
        self._last = 0
        self._now = 0
        self._checked = True
        self._plan = []
        self._i = 0
        self.state = ""
        self._phase = _CMD_SENT
        self._ok = False
        self._result = None  # (err, code, length) of +QHTTPGET/+QHTTPPOST
        self._stop = False
        self._plus = False
        self._retried = False
        self._acc = None
        self._scan = 0
        self._data = b""

    # ---------------------------------------------------------------- driver API
    def begin(self, now, method, url, headers=(), body=None, limit=4096, sink=False):
        """Start a request (checked first: a ``FotaError`` REFUSED means nothing was sent).
        ``sink``: the caller takes the body into a sink (no ``limit``, and no body at all
        unless the status is 2xx), else at most ``limit`` bytes."""
        if not self.done:
            raise FotaError("HTTP", None, "a request is already running", FAILED)
        if not isinstance(limit, int) or limit <= 0:
            raise refuse("HTTP", "limit must be > 0")
        # keep_checks: kept once loaded, as taking it in again for each Range request costs
        # more than its room (15 ms a request on an RP2040); else let go at once (polling).
        from qfota.httpreq import build_request

        rh, data, shown, secrets = build_request(method, url, headers, body, self.trace)
        if not self.keep_checks:
            release("httpreq")
        self._reset()
        self.error = None
        self.done = False
        self.method = method
        self.limit = limit
        self.sink = sink
        self._url = url.encode()
        self._shown = shown
        self._secrets = secrets
        self._data = data
        self._want_rh = 1 if rh else 0
        r = self.timeouts
        rsp_s = max(1, r["response_ms"] // 1000)
        in_s = max(1, r["input_ms"] // 1000)
        self._args = {
            "cid": self.cid,
            "ssl": self.sslctxid,
            "qicsgp": (self.cid, (self.apn or "").encode()),
            "qiact": self.cid,
            "reqhdr": self._want_rh,
            "url": (len(self._url), in_s),
            "get": rsp_s,
            "get_raw": (rsp_s, len(data), in_s),
            "post": (len(data), in_s, rsp_s),
            "read": max(1, r["read_ms"] // 1000),
        }
        self._retried = False
        self._plan = self._make_plan(self._dirty)
        self._dirty = True  # until it ends well
        self._step(0, now)

    def _make_plan(self, drain):
        plan = ["drain"] if drain else []
        if not self._ready:
            plan += ["cid", "rsphdr", "qiact?", "qiact"]
            if self.sslctxid is not None:
                plan.insert(plan.index("rsphdr") + 1, "ssl")
        if self._rh != self._want_rh:
            plan.append("reqhdr")
        plan.append("url")
        plan.append("post" if self.method != "GET" else "get_raw" if self._want_rh else "get")
        plan.append("read")
        return plan

    def _again(self, now, why, rebooted=False):
        """The modem lost what the core set up (it rebooted since the last request, say
        during a FILE update run by another driver on this port): before the request went
        out, set it all up again, once. False when that was done already."""
        if self._retried:
            return False
        self._retried = True
        self._ready = False
        self._rh = None
        self._event(EV_LOG, "%s: setting up the modem's HTTP again" % why)
        self._at.cancel()
        self._plan = self._make_plan(rebooted)
        self._step(0, now)
        return True

    def take_output(self):
        """The next bytes to write (a command line, the URL or the request), or None."""
        out = self._out
        self._out = None
        return out

    @property
    def has_output(self):
        return self._out is not None

    def next_event(self):
        if self._events:
            return self._events.pop(0)
        return None

    def feed(self, data, start, end, now):
        """Bytes from the modem, ``data[start:end]``; returns how many it took. It stops
        after the CONNECT of a read: then ``body_left`` bytes are the body's."""
        if self.done or self.body_left:
            return 0 if self.body_left else end - start
        try:
            return self._feed(data, start, end, now)
        except FotaError as e:
            self._fail_with(e)
            return end - start

    def body_taken(self, buf, off, k, now):
        """The driver took ``buf[off:off + k]`` as body (``k <= body_left``). Keeps the last
        ``HOLD`` bytes in ``tail``: those of the old tail that leave it, then the block's
        own up to the last ``HOLD``, go to the sink before this call. Allocates nothing."""
        tail = self.tail
        t = self.tail_n
        if k >= HOLD:
            j = off + k - HOLD
            for i in range(HOLD):
                tail[i] = buf[j + i]
            t = HOLD
        else:
            drop = t + k - HOLD
            if drop > 0:
                for i in range(t - drop):
                    tail[i] = tail[i + drop]
                t -= drop
            for i in range(k):
                tail[t + i] = buf[off + i]
            t += k
        self.tail_n = t
        self.got += k
        self.body_left -= k
        self._checked = False
        c = buf[off + k - 1]
        if c != _LF_BYTE and c != _CR:
            # Body. A block ending a line may be a URC after the end of a short body: it
            # does not keep the wait (or the quiet that checks the tail) from running out.
            self._last = now
            self._deadline = ticks_add(now, self._read_wait)
        if not self.body_left:
            self._phase = _TAIL
            self._deadline = ticks_add(now, self.timeouts[_CMD])

    def body_due(self, now):
        """While a body runs: True when ``poll`` has something to check (no allocation)."""
        if not self._checked and ticks_diff(now, self._last) >= self.timeouts["quiet_ms"]:
            return True
        return self._deadline is not None and ticks_diff(now, self._deadline) >= 0

    def poll(self, now):
        """Deadlines, and a body gone quiet."""
        if self.done:
            return
        try:
            self._poll(now)
        except FotaError as e:
            self._fail_with(e)

    def abort(self, reason, kind=FAILED):
        if not self.done:
            self._fail_with(FotaError(self.stage, None, reason, kind))

    @property
    def stage(self):
        row = STEPS.get(self.state)
        return row[0] if row else "HTTP"

    # ---------------------------------------------------------------- internals
    def _fail_with(self, err):
        release("httptail")  # if a rare ending loaded it
        self._drop()
        self.error = err
        self.done = True
        self.body_left = 0
        self._out = None
        self._deadline = None
        self._at.cancel()
        self._ready = False  # check the context and the settings again next time
        self._rh = None

    def _drop(self):
        # The request is over: its bytes (a result's feedback, say) need not wait in the
        # heap for the next one.
        self._data = self._url = b""
        self._shown = None
        self._args = {}

    def _fail(self, code=None, detail=None, kind=None, stage=None):
        raise FotaError(stage or self.stage, code, detail, kind)

    def _event(self, ev, a=None, b=None):
        if len(self._events) >= _EVENTS_MAX and ev != EV_LOG:
            self.events_dropped += 1
            return
        self._events.append((ev, a, b))

    def _hide(self, s):
        for secret in self._secrets:
            sec = secret.decode()
            if sec and sec in s:
                s = s.replace(sec, "***")
        return s

    def _wait(self, now, key, extra=0):
        self._deadline = ticks_add(now, self.timeouts[key] + extra)

    def _step(self, i, now):
        if i >= len(self._plan):
            self._finish()
            return
        self._i = i
        name = self._plan[i]
        _stage, cmd, kind, wait, prefix = STEPS[name]
        self.state = name
        self._phase = _CMD_SENT
        self._ok = False
        self._result = None
        self._last = now
        command = self.timeouts[_CMD]
        if kind == _DRAIN:
            self._wait(now, "read_ms", command)  # the bound of the whole drain
            return
        if kind in (_DATA, _DATA_REQ, _REQ):
            self._wait(now, _CMD)
        elif kind == _READ:
            self._read_wait = self.timeouts["read_ms"] + command
            self._wait(now, "read_ms", command)
        else:
            self._wait(now, wait)
        args = self._args.get(name)
        line = cmd % args if args is not None else cmd
        self._out = self._at.send(line, prefix)
        if self.trace:
            self._event(EV_TX, line.decode())

    def _next(self, now, skip=0):
        self._step(self._i + 1 + skip, now)

    def _finish(self):
        release("httptail")
        self._drop()
        self.done = True
        self._dirty = False
        self._deadline = None
        self.state = "DONE"

    def _feed(self, data, start, end, now):
        self._now = now
        i = start
        while i < end:
            if self._phase == _LF:
                if data[i] == _LF_BYTE:
                    i += 1
                self._start_body(now)
                return i - start
            if self._phase == _OPEN:
                return i - start + self._gather(data, i, end, now)
            j = i
            while j < end and data[j] != _CR and data[j] != _LF_BYTE:
                j += 1
            if j < end:
                j += 1
            if self.state != "drain":
                self._last = now
            else:
                self._drained(data, i, j, now)
            self._framer.feed(data, i, j)
            i = j
            if self.done:
                return end - start
            if self._stop:  # a READ's CONNECT: the body follows its CR LF
                self._stop = False
                self._phase = _LF
                if data[j - 1] != _CR:
                    self._start_body(now)
                    return i - start
        return end - start

    def _drained(self, data, i, j, now):
        # What is left of a failed request keeps the drain going; URCs (lines that begin
        # with "+": the network's, the modem's own) may come at any time and do not.
        while i < j and (data[i] == _CR or data[i] == _LF_BYTE):
            i += 1
        if i < j:
            if not self._framer.pending():
                self._plus = data[i] == _PLUS
            if not self._plus:
                self._last = now

    def _sent(self):
        """The request may have gone to the network (its data or a plain GET is out)."""
        name = self.state
        if name == "read":
            return True
        if name not in _URCS:
            return False
        return self._phase != _CMD_SENT or name == "get" and self._ok

    def _start_body(self, now):
        self._last = now
        if self.length is None:
            self._phase = _OPEN
            self._acc = bytearray()
            self._scan = 0
        else:
            self._phase = _BODY
            self.body_left = self.length
            self.tail_n = 0
        self._deadline = ticks_add(now, self._read_wait)
        if self.length == 0:
            self._phase = _TAIL

    def _on_line(self, buf, n):
        now = self._now
        if self.trace:
            self._event(EV_RX, self._hide(text(buf, n)))
        kind = self._urc.parse(buf, n)
        if kind == urc.RDY and self.state != "drain":
            if not self._sent() and self._again(now, "the modem rebooted (RDY)", True):
                return
            self._fail(None, "the modem rebooted (RDY) during the request")
        if kind == urc.BOOT or kind == urc.RDY:
            return
        name = self.state
        phase = self._phase
        if name == "drain":
            return
        prefix = _URCS.get(name)
        if prefix is not None and urc.starts_with(buf, 0, n, prefix):
            self._result = self._numbers(buf, n, len(prefix))
            err = self._result[0]
            if err in _LOST and self._again(now, "+%s: %d" % (prefix.decode()[1:-1], err)):
                return  # the context is down: the request never left the modem
            if err:
                self._fail(err, None, MODEM)
            self._maybe_next(now)
            return
        if urc.starts_with(buf, 0, n, _PDPDEACT):
            self._ready = False  # the network dropped the context: up again next time
            self._event(EV_LOG, "PDP context deactivated by the network")
            return
        if name == "read" and urc.starts_with(buf, 0, n, _READ_URC):
            err = self._numbers(buf, n, len(_READ_URC))[0]
            if err:
                detail = None
                if self.length is not None and self.got < self.length:
                    detail = "the body stopped at %d of %d bytes" % (self.got, self.length)
                self._fail(err, detail, MODEM, "HTTPREAD")
            if phase == _TAIL:
                self._result = (0,)
                self._maybe_next(now)
            return
        if phase == _CMD_SENT and n >= 7 and urc.starts_with(buf, 0, n, b"CONNECT"):
            kind = STEPS[name][2]
            if kind == _READ:
                self._stop = True
                return
            if kind in (_DATA, _DATA_REQ):
                self._phase = _DATA_SENT
                self._out = self._url if name == "url" else self._data
                if self.trace:
                    self._event(EV_TX, self._url.decode() if name == "url" else self._shown)
                self._wait(now, "input_ms", self.timeouts[_CMD])
                return
        if phase == _TAIL and not self._ok and n and buf[0] != _PLUS and printable(buf, n):
            if not (n == 2 and urc.starts_with(buf, 0, n, b"OK")) and not (
                n == 5 and urc.starts_with(buf, 0, n, b"ERROR")
            ):
                # A short body: the modem's OK/+QHTTPREAD went into the body's count.
                self._fail(None, "the body was not followed by OK (short body?)")
        if not self._at.waiting:
            return
        answer = self._at.take(buf, n)
        if answer == OK:
            self._on_ok(now)
        elif answer in (ERROR, CME, PROTO):
            self._on_error(answer)

    @staticmethod
    def _numbers(buf, n, skip):
        out = []
        for f in text(buf, n)[skip:].split(","):
            f = f.strip()
            if not f.isdigit():
                break
            out.append(int(f))
        if not out:
            raise FotaError("HTTP", None, "unreadable line: %s" % text(buf, n), FAILED)
        return out

    def _on_ok(self, now):
        name = self.state
        kind = STEPS[name][2]
        phase = self._phase
        if kind in (_DATA, _DATA_REQ) and phase == _CMD_SENT:
            self._fail(
                None, "the modem answered OK without CONNECT to %s" % self._at.command_text()
            )
        self._ok = True
        if kind == _READ and phase == _CMD_SENT:
            self._phase = _TAIL  # no body: +QHTTPREAD says why
            self._wait(now, _CMD)
            return
        if name == "qiact?":
            if self._active(self._at.body):
                self._next(now, 1)
                return
            if self.apn is not None:
                self._plan.insert(self._i + 1, "qicsgp")
            self._event(EV_LOG, "PDP context %d not active: activating it" % self.cid)
        elif name == "reqhdr":
            self._rh = self._want_rh
        elif name == "qiact":
            self._ready = True
        if kind in (_REQ, _DATA_REQ):
            self._phase = _AWAIT
            self._wait(now, "response_ms", self.timeouts[_CMD])
            self._maybe_next(now)
            return
        if kind == _READ:
            self._maybe_next(now)
            return
        self._next(now)

    def _active(self, body):
        # +QIACT: <cid>,<state>,<type>[,<address>]
        for line in body:
            f = line[7:].replace(" ", "").split(",")
            if len(f) > 1 and f[0] == str(self.cid) and f[1] == "1":
                self._ready = True
                return True
        return False

    def _on_error(self, answer):
        from qfota import httptail  # a rare ending: its words are loaded only now

        httptail.answered(self, answer, self.state in _URCS)

    def _maybe_next(self, now):
        if not self._ok or self._result is None:
            return
        name = self.state
        if name == "read":
            if self.length is not None and self.got < self.length:
                self._fail(None, "the modem answered OK without CONNECT (no body)")
            self._finish()
            return
        r = self._result
        self.status = r[1] if len(r) > 1 else None
        self.length = r[2] if len(r) > 2 else None
        if self.status is None:
            self._fail(None, "no HTTP status in the modem's answer", FAILED)
        if self.length == 0:
            self._finish()
            return
        if self.sink:
            if not 200 <= self.status < 300:
                self._finish()  # no body into the caller's sink; the caller sees the status
                return
            if self.length is None:
                pass  # gathered here up to limit, then written to the sink
        elif self.length is not None and self.length > self.limit:
            self._fail(None, "response over %d bytes" % self.limit, FAILED, "HTTP")
        self._next(now)

    def _gather(self, data, i, end, now):
        """A body without a length (rare: qfota.httptail gathers it); returns the bytes
        taken."""
        from qfota import httptail

        return httptail.gather(self, data, i, end, now, _READ_URC)

    def _poll(self, now):
        if self.state == "drain":
            if ticks_diff(now, self._last) >= self.timeouts["quiet_ms"]:
                self._framer.n = 0  # a line cut in the middle is no part of what comes
                self._next(now)
                return
            if self._deadline is not None and ticks_diff(now, self._deadline) >= 0:
                self._fail(None, "the modem did not stop talking after the last request")
            return
        if self._phase == _BODY and not self._checked:
            if ticks_diff(now, self._last) >= self.timeouts["quiet_ms"]:
                self._checked = True
                self._check_tail()
        if self._deadline is not None and ticks_diff(now, self._deadline) >= 0:
            self._timeout()

    def _check_tail(self):
        """The body went quiet: the modem's own lines in its last bytes end it."""
        from qfota import httptail

        httptail.check_tail(self, _READ_URC)

    def _timeout(self):
        from qfota import httptail

        name = self.state
        kind = STEPS[name][2]
        prefix = _URCS.get(name)
        httptail.timed_out(
            self, _WHERE[self._phase], kind in (_DATA, _DATA_REQ, _READ), prefix, _READ_URC
        )


__all__ = ("HttpAt", "STEPS", "TIMEOUTS", "HOLD")
