"""SIGTERM, SIGHUP and SIGINT to `qfota update`, mid-transfer, on either runtime: the whole
process tree stops (the MicroPython child too), the exit status is 128 + the signal,
and nothing more reaches the modem. Then the port is free again.

These run whole updates: they need a working engine (``firmware/qfota``).
"""

import hashlib
import os
import signal
import time

import pytest
from cli_rig import alive, children, excl_flag, qfota, streaming

from qfota_tools.simulators.ec200.model import FAST, Modem
from qfota_tools.simulators.ec200.pty_sim import PtySimulator
from qfota_tools.transport import portlock

PACKAGE = os.urandom(30_000)


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    path = tmp_path_factory.mktemp("sig") / "EC200T.bin"
    path.write_bytes(PACKAGE)
    return str(path)


@pytest.mark.parametrize("runtime", ["cpython", "micropython"])
@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP", "SIGINT"])
def test_signal_mid_transfer_stops_the_tree(runtime, sig, image):
    signum = getattr(signal, sig)
    # 9600 baud with flow control: about 960 B/s, so the transfer lasts ~30 s.
    m = Modem(expect_md5=hashlib.md5(PACKAGE).hexdigest(), timing=FAST, baud=9600, seed=1)
    with PtySimulator(m) as sim:
        cmd = qfota("update", "--runtime", runtime, "--port", sim.path, "--image", image)
        with streaming(sim, cmd + ["--timeout", "probe=3"], 1500, within=20) as proc:
            kids = children(proc.pid)
            if runtime == "micropython":
                assert len(kids) == 1, kids  # the interpreter
            t0 = time.monotonic()
            proc.send_signal(signum)
            out, _ = proc.communicate(timeout=15)
            took = time.monotonic() - t0
        assert proc.returncode == 128 + signum, out
        assert took < 8, took
        for pid in kids:
            deadline = time.monotonic() + 3
            while alive(pid) and time.monotonic() < deadline:
                time.sleep(0.02)
            assert not alive(pid), "the MicroPython child %d survived %s" % (pid, sig)
        # No process is left to talk to the modem: no command appears later. (Package
        # bytes already in the pty's buffer still drain into the model at line rate.)
        ncmd = len(sim.inspect(lambda mm: mm.commands))
        time.sleep(0.3)
        assert len(sim.inspect(lambda mm: mm.commands)) == ncmd
        assert m.outcome is None  # no END: the transfer was cut, not completed
        # The last line is qfota's own (the engine names what the modem is doing), never
        # a traceback. On micropython this needs the engine to catch KeyboardInterrupt.
        assert "Traceback" not in out, out
        assert out.strip().splitlines()[-1].startswith("qfota: "), out
        # The port is free again: the lock went with the process tree.
        assert excl_flag(sim.path) == 0
        portlock.PortLock(sim.path).release()
