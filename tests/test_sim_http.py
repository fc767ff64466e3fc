"""The simulator's HTTP(S) AT commands over a real pty, backed by a real HTTP server on
127.0.0.1 (``http.server`` in a thread): the contract's commands written by the test itself
(``at_http.AtModem``), the bytes on both sides checked."""

import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time

import pytest
from at_http import AtModem, WebServer

from qfota_tools.simulators.ec200 import net
from qfota_tools.simulators.ec200.model import FAST, Modem
from qfota_tools.simulators.ec200.pty_sim import PtySimulator

QUIET = dict(FAST, noise_ms=0)
PKG = bytes(range(256)) * 160  # 40 KiB: "a download" for the HTTP faults


@pytest.fixture
def rig():
    """(server, start(**model kwargs) -> (sim, modem)); everything stopped at teardown."""
    opened = []
    with WebServer() as srv:
        srv.files["/pkg.bin"] = PKG

        def start(profile="default", baud=921600, **kw):
            sim = PtySimulator(Modem(timing=QUIET, profile=profile, baud=baud, **kw))
            sim.start()
            h = AtModem(sim.path)
            opened.append((sim, h))
            return sim, h

        try:
            yield srv, start
        finally:
            for sim, h in opened:
                h.close()
                sim.stop()


def test_get_plain_and_bytes_counted(rig):
    srv, start = rig
    sim, h = start()
    h.setup()
    h.set_url(srv.url("/pkg.bin?x=1"))
    assert h.at("AT+QHTTPGET=10") == ("OK", b"")
    assert h.urc("QHTTPGET") == [0, 200, len(PKG)]
    h.ok('AT+QHTTPCFG="responseheader",1')
    head, body, err = h.read(len(PKG), responseheader=True)
    assert (body, err) == (PKG, 0)
    assert head.startswith(b"HTTP/1.") and b" 200 " in head.split(b"\r\n")[0]
    assert b"Content-Length: %d\r\n" % len(PKG) in head
    method, path, headers = srv.seen[-1]
    assert (method, path) == ("GET", "/pkg.bin?x=1")
    assert headers["Host"] == "127.0.0.1:%d" % srv.port
    (entry,) = sim.http_log
    assert entry["method"] == "GET" and entry["path"] == "/pkg.bin"  # no query in the log
    assert (entry["status"], entry["err"]) == (200, 0)
    # down: exactly the answer as received (status line, headers, body)
    assert entry["down"] == len(head) + len(PKG)
    built = b"GET /pkg.bin?x=1 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % srv.port
    assert entry["up"] > len(built) and entry["up"] < 200
    # the answer is read once; a second read has nothing
    assert h.at("AT+QHTTPREAD=5")[0] == "+CME ERROR: 705"


def test_requestheader_1_range_authorization(rig):
    srv, start = rig
    sim, h = start()
    h.setup()
    hdrs = [("Authorization", "TargetToken s3cr3t-t0ken"), ("Range", "bytes=1000-1999")]
    urc, _, body, err = h.request("GET", srv.url("/pkg.bin"), hdrs)
    assert urc == [0, 206, 1000] and err == 0 and body == PKG[1000:2000]
    _, path, seen = srv.seen[-1]
    assert seen["Range"] == "bytes=1000-1999"
    assert seen["Authorization"] == "TargetToken s3cr3t-t0ken"
    entry = sim.http_log[-1]
    assert entry["status"] == 206 and "s3cr3t" not in repr(sim.http_log)
    # the request on the wire is exactly what the host wrote: up counts it
    raw = (
        "GET /pkg.bin HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % srv.port
        + "".join("%s: %s\r\n" % kv for kv in hdrs)
        + "\r\n"
    )
    assert entry["up"] == len(raw)
    # requestheader is sticky; a 404 is an answer (err 0), not a failure
    urc, _, body, err = h.request("GET", srv.url("/nothing"))
    assert urc == [0, 404, len(b"no such file")] and body == b"no such file"
    # requestheader 1 without <data_len>, 0 with one: 730
    assert h.at("AT+QHTTPGET=10")[0] == "+CME ERROR: 730"
    h.ok('AT+QHTTPCFG="requestheader",0')
    assert h.at("AT+QHTTPGET=10,20")[0] == "+CME ERROR: 730"


def test_post_put_and_contenttype(rig):
    srv, start = rig
    sim, h = start()
    h.setup()
    h.ok('AT+QHTTPCFG="contenttype",4')
    h.set_url(srv.url("/feedback"))
    body = b'{"status":{"execution":"closed"}}'
    assert h.with_data("AT+QHTTPPOST=%d,10,10" % len(body), body) == "OK"
    assert h.urc("QHTTPPOST") == [0, 200, len(b"posted:") + len(body)]
    assert h.read(len(b"posted:") + len(body))[1:] == (b"posted:" + body, 0)
    method, path, headers, got = srv.seen[-1]
    assert (method, path, got) == ("POST", "/feedback", body)
    assert headers["Content-Type"] == "application/json"
    # a PUT goes as a whole request with requestheader 1
    data = b'{"mode":"merge","data":{"hw_revision":"A07"}}'
    urc, _, answer, err = h.request(
        "PUT", srv.url("/c/configData"), [("Content-Type", "application/json")], data
    )
    assert urc[:2] == [0, 200] and answer == b"stored %d" % len(data) and err == 0
    assert srv.files["/c/configData"] == data
    assert [e["method"] for e in sim.http_log] == ["POST", "PUT"]


def test_chunked_answer_has_no_length(rig):
    srv, start = rig
    sim, h = start()
    h.setup()
    h.set_url(srv.url("/chunked"))
    h.ok("AT+QHTTPGET=10")
    assert h.urc("QHTTPGET") == [0, 200]  # no <content_length>
    assert h.read()[1:] == (b"hello chunked world", 0)


def test_errors_before_anything_is_sent(rig):
    srv, start = rig
    sim, h = start()
    h.ok("ATE0")
    assert h.at("AT+QHTTPGET=10")[0] == "+CME ERROR: 712"  # no URL yet
    assert h.at("AT+QHTTPREAD=5")[0] == "+CME ERROR: 705"  # nothing to read
    assert h.at('AT+QHTTPCFG="responseheader",2')[0] == "ERROR"
    assert h.at('AT+QHTTPCFG="nosuch",1')[0] == "ERROR"
    assert h.at("AT+QHTTPURL=0,10")[0] == "ERROR"
    # input timeout: fewer bytes than announced within <timeout_s>
    assert h.at("AT+QHTTPURL=40,1")[0] == "CONNECT"
    h.send(b"http://127.0.0.1/")
    t0 = time.monotonic()
    assert h.expect(re.compile(rb"\+CME ERROR: (\d+)\r\n"), 5)[0].group(1) == b"726"
    assert time.monotonic() - t0 < 5
    h.ok("AT")  # back to commands
    # the PDP context not active: 708, and nothing reached the server
    h.set_url(srv.url("/pkg.bin"))
    h.ok("AT+QHTTPGET=10")
    assert h.urc("QHTTPGET") == [708]
    assert srv.seen == [] and sim.http_log[-1]["err"] == 708


def test_injection_in_url_is_only_data(rig):
    srv, start = rig
    sim, h = start()
    h.setup()
    url = srv.url("/pkg.bin") + "\r\nAT+QGMR\r\nX-Evil: 1"
    assert h.with_data("AT+QHTTPURL=%d,10" % len(url), url.encode()) == "+CME ERROR: 711"
    time.sleep(0.2)  # anything the embedded line could have caused has come by now
    h.buf += _drain(h)
    assert b"EC200TCNDAR02A07M16" not in h.buf
    assert "AT+QGMR" not in sim.inspect(lambda m: m.commands)
    assert sim.inspect(lambda m: m.http_url) is None
    assert h.at("AT+QHTTPGET=10")[0] == "+CME ERROR: 712"  # the bad URL was not kept
    for bad in ("ftp://127.0.0.1/x", "http:///x", "http://h/a b", "http://h/\x7f"):
        assert h.with_data("AT+QHTTPURL=%d,10" % len(bad), bad.encode()) == "+CME ERROR: 711"
    assert srv.seen == []


def _drain(h):
    import select

    out = b""
    while select.select([h.fd], [], [], 0.05)[0]:
        out += os.read(h.fd, 65536)
    return out


def test_network_failures_map_to_the_table(rig):
    srv, start = rig
    sim, h = start()
    h.setup()
    # a port nobody listens on: socket connection error
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    h.set_url("http://127.0.0.1:%d/x" % dead)
    h.ok("AT+QHTTPGET=10")
    assert h.urc("QHTTPGET") == [716]
    # a server that takes the request and never answers: 728 after <rsp_s>
    h.set_url(srv.url("/hang"))
    t0 = time.monotonic()
    h.ok("AT+QHTTPGET=1")
    assert h.urc("QHTTPGET", timeout=10) == [728]
    assert 0.8 < time.monotonic() - t0 < 6
    srv.release.set()
    # the server closes after part of the body: the body so far, then 719
    h.set_url(srv.url("/short"))
    h.ok("AT+QHTTPGET=10")
    assert h.urc("QHTTPGET") == [0, 200, 1000]
    _, body, err = h.read()
    assert (body, err) == (b"x" * 100, 719)
    assert [e["err"] for e in sim.http_log] == [716, 728, 0]


@pytest.mark.parametrize("fault,code", [("http-717", 717), ("http-7xx", 717), ("http-714", 714)])
def test_fault_http_7xx_once(rig, fault, code):
    srv, start = rig
    sim, h = start(faults=(fault,))
    h.setup()
    h.set_url(srv.url("/pkg.bin"))
    h.ok("AT+QHTTPGET=10")
    assert h.urc("QHTTPGET") == [code]
    assert srv.seen == []  # nothing was sent
    h.ok("AT+QHTTPGET=10")
    assert h.urc("QHTTPGET") == [0, 200, len(PKG)]


def test_fault_http_no_answer(rig):
    srv, start = rig
    sim, h = start(faults=("http-no-answer",))
    h.setup()
    h.set_url(srv.url("/pkg.bin"))
    t0 = time.monotonic()
    h.ok("AT+QHTTPGET=2")
    assert h.urc("QHTTPGET", timeout=10) == [728]
    assert time.monotonic() - t0 >= 1.9 and srv.seen == []
    h.ok("AT+QHTTPGET=2")
    assert h.urc("QHTTPGET") == [0, 200, len(PKG)]


def test_fault_http_short_read_hits_a_download(rig):
    srv, start = rig
    sim, h = start(faults=("http-short-read",))
    h.setup()
    h.set_url(srv.url("/chunked"))  # small: not a download, not cut
    h.ok("AT+QHTTPGET=10")
    h.urc("QHTTPGET")
    assert h.read()[1:] == (b"hello chunked world", 0)
    urc, _, _, _ = h.request("GET", srv.url("/pkg.bin"), [("Range", "bytes=0-9999")], read=False)
    assert urc == [0, 206, 10000]
    _, body, err = h.read()  # the body stops short: up to the trailer
    assert (body, err) == (PKG[:5000], 717)
    urc, _, body, err = h.request("GET", srv.url("/pkg.bin"), [("Range", "bytes=5000-9999")])
    assert (body, err) == (PKG[5000:10000], 0)  # once only


def test_fault_reset_mid_download(rig):
    srv, start = rig
    sim, h = start(faults=("reset-mid-download",))
    h.setup()
    h.set_url(srv.url("/pkg.bin"))
    h.ok("AT+QHTTPGET=10")
    assert h.urc("QHTTPGET") == [0, 200, len(PKG)]
    assert h.at("AT+QHTTPREAD=10")[0] == "CONNECT"
    m, before = h.expect(re.compile(rb"\r\nRDY\r\n"), 10)
    assert 0 < len(before) < len(PKG) and PKG.startswith(before)
    assert b"+QHTTPREAD" not in before
    assert sim.inspect(lambda m: (m.outcome, m.reboots)) == ("RESET", 1)
    # after the reset: settings, URL and context are gone, as on power-up
    time.sleep(0.2)
    assert h.at("AT+QHTTPGET=10")[0] == "+CME ERROR: 712"
    h.ok("AT+QIACT=1")
    h.set_url(srv.url("/pkg.bin"))
    h.ok("AT+QHTTPGET=10")
    assert h.urc("QHTTPGET") == [0, 200, len(PKG)]
    assert h.read(len(PKG))[1:] == (PKG, 0)  # once only


def test_busy_while_a_request_is_out(rig):
    srv, start = rig
    sim, h = start()
    h.setup()
    h.set_url(srv.url("/hang"))
    h.ok("AT+QHTTPGET=5")
    assert h.at("AT+QHTTPGET=5")[0] == "+CME ERROR: 703"
    assert h.at("AT+QHTTPURL=10,5")[0] == "+CME ERROR: 703"
    assert h.at("AT+QHTTPREAD=5")[0] == "+CME ERROR: 703"
    srv.release.set()
    assert h.urc("QHTTPGET") == [0, 200, 4]


def test_flow_control_holds_the_body(rig):
    """With AT+IFC=2,2 a host that stops reading holds the body (as RTS does): nothing is
    lost however long it pauses, and the body comes at about the line rate."""
    srv, start = rig
    big = os.urandom(200_000)
    srv.files["/big"] = big
    sim, h = start(baud=921600)
    h.setup()
    h.ok("AT+IFC=2,2")
    h.set_url(srv.url("/big"))
    h.ok("AT+QHTTPGET=10")
    assert h.urc("QHTTPGET") == [0, 200, len(big)]
    assert h.at("AT+QHTTPREAD=10")[0] == "CONNECT"
    time.sleep(1.0)  # not reading: the pty fills, the simulator holds
    held = sim.inspect(lambda m: len(m._out))
    assert held < 64 << 10  # the model stopped making output
    t0 = time.monotonic()
    body = h.take(len(big), timeout=30)
    dt = time.monotonic() - t0
    assert body == big
    assert h.expect(re.compile(rb"\r\nOK\r\n\r\n\+QHTTPREAD: 0\r\n"), 5)[1] == b""
    # 200 kB at 92,160 B/s is 2.2 s; part of it was already sent during the pause
    assert dt < 10


def test_note_profile_answers_the_http_commands_but_not_the_unverified(rig):
    srv, start = rig
    sim, h = start(profile="note")
    h.ok("AT+QIACT=1")
    h.ok('AT+QHTTPCFG="contextid",1')
    assert h.at('AT+QHTTPCFG="custom_header","Authorization: TargetToken t"')[0] == "ERROR"
    h.set_url(srv.url("/pkg.bin"))
    assert h.at("AT+QHTTPPUT=10,10,10")[0] == "ERROR"
    h.ok("AT+QHTTPGET=10")
    assert h.urc("QHTTPGET") == [0, 200, len(PKG)]
    assert h.read(len(PKG))[1:] == (PKG, 0)
    # the default profile refuses them too: no host may rely on them
    sim2, h2 = start()
    assert h2.at('AT+QHTTPCFG="custom_header","X: 1"')[0] == "ERROR"
    assert h2.at("AT+QHTTPPUT=10,10,10")[0] == "ERROR"


def test_cli_takes_the_http_faults():
    cmd = [sys.executable, "-m", "qfota_tools.cli", "sim", "--fault", "list"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout
    for name in ("http-7xx", "http-no-answer", "http-short-read", "reset-mid-download"):
        assert name in out
    bad = subprocess.run(
        [sys.executable, "-m", "qfota_tools.cli", "sim", "--fault", "http-799"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "unknown fault http-799" in bad.stderr


# ---- the model alone (sans-I/O): the same script on CPython and on MicroPython ------------
MODEL_SCRIPT = r"""
import sys
sys.path.insert(0, SIM_DIR)
from model import FAST, Modem

def run(faults=()):
    t = dict(FAST)
    t["noise_ms"] = 0
    m = Modem(timing=t, baud=0, faults=faults)
    now = [0]
    out = bytearray()

    def step(ms):
        end = now[0] + ms
        while now[0] < end:
            now[0] += 1
            out.extend(m.read(now[0]))

    def send(b):
        m.write(b, now[0])
        step(50)

    send(b"ATE0\r")
    send(b"AT+QIACT=1\r")
    send(b'AT+QHTTPCFG="requestheader",1\r')
    url = b"http://example.test:8080/DEFAULT/controller/v1/dev?x=1"
    send(b"AT+QHTTPURL=%d,5\r" % len(url))
    send(url)
    raw = b"GET /DEFAULT/controller/v1/dev HTTP/1.1\r\nHost: example.test\r\nAuthorization: TargetToken sec\r\n\r\n"
    send(b"AT+QHTTPGET=5,%d\r" % len(raw))
    send(raw)
    req = m.take_http()
    assert m.take_http() is None  # once
    assert req["data"] == raw and req["url"] == url.decode(), req
    body = b"x" * 5000
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n"
    m.http_done(req["id"], {"err": 0, "status": 200, "head": head, "body": body,
                            "length": 5000, "up": len(raw), "down": len(head) + 5000}, now[0])
    step(50)
    send(b"AT+QHTTPREAD=5\r")
    step(200)
    return m, bytes(out)

m, out = run()
print(out.count(b"+QHTTPGET: 0,200,5000\r\n"), out.count(b"CONNECT\r\n" + b"x" * 5000 + b"\r\nOK\r\n\r\n+QHTTPREAD: 0\r\n"))
e = m.http_log[0]
print(e["method"], e["path"], e["up"], e["down"], e["status"], e["err"])
m, out = run(("reset-mid-download",))
i = out.index(b"CONNECT\r\n") + 9
print(out[i:].count(b"x"), b"+QHTTPREAD" in out, out.count(b"\r\nRDY\r\n"), m.outcome, m.http_url)
"""


def _model_script():
    sim_dir = os.path.dirname(__import__("qfota_tools.simulators.ec200.model").__file__)
    sim_dir = os.path.join(sim_dir, "simulators", "ec200")
    return MODEL_SCRIPT.replace("SIM_DIR", repr(sim_dir))


MODEL_EXPECT = ["1 1", "GET /DEFAULT/controller/v1/dev 95 5041 200 0", "2500 False 1 RESET None"]


def test_model_http_sans_io_on_cpython():
    r = subprocess.run(
        [sys.executable, "-c", _model_script()], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == MODEL_EXPECT


def test_model_http_sans_io_on_micropython(micropython):
    r = subprocess.run(
        [micropython, "-c", _model_script()], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr + r.stdout
    assert r.stdout.splitlines() == MODEL_EXPECT


def test_qfota_sim_process_serves_http(rig):
    """The ``qfota sim`` command itself (a process, as the agent's tests run modems)."""
    srv, _ = rig
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "qfota_tools.cli",
            "sim",
            "--fast",
            "--baud",
            "921600",
            "--fault",
            "http-no-answer",
            "--log",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        path = proc.stdout.readline().strip()
        assert path.startswith("/dev/"), path
        h = AtModem(path)
        try:
            h.setup()
            h.set_url(srv.url("/pkg.bin"))
            h.ok("AT+QHTTPGET=1")
            assert h.urc("QHTTPGET", timeout=10) == [728]
            urc, _, body, err = h.request(
                "GET", srv.url("/pkg.bin"), [("Authorization", "TargetToken sekrit-42")]
            )
            assert urc == [0, 200, len(PKG)] and body == PKG and err == 0
        finally:
            h.close()
    finally:
        proc.terminate()
        _, err_text = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert "* http GET /pkg.bin: err 0, status 200" in err_text
    assert "sekrit-42" not in err_text


@pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl to make a certificate")
def test_https_with_the_modems_ca(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert), str(key))
    with WebServer(tls=ctx) as srv:
        srv.files["/s.bin"] = PKG[:3000]
        for cafile, want in ((None, [716]), (str(cert), [0, 200, 3000])):
            sim = PtySimulator(Modem(timing=QUIET, baud=921600), cafile=cafile)
            sim.start()
            h = AtModem(sim.path)
            try:
                h.setup()
                h.ok('AT+QHTTPCFG="sslctxid",1')
                h.set_url(srv.url("/s.bin"))
                h.ok("AT+QHTTPGET=10")
                assert h.urc("QHTTPGET") == want
                if cafile:
                    assert h.read(3000)[1:] == (PKG[:3000], 0)
            finally:
                h.close()
                sim.stop()


# ---- net.perform against a raw socket server (answers no http.server would give) ------------
class RawServer:
    """Accepts one connection on 127.0.0.1, reads the request head, sends ``answer``
    (bytes, or a callable(conn)), then closes."""

    def __init__(self, answer):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]
        self.answer = answer
        self.got = b""
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        self.sock.settimeout(10)
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(10)
            while b"\r\n\r\n" not in self.got:
                b = conn.recv(4096)
                if not b:
                    return
                self.got += b
            if callable(self.answer):
                self.answer(conn)
            else:
                conn.sendall(self.answer)

    def close(self):
        self.sock.close()
        self.thread.join(15)


def _perform(answer, rsp_s=3, max_body=1 << 20, method="GET"):
    srv = RawServer(answer)
    try:
        url = "http://127.0.0.1:%d/x" % srv.port
        data = b"%s /x HTTP/1.1\r\nHost: h\r\n\r\n" % method.encode()
        req = {"url": url, "data": data, "rsp_s": rsp_s, "max": max_body, "method": method}
        t0 = time.monotonic()
        res = net.perform(req)
        res["took"] = time.monotonic() - t0
        return res
    finally:
        srv.close()


def test_net_answers_beyond_http_server():
    # close-delimited: no length, the body up to the close
    res = _perform(b"HTTP/1.0 200 OK\r\n\r\nuntil close")
    assert (res["err"], res["length"], res["body"], res["body_err"]) == (0, None, b"until close", 0)
    assert res["down"] == len(b"HTTP/1.0 200 OK\r\n\r\nuntil close")
    # chunked with an extension and a trailer
    res = _perform(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4;x=y\r\nabcd\r\n2\r\nef\r\n0\r\nT: 1\r\n\r\n"
    )
    assert (res["length"], res["body"], res["body_err"]) == (None, b"abcdef", 0)
    # 204 and a HEAD: no body whatever the length says
    assert _perform(b"HTTP/1.1 204 No Content\r\n\r\n")["body"] == b""
    res = _perform(b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", method="HEAD")
    assert (res["status"], res["length"], res["body"]) == (200, 99, b"")
    # a 100 Continue first: skipped
    res = _perform(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"
    )
    assert (res["status"], res["body"]) == (201, b"ok")
    # not HTTP: data decode error
    assert _perform(b"SSH-2.0-OpenSSH\r\n\r\n")["err"] == 721
    # a body over the modem's room: 729, and the length the server gave
    res = _perform(b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + b"z" * 5000, max_body=1000)
    assert (res["length"], res["body_err"], res["body"]) == (5000, 729, b"")
    # closed before any answer: 719
    assert _perform(b"")["err"] == 719
    # a header block without end: bounded (16 KiB), 721
    assert _perform(b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 4000)["err"] == 721


def test_net_waits_are_bounded():
    def stall_head(conn):
        time.sleep(3)

    res = _perform(stall_head, rsp_s=1)
    assert res["err"] == 728 and 0.9 < res["took"] < 4

    def stall_body(conn):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"a" * 10)
        time.sleep(3)

    res = _perform(stall_body, rsp_s=1)
    assert (res["err"], res["body"], res["body_err"]) == (0, b"a" * 10, 722)
    assert 0.9 < res["took"] < 4


def test_the_answer_never_comes_before_the_commands_ok():
    """A network that answers at once (a refused port: under a millisecond) still gives
    OK first, then +QHTTPGET, as the modem does (the request goes out after the OK)."""
    m = Modem(timing=QUIET, baud=0)
    out = bytearray()
    now = 0
    for line in (b"ATE0\r", b"AT+QIACT=1\r"):
        m.write(line, now)
        for _ in range(60):
            now += 1
            out += m.read(now)
    url = b"http://127.0.0.1:9/x"
    m.write(b"AT+QHTTPURL=%d,5\r" % len(url), now)
    m.write(url, now)
    for _ in range(10):
        now += 1
        out += m.read(now)
    out = bytearray()
    m.write(b"AT+QHTTPGET=5\r", now)
    assert m.take_http() is None  # not before the OK is out
    while b"OK" not in out:
        now += 1
        out += m.read(now)
        req = m.take_http()
    req = req or m.take_http()
    m.http_done(req["id"], {"err": 716}, now)  # the answer at once
    out += m.read(now)
    assert bytes(out).replace(b"AT+QHTTPGET=5\r", b"") == b"\r\nOK\r\n\r\n+QHTTPGET: 716\r\n"
