"""Interruptions on a real pty, both runtimes: a rerun right after a cut transfer, and
the port vanishing in the middle (issue 11)."""

import hashlib
import os
import signal
import subprocess
import time

import pytest
from cli_rig import qfota, streaming

from qfota_tools.simulators.ec200.model import FAST, Modem
from qfota_tools.simulators.ec200.pty_sim import PtySimulator

pytestmark = pytest.mark.timeout(120)
RUNTIMES = ("cpython", "micropython")
PACKAGE = bytes((i * 7 + i // 251) & 0xFF for i in range(150_000))
FAST_WAITS = ["--timeout", "probe=3", "--timeout", "fileend=8", "--timeout", "settle=5"]


@pytest.fixture
def image(tmp_path):
    p = tmp_path / "EC200T.bin"
    p.write_bytes(PACKAGE)
    return str(p)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_rerun_right_after_a_cut_transfer_succeeds(runtime, image):
    # 115200 baud with flow control: ~11.5 KB/s, so the first run is cut mid-transfer.
    m = Modem(expect_md5=hashlib.md5(PACKAGE).hexdigest(), timing=FAST, baud=115200, seed=3)
    with PtySimulator(m) as sim:
        cmd = qfota("update", "--runtime", runtime, "--port", sim.path, "--image", image)
        with streaming(sim, cmd + FAST_WAITS, 20_000) as first:
            first.send_signal(signal.SIGINT)
            out, _ = first.communicate(timeout=15)
        assert first.returncode == 130, out
        last = out.strip().splitlines()[-1]
        # The last line says what the modem is doing and how to get it out.
        assert last.startswith("qfota: failed: STREAM: interrupted:"), last
        assert "inside the FILE transfer" in last and "qfota recover" in last, last
        # At once, no waiting by hand: the rerun listens for the modem to end the cut
        # transfer (FILEEND 500 after its quiet time) before it sends AT, then updates.
        t0 = time.monotonic()
        again = subprocess.run(
            qfota("update", "--runtime", runtime, "--port", sim.path, "--image", image)
            + FAST_WAITS,
            capture_output=True,
            text=True,
            timeout=90,
        )
        took = time.monotonic() - t0
    assert again.returncode == 0, again.stdout + again.stderr
    assert "listening for the modem to end that transfer" in again.stdout, again.stdout
    assert "FILEEND 500" in m.history, m.history
    assert m.outcome == "END 0" and m.received_md5 == hashlib.md5(PACKAGE).hexdigest()
    assert took < 60, took


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_port_vanishing_mid_transfer_is_a_stated_failure(runtime, image):
    m = Modem(expect_md5=hashlib.md5(PACKAGE).hexdigest(), timing=FAST, baud=115200, seed=4)
    sim = PtySimulator(m)
    path = sim.start()
    cmd = qfota("update", "--runtime", runtime, "--port", path, "--image", image)
    try:
        with streaming(sim, cmd + FAST_WAITS, 20_000) as proc:
            sim.stop()  # the device goes away: the pty's other end closes
            out, _ = proc.communicate(timeout=30)
    finally:
        sim.stop()
    assert proc.returncode == 1, out
    last = out.strip().splitlines()[-1]
    assert "Traceback" not in out and "internal error" not in out, out
    assert last.startswith("qfota: failed: STREAM: the port failed: [Errno 5] EIO"), last
    assert "package bytes sent" in last, last
    assert os.path.exists(image)
