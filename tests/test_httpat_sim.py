"""The modem transport (``qfota.httpdrv``) against the EC200 simulator on a real pty, whose
HTTP commands make real requests to an HTTP server on 127.0.0.1 (``at_http.WebServer``):
through CPython (the host tools' pyserial port) and through the real MicroPython
interpreter (``qfota.tty.TtyPort``)."""

import json
import os

import pytest
from at_http import WebServer
from conftest import run_micropython

from qfota.errors import FotaError
from qfota.httpdrv import ModemTransport
from qfota_tools.simulators.ec200.model import FAST, Modem
from qfota_tools.simulators.ec200.pty_sim import PtySimulator
from qfota_tools.transport.serial_port import SerialPort

pytestmark = pytest.mark.timeout(180)

PKG = os.urandom(200_000)
SMALL = b'{"config":{"polling":{"sleep":"00:00:05"}},"_links":{}}'
TOKEN = "sim-T0KEN-0815"
AUTH = ("Authorization", "TargetToken " + TOKEN)
WAITS = {"response_ms": 10000, "read_ms": 10000, "command_ms": 3000, "pdp_ms": 5000}


class FileSink:
    """A CPython file as a sink in the MicroPython stream style."""

    def __init__(self, f):
        self.f = f

    def write(self, buf, off, n):
        return self.f.write(memoryview(buf)[off : off + n])


@pytest.fixture
def rig():
    """(server, start(faults) -> simulator); everything stopped at teardown."""
    sims = []
    with WebServer() as srv:
        srv.files["/pkg.bin"] = PKG
        srv.files["/small.json"] = SMALL

        def start(faults=(), noise=True):
            timing = FAST if noise else dict(FAST, noise_ms=0)
            sim = PtySimulator(Modem(timing=timing, baud=921600, faults=faults))
            sim.start()
            sims.append(sim)
            return sim

        try:
            yield srv, start
        finally:
            for sim in sims:
                sim.stop()


def transport(sim, events=None):
    port = SerialPort(sim.path, 921600, flow_hw=True)
    on_event = (lambda ev, a, b: events.append((ev, a))) if events is not None else None
    return port, ModemTransport(port, timeouts=WAITS, rx=4096, trace=True, on_event=on_event)


def test_cpython_get_put_post_and_range_download(rig, tmp_path):
    srv, start = rig
    sim = start()  # with the model's noise: URCs between the lines of the answers
    events = []
    port, t = transport(sim, events)
    try:
        assert t.request("GET", srv.url("/small.json"), (AUTH,)) == (200, SMALL)
        assert srv.seen[-1][2]["Authorization"] == "TargetToken " + TOKEN
        doc = b'{"mode":"merge","data":{"hw_revision":"A07"}}'
        ct = ("Content-Type", "application/json")
        assert t.request("PUT", srv.url("/c/configData"), (AUTH, ct), doc) == (
            200,
            b"stored %d" % len(doc),
        )
        assert srv.files["/c/configData"] == doc
        assert t.request("POST", srv.url("/feedback"), body=b'{"a":1}') == (200, b'posted:{"a":1}')
        out = tmp_path / "pkg.part"
        with open(out, "wb") as f:
            sink = FileSink(f)
            step = 32768
            for a in range(0, len(PKG), step):
                rng = ("Range", "bytes=%d-%d" % (a, a + step - 1))
                status, n = t.request("GET", srv.url("/pkg.bin"), (AUTH, rng), sink=sink)
                assert (status, n) == (206, min(step, len(PKG) - a)), (status, n)
        assert out.read_bytes() == PKG
        assert t.request("GET", srv.url("/nothing")) == (404, b"no such file")
        assert t.request("GET", srv.url("/chunked")) == (200, b"hello chunked world")
    finally:
        port.close()
    log = sim.http_log
    assert [e["method"] for e in log[:3]] == ["GET", "PUT", "POST"], log
    text = repr(events)
    assert TOKEN not in text and "TargetToken ***" in text, text[:2000]


@pytest.mark.parametrize(
    "fault,stage,code,kind,detail",
    [
        ("http-717", "HTTPGET", 717, "modem", "socket read error"),
        ("http-no-answer", "HTTPGET", 728, "modem", "Wait HTTP(S) response timeout"),
        ("http-short-read", "HTTPREAD", 717, "modem", "short"),
        ("reset-mid-download", "HTTPREAD", None, "failed", "rebooted (RDY)"),
    ],
)
def test_cpython_faults_then_the_next_request_works(
    rig, tmp_path, fault, stage, code, kind, detail
):
    srv, start = rig
    sim = start(faults=(fault,), noise=False)
    port, t = transport(sim)
    WAITS_FAULT = dict(WAITS, response_ms=2000)
    t.core.timeouts.update(WAITS_FAULT)
    try:
        out = tmp_path / "part"
        with open(out, "wb") as f:
            with pytest.raises(FotaError) as info:
                t.request(
                    "GET", srv.url("/pkg.bin"), (AUTH, ("Range", "bytes=0-65535")), sink=FileSink(f)
                )
        e = info.value
        assert (e.stage, e.code, e.kind) == (stage, code, kind), str(e)
        assert detail in str(e) and TOKEN not in str(e), str(e)
        part = out.read_bytes()
        assert part == PKG[: len(part)], "the sink holds more than the body"
        # the modem is usable again: the transport checks the context and settings anew
        assert t.request("GET", srv.url("/small.json"), (AUTH,)) == (200, SMALL)
    finally:
        port.close()


def test_micropython_get_put_post_range_and_a_fault(rig, tmp_path, micropython):
    srv, start = rig
    sim = start(faults=("http-short-read",))
    out = tmp_path / "pkg.part"
    size = 131072
    proc = run_micropython(
        ["tests/httpat_mp.py", sim.path, srv.url(""), str(out), str(size)], timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["get"] == [200, SMALL.decode()], res
    assert res["put"] == [200, "stored 16"] and srv.files["/cfg"] == b'{"mode":"merge"}', res
    assert res["post"] == [200, 'posted:{"a":1}'], res
    assert res["range"][0] == 206 and out.read_bytes() == PKG[:size], res["range"]
    # http-short-read hit the first Range read: stated, and resumed from the file's size
    assert [f[:3] for f in res["faults"]] == [["HTTPREAD", 717, "modem"]], res["faults"]
    assert "mp-t0ken" not in proc.stdout
