"""Server mode over real HTTP: ``qfota.fleet`` with the host transport
(``qfota_tools.transport.http_host``, CPython ``http.client``) against a DDI server on
127.0.0.1 (a threaded ``http.server`` answering as hawkBit's documentation shows, with
real ``Range``/206 handling), and the modem being the EC200 simulator on a pty, updated
by the real engine (``qfota.driver`` through ``fleet.DriverUpdater``, FILE mode).

The simulator checks the md5 of what it received (``expect_md5``): the modem must get
the image inside the SWU, not the wrapper, or it ends in END 506.
"""

import contextlib
import hashlib
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler

import pytest
from ddi_cases import make_swu, pattern
from http_rig import Server

from qfota import fleet
from qfota.errors import TIMEOUT, FotaError
from qfota_tools.simulators.ec200 import model as sim_model
from qfota_tools.simulators.ec200.pty_sim import PtySimulator
from qfota_tools.transport.http_host import HttpTransport
from qfota_tools.transport.serial_port import SerialPort

TOKEN = "s3cr3t-token"
A = "EC200TCNDAR02A07M16"
B = "EC200TCNDAR02A08M16"


class DDI:
    """The server's state; the handler below serves it."""

    def __init__(self, artifact, filename="p.swu"):
        self.artifact = artifact
        self.filename = filename
        self.offered = True
        self.requests = []  # (method, path, headers dict)
        self.feedback = []
        self.config = []
        self.cut_at = None  # close the connection after this many bytes of a download, once
        self.anonymous = False  # artifacts without the token (hawkBit anonymous.download)
        self.busy_closed = 0  # answer this many closed feedbacks 429 (the server busy)
        self.order = []  # "feedback <execution>" / "config", as the server took them
        self.lock = threading.Lock()
        self.base = None  # http://127.0.0.1:port

    def root(self):
        return "/DEFAULT/controller/v1/dev1"

    def deployment(self):
        a = self.artifact
        href = self.base + self.root() + "/softwaremodules/1/artifacts/" + self.filename
        return {
            "id": "3",
            "deployment": {
                "download": "forced",
                "update": "forced",
                "chunks": [
                    {
                        "part": "os",
                        "version": "0.0.0+" + B,
                        "name": "modem",
                        "artifacts": [
                            {
                                "filename": self.filename,
                                "size": len(a),
                                "hashes": {
                                    "sha1": hashlib.sha1(a).hexdigest(),
                                    "md5": hashlib.md5(a).hexdigest(),
                                },
                                "_links": {"download": {"href": href}},
                            }
                        ],
                    }
                ],
            },
        }


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ddi-test"

    def log_message(self, *args):
        pass

    def _send(self, status, body=b"", ctype="application/json", extra=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _auth(self):
        d = self.server.ddi
        with d.lock:
            d.requests.append((self.command, self.path, dict(self.headers)))
        if self.headers.get("Authorization") != "TargetToken " + TOKEN:
            self._send(401, b'{"error":"unauthorized"}')
            return False
        return True

    def do_GET(self):
        d = self.server.ddi
        root = d.root()
        art = root + "/softwaremodules/1/artifacts/" + d.filename
        if d.anonymous and self.path == art:
            with d.lock:
                d.requests.append((self.command, self.path, dict(self.headers)))
            return self._artifact()
        if not self._auth():
            return
        if self.path == root:
            links = {}
            if d.offered:
                links["deploymentBase"] = {"href": d.base + root + "/deploymentBase/3?c=-2"}
            body = {"config": {"polling": {"sleep": "00:00:05"}}, "_links": links}
            return self._send(200, json.dumps(body).encode())
        if self.path.startswith(root + "/deploymentBase/3"):
            return self._send(200, json.dumps(d.deployment()).encode())
        if self.path == root + "/softwaremodules/1/artifacts/" + d.filename:
            return self._artifact()
        self._send(404, b'{"error":"not found"}')

    def _artifact(self):
        d = self.server.ddi
        data = d.artifact
        rng = self.headers.get("Range")
        if rng is None:
            return self._send(200, data, "application/octet-stream")
        a, b = (int(x) for x in rng[len("bytes=") :].split("-"))
        if a >= len(data):
            return self._send(416, b"range not satisfiable", "text/plain")
        b = min(b, len(data) - 1)
        piece = data[a : b + 1]
        cr = ("Content-Range", "bytes %d-%d/%d" % (a, b, len(data)))
        if d.cut_at is not None:
            cut, d.cut_at = d.cut_at, None
            self.send_response(206)
            self.send_header("Content-Length", str(len(piece)))
            self.send_header(*cr)
            self.end_headers()
            self.wfile.write(piece[:cut])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self._send(206, piece, "application/octet-stream", (cr,))

    def _body(self):
        n = int(self.headers.get("Content-Length", "0"))
        return json.loads(self.rfile.read(n)) if n else None

    def _take(self, tail, keep, answer):
        """A JSON body at the device's ``tail``, kept by ``keep(ddi, body)`` under the
        lock and answered 200 ``answer``; any other path 404."""
        d = self.server.ddi
        body = self._body()
        if not self._auth():
            return
        if self.path != d.root() + tail:
            return self._send(404, b"{}")
        with d.lock:
            if d.busy_closed and body.get("status", {}).get("execution") == "closed":
                d.busy_closed -= 1
                return self._send(429, b'{"error":"busy"}')
            keep(d, body)
        self._send(200, answer)

    def do_POST(self):
        self._take("/deploymentBase/3/feedback", _feedback, b'{"id":"3"}')

    def do_PUT(self):
        self._take("/configData", _config, b"{}")


def _config(d, body):
    d.config.append(body)
    d.order.append("config")


def _feedback(d, body):
    d.feedback.append(body["status"])
    d.order.append("feedback " + body["status"]["execution"])
    if body["status"]["execution"] == "closed":
        d.offered = False


@pytest.fixture
def server():
    with contextlib.ExitStack() as stack:

        def start(artifact, filename="p.swu"):
            httpd = stack.enter_context(Server(Handler))
            httpd.ddi = DDI(artifact, filename)
            httpd.ddi.base = httpd.base
            return httpd.ddi

        yield start


def closed(d):
    return [
        (s["execution"], s["result"]["finished"]) for s in d.feedback if s["execution"] == "closed"
    ]


# ---------------------------------------------------------------- the host transport
def test_transport_get_range_sink_and_limits(server):
    d = server(pattern(10_000), "a.bin")
    t = HttpTransport(timeout=10)
    auth = (("Authorization", "TargetToken " + TOKEN),)
    url = d.base + d.root() + "/softwaremodules/1/artifacts/a.bin"

    class Sink:
        def __init__(self):
            self.data = bytearray()

        def write(self, buf, off, n):
            self.data += buf[off : off + n]
            return n

    s = Sink()
    status, n = t.request("GET", url, auth + (("Range", "bytes=100-4195"),), sink=s)
    assert (status, n, bytes(s.data)) == (206, 4096, d.artifact[100:4196])
    status, body = t.request("GET", d.base + d.root(), auth)
    assert status == 200 and json.loads(body)["config"]["polling"]["sleep"] == "00:00:05"
    with pytest.raises(FotaError, match="response over 100 bytes"):
        t.request("GET", url, auth, limit=100)
    # an error's body never lands in the sink (it would corrupt a partial download)
    s = Sink()
    status, n = t.request("GET", url, auth + (("Range", "bytes=20000-20001"),), sink=s)
    assert (status, n, s.data) == (416, 0, bytearray())
    status, body = t.request("GET", url)  # no token
    assert status == 401


def test_transport_refuses_injection_before_connecting(server):
    d = server(b"x")
    t = HttpTransport(timeout=5)
    bad_urls = [
        d.base + "/a\r\nHost: evil",
        d.base + "/a b",
        d.base + '/a"',
        "ftp://127.0.0.1/a",
        "http://127.0.0.1/" + "a" * 3000,
    ]
    for url in bad_urls:
        with pytest.raises(FotaError) as e:
            t.request("GET", url)
        assert e.value.stage == "HTTP" and url not in str(e.value)
    for hdr in ((("Authorization", "TargetToken a\r\nX-Evil: 1"),), (("X\r\nEvil", "1"),)):
        with pytest.raises(FotaError) as e:
            t.request("GET", d.base + d.root(), hdr)
        assert "\r" not in str(e.value) and "TargetToken" not in str(e.value)
    assert d.requests == []


def test_transport_timeout_is_bounded_and_trace_redacts_the_token():
    quiet = socket.socket()
    quiet.bind(("127.0.0.1", 0))
    quiet.listen(1)  # accepts (the kernel does), never answers
    lines = []
    t = HttpTransport(timeout=0.5, trace=lines.append)
    t0 = time.monotonic()
    try:
        with pytest.raises(FotaError) as e:
            t.request(
                "GET",
                "http://127.0.0.1:%d/x" % quiet.getsockname()[1],
                (("Authorization", "TargetToken " + TOKEN),),
            )
    finally:
        quiet.close()
    assert e.value.kind == TIMEOUT and time.monotonic() - t0 < 10
    assert lines and "Authorization: ***" in lines[0] and TOKEN not in "".join(lines)
    assert TOKEN not in str(e.value)


# ---------------------------------------------------------------- fleet + the simulated modem
def _sim(image, faults=()):
    m = sim_model.Modem(
        expect_md5=hashlib.md5(image).hexdigest(),
        faults=faults,
        baud=921_600,
        timing=sim_model.FAST,
        seed=5,
    )
    return m, PtySimulator(m)


def _waits():
    return sim_model.wait_ms(sim_model.FILE_WAITS)


def _fleet(d, sim, folder, said, waits=None, **kw):
    waits = waits or _waits()
    upd = fleet.DriverUpdater(lambda: SerialPort(sim.path, 921_600), timeouts=waits)
    return fleet.Fleet(
        HttpTransport(timeout=10),
        upd,
        d.base,
        "DEFAULT",
        "dev1",
        token=TOKEN,
        folder=str(folder),
        room=1 << 20,
        range_size=16384,
        on_event=lambda n, t: said.append((n, t)),
        **kw,
    )


def _run(f, done, bound=60):
    end = time.monotonic() + bound
    while not done() and time.monotonic() < end:
        f.client.due = f.clock()  # poll now: the test does not wait out the server's sleep
        time.sleep(min(f.step(), 50) / 1000)  # a retry's wait (5 s) without spinning
    assert done(), "not done within %d s" % bound


def test_fleet_swu_over_http_updates_the_simulated_modem(server, tmp_path):
    image = pattern(50_000, 17)
    d = server(make_swu("EC200T_A07_A08.bin", image))
    m, sim = _sim(image)
    said = []
    with sim:
        f = _fleet(d, sim, tmp_path, said)
        f.start()
        _run(f, lambda: closed(d))
    assert closed(d) == [("closed", "success")], (d.feedback, said)
    assert d.feedback[-1]["details"] == [
        "revision " + B,
        "checked: sha1, sha256 of EC200T_A07_A08.bin in sw-description",
    ]
    assert m.revision.startswith(B)
    assert [c["data"]["hw_revision"][:19] for c in d.config] == [A, B], d.config
    assert ("checked", "action 3: sha1, sha256 of EC200T_A07_A08.bin in sw-description") in said
    assert TOKEN not in repr(said)


def test_fleet_config_after_an_update_follows_its_result_when_the_server_was_busy(server, tmp_path):
    # gooseBit sets a device's version from a success feedback: a configData that
    # overtook a result retried after a 429 was overwritten by the package's version,
    # and the server showed a revision the modem does not report.
    image = pattern(20_000, 29)
    d = server(make_swu("EC200T_A07_A08.bin", image))
    d.busy_closed = 1
    m, sim = _sim(image)
    said = []
    with sim:
        f = _fleet(d, sim, tmp_path, said)
        f.start()
        _run(f, lambda: closed(d) and d.order[-1] == "config")
    assert closed(d) == [("closed", "success")], (d.feedback, said)
    assert m.revision.startswith(B)
    last = len(d.order) - 1 - d.order[::-1].index("feedback closed")
    after = [c for c in d.order[last + 1 :] if c == "config"]
    assert after and d.config[-1]["data"]["hw_revision"] == m.revision, (d.order, d.config)


def test_fleet_end_506_reported_with_the_notes_meaning(server, tmp_path):
    image = pattern(30_000, 19)
    d = server(make_swu("EC200T_A07_A08.bin", image))
    m, sim = _sim(image, faults=("end-506",))
    said = []
    with sim:
        f = _fleet(d, sim, tmp_path, said)
        f.start()
        _run(f, lambda: closed(d))
    assert closed(d) == [("closed", "failure")], d.feedback
    assert d.feedback[-1]["details"][0] == "END: 506: FOTA firmware MD5 check error"
    assert m.revision.startswith(A)


def test_fleet_download_cut_resumes_with_range(server, tmp_path):
    # The server closes mid-range: the bytes that arrived stay on flash, the next offer
    # resumes from there (a reset of the MCU leaves the same partial file).
    image = pattern(40_000, 23)
    d = server(make_swu("EC200T_A07_A08.bin", image))
    d.cut_at = 5000
    m, sim = _sim(image)
    said = []
    with sim:
        f = _fleet(d, sim, tmp_path, said)
        f.start()
        _run(f, lambda: closed(d))
    ranges = [h.get("Range") for c, p, h in d.requests if "/artifacts/" in p]
    assert ranges[:2] == ["bytes=0-16383", "bytes=5000-21383"], ranges
    assert closed(d) == [("closed", "success")], (d.feedback, said)
    assert any(n == "failed" and "DOWNLOAD" in t for n, t in said), said


def test_fleet_url_mode_the_modem_fetches_an_anonymous_raw_link(server, tmp_path):
    # url_mode with download_auth=False and a raw package: the link goes to the modem
    # (AT+QFOTADL="http://..."), the simulator fetches it over real HTTP and checks its md5.
    image = pattern(25_000, 53)
    d = server(image, "EC200T_A07_A08.bin")
    d.anonymous = True
    m, sim = _sim(image)
    said = []
    with sim:
        waits = dict(_waits(), **sim_model.wait_ms(sim_model.URL_WAITS))
        f = _fleet(d, sim, tmp_path, said, waits, url_mode=True, download_auth=False)
        f.start()
        _run(f, lambda: closed(d))
    assert closed(d) == [("closed", "success")], (d.feedback, said)
    link = d.base + d.root() + "/softwaremodules/1/artifacts/EC200T_A07_A08.bin"
    assert any(c.startswith('AT+QFOTADL="%s"' % link) for c in m.commands), m.commands
    fetched = [h for c, p, h in d.requests if p.endswith(".bin")]
    assert len(fetched) == 1 and "Authorization" not in fetched[0], fetched
    assert m.revision.startswith(B)
