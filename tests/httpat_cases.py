"""The modem's HTTP AT commands (``qfota.httpat``, ``qfota.httpdrv``) against a scripted
modem, on CPython (pytest) and on MicroPython (tests/mp_run.py). Plain asserts only.

``HttpModem`` plays the modem's side of the contract (README, "The modem's HTTP
commands"): command lines, the CONNECT data phases, ``+QHTTPGET`` and the body of
``AT+QHTTPREAD``; a function of the test plays the server.
"""

import sys

import machine

from qfota import at as AT
from qfota.errors import FotaError
from qfota.httpat import EV_LOG, EV_RX, EV_TX, HOLD, HttpAt
from qfota.httpdrv import ModemTransport
from qfota.uart import UartPort

MICROPYTHON = sys.implementation.name == "micropython"
OK = b"\r\nOK\r\n"
FAST = {
    "command_ms": 400,
    "pdp_ms": 400,
    "response_ms": 1000,
    "read_ms": 1000,
    "input_ms": 1000,
    "quiet_ms": 150,
    "stall_ms": 300,
}
TOKEN = "s3cr3t-T0KEN-4711"
AUTH = ("Authorization", "TargetToken " + TOKEN)
TRAILER = b"\r\nOK\r\n\r\n+QHTTPREAD: 0\r\n"
BOOT = b"\r\n+CFUN: 1\r\n\r\n+CPIN: READY\r\n\r\n+QUSIM: 1\r\n\r\n+QIND: SMS DONE\r\n\r\n+QIND: PB DONE\r\n"


def pattern(n, seed=7):
    # A pattern, not zeros: a lost or repeated byte shows.
    return bytes((i * seed + i // 251) & 0xFF for i in range(n))


def parse_request(raw):
    """``(method, target, {name: value}, body)`` of a raw HTTP/1.1 request."""
    head, _sep, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    method, target, _v = lines[0].split(" ")
    headers = {}
    for line in lines[1:]:
        k, _c, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return method, target, headers, body


class HttpModem:
    """The modem side: ``write(data, now)`` / ``read(now)`` for ``machine.UART(peer=...)``.

    ``server(method, target, headers, body) -> (status, body)``. ``faults``:
    ``cme``: (command prefix, code) answered ``+CME ERROR``; ``get_err``: the ``<err>`` of
    ``+QHTTPGET``; ``short``: the body stops after this many bytes, then ``OK`` and
    ``+QHTTPREAD: 717``; ``rdy_at``: the modem reboots after this many body bytes;
    ``silent``: a command prefix never answered; ``no_urc``: no ``+QHTTPGET`` after OK;
    ``no_connect``: a command prefix answered OK instead of CONNECT; ``chunked``: no
    ``<content_length>``.
    """

    def __init__(self, server, echo=False, active=True, faults=None):
        self.server = server
        self.echo = echo
        self.active = active
        self.faults = faults or {}
        self.commands = []
        self.urls = []
        self.requests = []  # (method, target, headers, body) the server got
        self.rh = 0
        self.rsp = 0
        self.received = 0  # every byte the host wrote
        self._line = b""
        self._need = 0
        self._data = b""
        self._then = None
        self._out = []
        self._resp = b""

    def say(self, data, now, delay=0):
        due = now + delay
        i = len(self._out)
        while i and self._out[i - 1][0] > due:  # in time order, equal times in turn
            i -= 1
        self._out.insert(i, (due, data))

    def read(self, now):
        out = b""
        while self._out and self._out[0][0] <= now:
            out += self._out.pop(0)[1]
        return out

    def write(self, data, now):
        self.received += len(data)
        i = 0
        while i < len(data):
            if self._need:
                take = data[i : i + self._need]
                self._data += take
                self._need -= len(take)
                i += len(take)
                if not self._need:
                    self._then(self._data, now)
                continue
            c = data[i : i + 1]
            i += 1
            if c == b"\r":
                line = self._line
                self._line = b""
                if line:
                    self._command(line, now)
            elif c != b"\n":
                self._line += c
        return len(data)

    def reboot(self):
        """What a reset forgets: the settings and the context."""
        self.rh = 0
        self.active = False
        self.urls = []

    def _connect(self, n, then, now):
        self._need = n
        self._data = b""
        self._then = then
        self.say(b"\r\nCONNECT\r\n", now)

    def _command(self, line, now):
        self.commands.append(line)
        if self.echo:
            self.say(line + b"\r", now)
        f = self.faults
        for key in ("silent",):
            if key in f and line.startswith(f[key]):
                return
        if "rdy_on" in f and line.startswith(f["rdy_on"]):
            del f["rdy_on"]
            self.reboot()
            self.say(b"\r\nRDY\r\n" + BOOT, now, 20)
            return
        if "cme" in f and line.startswith(f["cme"][0]):
            self.say(b"\r\n+CME ERROR: %d\r\n" % f["cme"][1], now)
            return
        if "no_connect" in f and line.startswith(f["no_connect"]):
            self.say(OK, now)
            return
        cmd, _eq, arg = line.partition(b"=")
        args = arg.split(b",") if arg else []
        if cmd == b"AT+QHTTPCFG":
            if args[0] == b'"requestheader"':
                self.rh = int(args[1])
            self.say(OK, now)
        elif cmd == b"AT+QIACT?":
            state = b'\r\n+QIACT: 1,1,1,"10.7.0.2"\r\n' if self.active else b""
            self.say(state + OK, now)
        elif cmd == b"AT+QIACT":
            self.active = True
            self.say(OK, now)
        elif cmd == b"AT+QICSGP":
            self.say(OK, now)
        elif cmd == b"AT+QHTTPURL":
            self._connect(int(args[0]), self._got_url, now)
        elif cmd == b"AT+QHTTPGET" and (len(args) > 1) != (self.rh == 1):
            self.say(b"\r\n+CME ERROR: 730\r\n", now)  # <data_len> with requestheader 1 only
        elif cmd == b"AT+QHTTPGET" and len(args) == 1:
            self.say(OK, now)
            self._respond("GET", self._target(), {}, b"", now)
        elif cmd == b"AT+QHTTPGET":
            self._connect(int(args[1]), self._got_request, now)
        elif cmd == b"AT+QHTTPPOST":
            self._connect(int(args[0]), self._got_post, now)
        elif cmd == b"AT+QHTTPREAD":
            self._read(now)
        else:
            self.say(b"\r\nERROR\r\n", now)

    def _target(self):
        url = self.urls[-1].decode()
        rest = url.split("://", 1)[1]
        i = rest.find("/")
        return rest[i:] if i >= 0 else "/"

    def _got_url(self, data, now):
        self.urls.append(data)
        self.say(OK, now)

    def _got_request(self, data, now):
        self.say(OK, now)
        method, target, headers, body = parse_request(data)
        self._respond(method, target, headers, body, now)

    def _got_post(self, data, now):
        self.say(OK, now)
        if self.rh:
            method, target, headers, body = parse_request(data)
        else:
            method, target, headers, body = "POST", self._target(), {}, data
        self._respond(method, target, headers, body, now, b"+QHTTPPOST")

    def _respond(self, method, target, headers, body, now, urc=b"+QHTTPGET"):
        if not self.active:
            self.say(b"\r\n%s: 708\r\n" % urc, now, 20)  # the context is not up
            return
        self.requests.append((method, target, headers, body))
        f = self.faults
        if "no_urc" in f:
            return
        if "get_err" in f:
            self.say(b"\r\n%s: %d\r\n" % (urc, f["get_err"]), now, 20)
            return
        status, self._resp = self.server(method, target, headers, body)
        if "chunked" in f:
            self.say(b"\r\n%s: 0,%d\r\n" % (urc, status), now, 20)
        else:
            self.say(b"\r\n%s: 0,%d,%d\r\n" % (urc, status, len(self._resp)), now, 20)

    def _read(self, now):
        body = self._resp
        f = self.faults
        if "short" in f:
            self.say(b"\r\nCONNECT\r\n" + body[: f["short"]], now)
            self.say(b"\r\nOK\r\n\r\n+QHTTPREAD: 717\r\n", now, 30)
        elif "rdy_at" in f:
            self.say(b"\r\nCONNECT\r\n" + body[: f["rdy_at"]], now)
            self.say(b"\r\nRDY\r\n" + BOOT, now, 30)
        if "noise" in f:  # the network's URCs, every 100 ms for a while
            for i in range(1, f["noise"] + 1):
                self.say(b'\r\n+CREG: 1\r\n\r\n+QIND: "csq",20,99\r\n', now, 30 + 100 * i)
        if "short" in f or "rdy_at" in f:
            return
        if "noise" in f:  # a modem puts no URC inside a body: in one piece, then
            self.say(b"\r\nCONNECT\r\n" + body + TRAILER, now)
        else:
            # in two pieces, the trailer apart: a driver must not wait for all of it
            half = len(body) // 2
            self.say(b"\r\nCONNECT\r\n" + body[:half], now)
            self.say(body[half:] + TRAILER, now, 10)


class Events:
    def __init__(self):
        self.seen = []

    def __call__(self, ev, a, b):
        self.seen.append((ev, a, b))

    def text(self):
        return "\n".join("%r %r %r" % x for x in self.seen)


def files(size=100_000):
    data = pattern(size)

    def server(method, target, headers, body):
        if target != "/a.bin":
            return 404, b"not here"
        rng = headers.get("range")
        if rng is None:
            return 200, data
        a, _d, b = rng[6:].partition("-")
        a = int(a)
        b = min(int(b), len(data) - 1) if b else len(data) - 1
        return 206, data[a : b + 1]

    return data, server


def json_server(method, target, headers, body):
    return 200, b'{"config":{"polling":{"sleep":"00:00:05"}},"_links":{}}'


def transport(m, uart_kw=None, **kw):
    uart = machine.UART(1, 921600, peer=m, **(uart_kw or {}))
    ev = Events()
    kw.setdefault("timeouts", FAST)
    kw.setdefault("on_event", ev)
    kw.setdefault("trace", True)
    return ModemTransport(UartPort(uart), **kw), ev, uart


def expect(t, stage, code, kind, detail=None, *args, **kw):
    try:
        t.request(*args, **kw)
    except FotaError as e:
        assert (e.stage, e.code, e.kind) == (stage, code, kind), (e.stage, e.code, e.kind, str(e))
        if detail is not None:
            assert detail in str(e), str(e)
        return e
    raise AssertionError("no FotaError; expected %s %r" % (stage, code))


class Sink:
    """A sink in the MicroPython stream style, taking at most ``most`` bytes a call."""

    def __init__(self, most=0, fail_at=-1):
        self.data = bytearray()
        self.most = most
        self.fail_at = fail_at
        self.calls = 0

    def write(self, buf, off, n):
        if self.most and n > self.most:
            n = self.most
        if 0 <= self.fail_at <= len(self.data) + n:
            raise OSError(28)  # ENOSPC
        self.data.extend(buf[off : off + n])
        self.calls += 1
        return n


# ---------------------------------------------------------------- requests
def case_get_without_headers_uses_the_modems_own_request():
    m = HttpModem(json_server)
    t, ev, _u = transport(m)
    status, body = t.request("GET", "http://10.0.0.2:8080/t1/controller/v1/dev1")
    assert status == 200 and body.startswith(b'{"config"'), (status, body)
    assert m.commands == [
        b'AT+QHTTPCFG="contextid",1',
        b'AT+QHTTPCFG="responseheader",0',
        b"AT+QIACT?",
        b'AT+QHTTPCFG="requestheader",0',
        b"AT+QHTTPURL=42,1",
        b"AT+QHTTPGET=1",
        b"AT+QHTTPREAD=1",
    ], m.commands
    assert m.urls == [b"http://10.0.0.2:8080/t1/controller/v1/dev1"], m.urls


def case_get_with_headers_sends_the_whole_request():
    m = HttpModem(json_server)
    t, ev, _u = transport(m)
    url = "http://10.0.0.2:8080/t1/controller/v1/dev1?x=1"
    status, body = t.request("GET", url, (AUTH, ("Accept", "application/json")))
    assert status == 200, status
    method, target, headers, rbody = m.requests[0]
    assert (method, target) == ("GET", "/t1/controller/v1/dev1?x=1"), (method, target)
    assert headers == {
        "host": "10.0.0.2:8080",
        "authorization": "TargetToken " + TOKEN,
        "accept": "application/json",
    }, headers
    assert m.rh == 1 and b'AT+QHTTPCFG="requestheader",1' in m.commands, m.commands
    get = [c for c in m.commands if c.startswith(b"AT+QHTTPGET=")]
    assert get[0].startswith(b"AT+QHTTPGET=1,") and get[0].endswith(b",1"), get


def case_put_goes_as_qhttppost_with_requestheader_1():
    m = HttpModem(lambda method, target, headers, body: (200, b""))
    t, ev, _u = transport(m)
    doc = b'{"mode":"merge","data":{"hw_revision":"EC200TCNDAR02A07M16"}}'
    url = "http://h:80/t/controller/v1/d/configData"
    status, body = t.request("PUT", url, (AUTH, ("Content-Type", "application/json")), doc)
    assert (status, body) == (200, b""), (status, body)
    method, target, headers, rbody = m.requests[0]
    assert (method, target, rbody) == ("PUT", "/t/controller/v1/d/configData", doc)
    assert headers["content-length"] == str(len(doc)), headers
    assert headers["content-type"] == "application/json", headers
    assert not any(c.startswith(b"AT+QHTTPPUT") for c in m.commands), m.commands
    assert not any(b"custom_header" in c for c in m.commands), m.commands
    # <content_length> 0: nothing to read
    assert not any(c.startswith(b"AT+QHTTPREAD") for c in m.commands), m.commands


def case_post_without_headers_sends_only_the_body():
    m = HttpModem(lambda method, target, headers, body: (201, b"ok"))
    t, ev, _u = transport(m)
    status, body = t.request("POST", "http://h/feedback", body=b'{"a":1}')
    assert (status, body) == (201, b"ok"), (status, body)
    assert m.requests[0] == ("POST", "/feedback", {}, b'{"a":1}'), m.requests
    assert b"AT+QHTTPPOST=7,1,1" in m.commands, m.commands


def case_range_reads_into_a_sink_bytes_exact():
    data, server = files(100_000)
    m = HttpModem(server)
    t, ev, _u = transport(m, trace=False)
    sink = Sink(most=700)  # a sink taking part of each write
    step = 32768
    for a in range(0, len(data), step):
        rng = ("Range", "bytes=%d-%d" % (a, a + step - 1))
        status, n = t.request("GET", "http://10.0.0.2/a.bin", (AUTH, rng), sink=sink)
        assert status == 206 and n == min(step, len(data) - a), (status, n)
    assert bytes(sink.data) == data, "the body arrived changed"
    # the PDP context and requestheader once, not per request
    assert m.commands.count(b"AT+QIACT?") == 1, m.commands
    assert m.commands.count(b'AT+QHTTPCFG="requestheader",1') == 1, m.commands


def case_binary_body_holding_the_modems_own_lines_arrives_whole():
    body = b"\r\nOK\r\n" + TRAILER + b"\r\nRDY\r\n+QHTTPREAD: 717\r\nCONNECT\r\n" + pattern(3000)
    body += b"\r\nOK\r\n\r\n+QHTTPREAD: 0\r\n"  # the body ends like the trailer, too
    m = HttpModem(lambda *a: (200, body))
    for sink in (None, Sink()):
        t, ev, _u = transport(m)
        status, got = t.request("GET", "http://h/x", sink=sink, limit=8192)
        if sink is None:
            assert got == body, (len(got), len(body))
        else:
            assert got == len(body) and bytes(sink.data) == body


def case_echo_on():
    m = HttpModem(json_server, echo=True)
    t, ev, _u = transport(m)
    status, body = t.request("GET", "http://h/x", (AUTH,))
    assert status == 200 and body.startswith(b"{"), (status, body)


def case_requestheader_set_only_when_it_changes_and_back_to_0():
    m = HttpModem(json_server)
    t, ev, _u = transport(m)
    t.request("GET", "http://h/x", (AUTH,))
    t.request("GET", "http://h/x", (AUTH,))
    t.request("GET", "http://h/x")
    t.request("GET", "http://h/x")
    rh = [c for c in m.commands if b"requestheader" in c]
    assert rh == [b'AT+QHTTPCFG="requestheader",1', b'AT+QHTTPCFG="requestheader",0'], rh
    assert m.rh == 0


def case_pdp_context_brought_up_with_the_apn():
    m = HttpModem(json_server, active=False)
    t, ev, _u = transport(m, cid=3, apn="iot.example")
    t.request("GET", "http://h/x")
    i = m.commands.index(b"AT+QIACT?")
    assert m.commands[0] == b'AT+QHTTPCFG="contextid",3', m.commands
    assert m.commands[i + 1 : i + 3] == [b'AT+QICSGP=3,1,"iot.example","","",1', b"AT+QIACT=3"]


def case_https_with_the_products_ssl_context():
    m = HttpModem(json_server)
    t, ev, _u = transport(m, sslctxid=1)
    assert t.request("GET", "https://h:8443/x", (AUTH,))[0] == 200
    i = m.commands.index(b'AT+QHTTPCFG="responseheader",0')
    assert m.commands[i + 1] == b'AT+QHTTPCFG="sslctxid",1', m.commands
    assert m.urls == [b"https://h:8443/x"]
    for bad in (6, -1, "1"):
        try:
            ModemTransport(None, sslctxid=bad)
        except FotaError as e:
            assert e.kind == "refused" and "sslctxid" in str(e), str(e)
        else:
            raise AssertionError("sslctxid %r taken" % (bad,))


def case_the_transports_options_are_refused_before_a_byte_and_their_checks_let_go():
    bad = (
        ({"cid": 0}, "cid must be"),
        ({"cid": True}, "cid must be"),
        ({"apn": 'iot"\r\nAT+QPOWD'}, "APN"),
        ({"timeouts": {"forever_ms": 1}}, "unknown timeout"),
        ({"timeouts": {"read_ms": 0}}, "timeout read must be"),
    )
    for kw, words in bad:
        try:
            ModemTransport(None, **kw)
        except FotaError as e:
            assert e.kind == "refused" and words in str(e), (kw, str(e))
        else:
            raise AssertionError("%r taken" % (kw,))
    from qfota.compat import release

    release("httpreq")  # earlier requests' (kept: keep_checks)
    t = ModemTransport(None, timeouts={"read_ms": 5000, "fileend_ms": 9})  # the engine's: passed
    assert t.core.timeouts["read_ms"] == 5000, t.core.timeouts
    if MICROPYTHON:  # code in the heap: a transport made holds neither table
        assert "qfota.httpcfg" not in sys.modules and "qfota.checks" not in sys.modules
        assert "qfota.httpreq" not in sys.modules  # loaded with the first request


def case_no_body_when_the_length_is_0_or_the_status_not_2xx_into_a_sink():
    data, server = files(1000)
    m = HttpModem(server)
    t, ev, _u = transport(m)
    sink = Sink()
    assert t.request("GET", "http://h/missing", sink=sink) == (404, 0)
    assert not sink.data and not any(c.startswith(b"AT+QHTTPREAD") for c in m.commands)
    assert t.request("GET", "http://h/missing") == (404, b"not here")


def case_body_without_a_length_is_read_to_the_trailer_bounded():
    m = HttpModem(json_server, faults={"chunked": True})
    t, ev, _u = transport(m)
    status, body = t.request("GET", "http://h/x")
    assert status == 200 and body == json_server(0, 0, 0, 0)[1], body
    status, n = t.request("GET", "http://h/x", sink=Sink())
    assert n == len(json_server(0, 0, 0, 0)[1]), n
    e = expect(t, "HTTP", None, "failed", "response over 20 bytes", "GET", "http://h/x", limit=20)
    assert TOKEN not in str(e)


def case_body_over_the_limit_is_refused_before_reading():
    data, server = files(5000)
    m = HttpModem(server)
    t, ev, _u = transport(m)
    expect(t, "HTTP", None, "failed", "response over 4096 bytes", "GET", "http://h/a.bin")
    assert not any(c.startswith(b"AT+QHTTPREAD") for c in m.commands), m.commands
    assert t.request("GET", "http://h/a.bin", limit=5000)[1] == data  # and the next one works


# ---------------------------------------------------------------- failures
def case_cme_error_703_busy():
    m = HttpModem(json_server, faults={"cme": (b"AT+QHTTPGET", 703)})
    t, ev, _u = transport(m)
    e = expect(t, "HTTPGET", 703, "modem", None, "GET", "http://h/x")
    assert str(e).startswith("HTTPGET: 703: HTTP(S) busy"), str(e)


def case_qhttpget_728_no_answer_from_the_server():
    m = HttpModem(json_server, faults={"get_err": 728})
    t, ev, _u = transport(m)
    e = expect(t, "HTTPGET", 728, "modem", None, "GET", "http://h/x", (AUTH,))
    assert str(e).startswith("HTTPGET: 728: Wait HTTP(S) response timeout"), str(e)


def case_qhttppost_716_refused():
    m = HttpModem(json_server, faults={"get_err": 716})
    t, ev, _u = transport(m)
    e = expect(t, "HTTPPOST", 716, "modem", None, "POST", "http://h/x", (AUTH,), b"{}")
    assert "socket connection error" in str(e), str(e)


def case_short_body_717_leaves_only_body_bytes_in_the_sink():
    data, server = files(10_000)
    m = HttpModem(server, faults={"short": 6000})
    t, ev, _u = transport(m)
    sink = Sink()
    e = expect(t, "HTTPREAD", 717, "modem", "short", "GET", "http://h/a.bin", sink=sink)
    assert "socket read error" in str(e), str(e)
    assert len(sink.data) >= 6000 - HOLD - 32, len(sink.data)
    assert bytes(sink.data) == data[: len(sink.data)], "the sink holds more than the body"


def case_short_body_717_with_more_bytes_than_the_length():
    # The trailer makes up for the missing bytes: the count is reached, then not OK.
    data, server = files(3000)
    m = HttpModem(server, faults={"short": 2990})
    t, ev, _u = transport(m)
    sink = Sink()
    expect(t, "HTTPREAD", None, "failed", "short body", "GET", "http://h/a.bin", sink=sink)
    assert bytes(sink.data) == data[: len(sink.data)], "the sink holds more than the body"


def case_short_body_717_found_among_urcs_and_the_next_request_drains():
    # URCs every 100 ms for 4 s after the trailer: the body is never silent, and the drain
    # before the next request must not wait for silence either (its bound is 1.4 s here).
    data, server = files(10_000)
    m = HttpModem(server, faults={"short": 4000, "noise": 40})
    t, ev, _u = transport(m)
    sink = Sink()
    expect(t, "HTTPREAD", 717, "modem", "short", "GET", "http://h/a.bin", sink=sink)
    assert bytes(sink.data) == data[: len(sink.data)], "the sink holds more than the body"
    del m.faults["short"]
    assert t.request("GET", "http://h/a.bin", limit=10_000) == (200, data)


def case_no_connect_is_a_stated_failure():
    m = HttpModem(json_server, faults={"no_connect": b"AT+QHTTPURL"})
    t, ev, _u = transport(m)
    expect(t, "HTTPURL", None, "failed", "OK without CONNECT", "GET", "http://h/x")
    m = HttpModem(json_server, faults={"silent": b"AT+QHTTPREAD"})
    t, ev, _u = transport(m)
    expect(t, "HTTPREAD", None, "timeout", "no CONNECT to AT+QHTTPREAD", "GET", "http://h/x")


def case_modem_reboot_mid_read_is_a_stated_failure_then_pdp_again():
    data, server = files(8000)
    m = HttpModem(server, faults={"rdy_at": 3000})
    t, ev, _u = transport(m)
    sink = Sink()
    expect(t, "HTTPREAD", None, "failed", "rebooted (RDY)", "GET", "http://h/a.bin", sink=sink)
    assert bytes(sink.data) == data[: len(sink.data)]
    del m.faults["rdy_at"]
    n = len(m.commands)
    assert t.request("GET", "http://h/a.bin", limit=8000) == (200, data)
    assert m.commands[n] == b'AT+QHTTPCFG="contextid",1', m.commands[n:]


def case_rdy_before_the_request_went_out_sets_up_again():
    for at in (b"AT+QIACT?", b"AT+QHTTPURL", b'AT+QHTTPCFG="requestheader"'):
        m = HttpModem(json_server, faults={"rdy_on": at})
        t, ev, _u = transport(m)
        assert t.request("GET", "http://h/x", (AUTH,))[0] == 200, at
        assert m.commands.count(b'AT+QHTTPCFG="contextid",1') == 2, (at, m.commands)
        logs = [a for k, a, b in ev.seen if k == EV_LOG]
        assert any("rebooted (RDY): setting up the modem's HTTP again" in x for x in logs), logs


def case_rdy_after_the_request_went_out_is_a_stated_failure():
    m = HttpModem(json_server, faults={"no_urc": True})
    t, ev, _u = transport(m)
    m.say(b"\r\nRDY\r\n", machine._ticks() + 150)  # the GET is out by then, unanswered
    expect(t, "HTTPGET", None, "failed", "rebooted (RDY)", "GET", "http://h/x")
    assert len(m.requests) == 1, m.requests


def case_a_reboot_the_transport_did_not_see_is_set_up_again():
    # Another driver on the port (a FILE update) saw the modem reboot: its settings and
    # context are gone, and the transport's next request finds out (730, 708), once.
    m = HttpModem(json_server)
    t, ev, _u = transport(m)
    assert t.request("GET", "http://h/x", (AUTH,))[0] == 200
    m.reboot()
    assert t.request("GET", "http://h/x", (AUTH,))[0] == 200  # 730: requestheader
    assert m.commands[-8:-4] == [
        b'AT+QHTTPCFG="contextid",1',
        b'AT+QHTTPCFG="responseheader",0',
        b"AT+QIACT?",
        b"AT+QIACT=1",
    ], m.commands
    m.active = False
    assert t.request("GET", "http://h/x", (AUTH,))[0] == 200  # 708: the context
    assert m.commands.count(b"AT+QIACT=1") == 2, m.commands
    m.active = False
    m.faults["silent"] = b"AT+QIACT=1"  # the context cannot come up: stated, not a loop
    expect(t, "PDP", None, "timeout", "no answer to AT+QIACT=1", "GET", "http://h/x")


def case_waits_run_out():
    m = HttpModem(json_server, faults={"silent": b"AT+QHTTPCFG"})
    t, ev, _u = transport(m)
    expect(t, "PDP", None, "timeout", 'no answer to AT+QHTTPCFG="contextid"', "GET", "http://h/x")
    m = HttpModem(json_server, faults={"no_urc": True})
    t, ev, _u = transport(m)
    expect(t, "HTTPGET", None, "timeout", "no +QHTTPGET after", "GET", "http://h/x")


def case_sink_failure_reads_the_body_on_and_the_next_request_works():
    data, server = files(20_000)
    m = HttpModem(server)
    t, ev, _u = transport(m)
    sink = Sink(fail_at=5000)
    expect(t, "HTTPREAD", None, "failed", "the sink failed", "GET", "http://h/a.bin", sink=sink)
    assert t.request("GET", "http://h/missing") == (404, b"not here")


def case_a_failed_request_drains_what_the_modem_still_says():
    data, server = files(4000)
    m = HttpModem(server)
    t, ev, _u = transport(m)
    expect(t, "HTTP", None, "failed", "response over", "GET", "http://h/a.bin", limit=100)
    m.say(b"\r\nOK\r\n\r\n+QHTTPREAD: 0\r\n", machine._ticks())  # a late answer
    assert t.request("GET", "http://h/a.bin", limit=4000) == (200, data)


# ---------------------------------------------------------------- refusals, secrets
def case_injection_refused_before_anything_is_written():
    bad = [
        (("GET", "http://h/x\r\nAT+QFOTADL=1"), "URL holds a carriage return"),
        (("GET", 'http://h/x"'), "URL holds a double quote"),
        (("GET", "http://h/a b"), "URL holds a ' '"),
        (("GET", "ftp://h/x"), "http:// or https://"),
        (("GET", "http://u:pw@h/x"), "credentials"),
        (("GET", "http://h:0/x"), "port"),
        (("GET", "http://h/" + "x" * 700), "longer than 700"),
        (("GET\r\nAT", "http://h/x"), "method must be"),
        (("DELETE", "http://h/x"), "method must be"),
        (("GET", "http://h/x", (("Range", "bytes=0-1\r\nX-Evil: 1"),)), "header Range holds"),
        (("GET", "http://h/x", (("X\r\nEvil", "1"),)), "header name"),
        (("GET", "http://h/x", (("Host", "evil"),)), "set by the transport"),
        (("GET", "http://h/x", (("Authorization", "TargetToken a\nb"),)), "header Authorization"),
        (("GET", "http://h/x", None, b"body"), "a GET has no body"),
        (("PUT", "http://h/x", (), "text"), "body must be bytes"),
    ]
    for args, detail in bad:
        m = HttpModem(json_server)
        t, ev, uart = transport(m)
        if len(args) > 2 and args[2] is None:
            args = args[:2] + ((),) + args[3:]
        try:
            t.request(*args)
        except FotaError as e:
            assert e.kind == "refused" and e.exit_status == 2, (args, str(e))
            assert detail in str(e), (detail, str(e))
            assert "\r" not in str(e) and "\n" not in str(e), str(e)
        else:
            raise AssertionError("not refused: %r" % (args,))
        assert uart.written == 0 and not m.commands, (args, m.commands)


def case_token_never_in_events_or_errors():
    m = HttpModem(json_server, echo=True, faults={"get_err": 717})
    t, ev, _u = transport(m)
    e = expect(t, "HTTPGET", 717, "modem", None, "GET", "http://h/x", (AUTH,))
    del m.faults["get_err"]
    t.request("PUT", "http://h/x", (AUTH,), b"{}")
    assert TOKEN not in str(e) and TOKEN not in repr(e.args)
    texts = ev.text()
    assert TOKEN not in texts, texts
    tx = [a for k, a, b in ev.seen if k == EV_TX]
    assert any("Authorization: TargetToken ***" in a for a in tx), tx
    assert any("PUT /x HTTP/1.1" in a for a in tx), tx
    # the token did reach the server (the check above is not vacuous)
    assert m.requests[-1][2]["authorization"] == "TargetToken " + TOKEN


def case_an_event_handler_that_raises_stops_only_that_request():
    class Stop(Exception):
        pass

    def handler(ev, a, b):
        if ev == EV_RX:
            raise Stop(a)

    m = HttpModem(json_server)
    t, ev, _u = transport(m, on_event=handler)
    try:
        t.request("GET", "http://h/x")
    except Stop:
        pass
    else:
        raise AssertionError("the handler's exception was lost")
    t.on_event = None
    assert t.request("GET", "http://h/x")[0] == 200


def case_event_numbers_are_the_sessions():
    # One handler (qfota.report) reads the events of both cores.
    assert (EV_LOG, EV_TX, EV_RX) == (AT.EV_LOG, AT.EV_TX, AT.EV_RX)


def case_core_alone_stops_at_connect_and_counts_the_body():
    # The sans-I/O core without a driver: feed returns what it took; the body is the
    # driver's to copy.
    h = HttpAt(timeouts=FAST)
    h._ready = True
    h._rh = 0
    h.begin(0, "GET", "http://h/x")
    assert h.take_output() == b"AT+QHTTPURL=10,1\r"
    h.feed(b"\r\nCONNECT\r\n", 0, 11, 1)
    assert h.take_output() == b"http://h/x"
    h.feed(b"\r\nOK\r\n", 0, 6, 2)
    assert h.take_output() == b"AT+QHTTPGET=1\r"
    rx = b"\r\nOK\r\n\r\n+QHTTPGET: 0,200,40\r\n"
    assert h.feed(rx, 0, len(rx), 3) == len(rx)
    assert h.take_output() == b"AT+QHTTPREAD=1\r"
    body = pattern(40)
    rx = b"\r\nCONNECT\r\n" + body + TRAILER
    k = h.feed(rx, 0, len(rx), 4)
    assert k == 11 and h.body_left == 40, (k, h.body_left)
    h.body_taken(rx, k, 25, 5)
    h.body_taken(rx, k + 25, 15, 5)
    assert bytes(h.tail[: h.tail_n]) == body, "the tail holds the last bytes"
    assert h.feed(rx, k + 40, len(rx), 6) == len(TRAILER)
    assert h.done and h.error is None and (h.status, h.length, h.got) == (200, 40, 40)


# ---------------------------------------------------------------- allocation
class LockPort:
    """The modem for a request whose body is read under ``heap_lock``: lines answered
    unlocked, the body handed out with a plain loop from a prepared ``bytes``."""

    def __init__(self, size):
        self.body = pattern(size, 13)
        self.out = b""
        self.pos = 0
        self.line = bytearray()
        self.need = 0

    def readinto(self, buf):
        out = self.out
        i = self.pos
        n = 0
        m = len(buf)
        end = len(out)
        while i < end and n < m:
            buf[n] = out[i]
            n += 1
            i += 1
        self.pos = i
        return n

    def write(self, buf, off, n):
        for i in range(off, off + n):
            if self.need:
                self.need -= 1
                if not self.need:
                    self._say(OK)
                continue
            c = buf[i]
            if c == 13:
                self._command(bytes(self.line))
                self.line = bytearray()
            elif c != 10:
                self.line.append(c)
        return n

    def _say(self, data):
        self.out = self.out[self.pos :] + data
        self.pos = 0

    def _command(self, cmd):
        if cmd == b"AT+QIACT?":
            self._say(b'\r\n+QIACT: 1,1,1,"10.7.0.2"\r\n' + OK)
        elif cmd.startswith(b"AT+QHTTPURL=") or cmd.startswith(b"AT+QHTTPGET=1,"):
            self.need = int(cmd.split(b"=")[1].split(b",")[0 if b"URL" in cmd else 1])
            self._say(b"\r\nCONNECT\r\n")
            if b"GET" in cmd:
                self.out += b"\r\n+QHTTPGET: 0,206,%d\r\n" % len(self.body)
        elif cmd.startswith(b"AT+QHTTPREAD"):
            self._say(b"\r\nCONNECT\r\n" + self.body + TRAILER)
        else:
            self._say(OK)

    def wait(self, ms):
        return self.pos < len(self.out)

    def wait_writable(self, ms):
        return True


class SumSink:
    def __init__(self):
        self.count = 0
        self.sum = 0

    def write(self, buf, off, n):
        acc = self.sum
        for i in range(off, off + n):
            acc = (acc * 31 + buf[i]) & 0xFFFF
        self.sum = acc
        self.count += n
        return n


def case_body_path_allocates_nothing():
    size = 200_000
    port = LockPort(size)
    sink = SumSink()
    t = ModemTransport(port, timeouts=FAST, lock_heap=True, rx=1024)
    # raises MemoryError (an internal error) on MicroPython if the body path allocates
    status, n = t.request("GET", "http://h/a.bin", (("Range", "bytes=0-"),), sink=sink)
    assert (status, n) == (206, size), (status, n)
    acc = 0
    for c in port.body:
        acc = (acc * 31 + c) & 0xFFFF
    assert sink.count == size and sink.sum == acc, "the body arrived changed"


def case_heap_lock_is_real():
    if not MICROPYTHON:
        return
    import micropython

    micropython.heap_lock()
    try:
        bytearray(64)
    except MemoryError:
        return
    finally:
        micropython.heap_unlock()
    raise AssertionError("heap_lock did not stop an allocation")


CASES = [k for k in sorted(globals()) if k.startswith("case_")]
