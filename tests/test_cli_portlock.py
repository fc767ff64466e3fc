"""One port, one updater: `qfota update` holds the port exclusively (flock, then TIOCEXCL)
on both runtimes. A second qfota, or a port another program holds, gets "port busy",
exit 2, and sends nothing; the first update is not disturbed.

These run whole updates: they need a working engine (``firmware/qfota``).
"""

import fcntl
import hashlib
import os
import subprocess
import sys
import textwrap
import time

import pytest
from cli_rig import children, excl_flag, qfota, stopped, streaming

from qfota_tools.simulators.ec200.model import FAST, Modem
from qfota_tools.simulators.ec200.pty_sim import PtySimulator
from qfota_tools.transport import portlock

RUNTIMES = ("cpython", "micropython")
PACKAGE = os.urandom(40_000)
WAITS = ["probe=3", "command=2", "filestart=2", "fileend=3", "start=3", "progress=3"]
WAITS += ["reboot=3", "settle=3", "stall=3"]


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    path = tmp_path_factory.mktemp("lock") / "EC200T.bin"
    path.write_bytes(PACKAGE)
    return str(path)


def qfota_cmd(port, image, runtime, *extra):
    cmd = qfota("update", "--runtime", runtime, "--port", port, "--image", image)
    for w in WAITS:
        cmd += ["--timeout", w]
    return cmd + list(extra)


def can_flock(path):
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_second_qfota_is_refused_and_the_first_completes(runtime, image):
    # The first is held still (SIGSTOP) in the middle of its transfer while the others
    # try, however long a loaded machine takes to start them: it holds the port all the
    # while, and the modem can only have got their bytes. The modem's quiet window and the
    # first's stall wait are longer than the hold, so it then goes on to the end.
    timing = dict(FAST, download_idle_ms=120_000)
    m = Modem(expect_md5=hashlib.md5(PACKAGE).hexdigest(), timing=timing, baud=115200, seed=4)
    with PtySimulator(m) as sim:
        # Mid-transfer: the package is streaming (about 11.5 KB/s at 115200 baud).
        cmd = qfota_cmd(sim.path, image, runtime, "--timeout", "stall=120")
        with streaming(sim, cmd, 4000) as first:
            assert excl_flag(sim.path) == 1  # TIOCEXCL is on, for either runtime
            with stopped(first):
                ncmd = len(sim.inspect(lambda mm: mm.commands))
                second, third = (
                    subprocess.run(
                        qfota_cmd(sim.path, image, rt), capture_output=True, text=True, timeout=60
                    )
                    for rt in ("cpython", "micropython")
                )
                assert sim.inspect(lambda mm: len(mm.commands)) == ncmd
            out, _ = first.communicate(timeout=90)
    for proc in (second, third):
        assert proc.returncode == 2, proc.stdout + proc.stderr
        # Named by the pid of the qfota that holds it (the CLI's, for either runtime).
        assert proc.stdout.strip().splitlines() == [
            "qfota: failed: PORT: port busy: %s (qfota pid %d holds it)" % (sim.path, first.pid)
        ]
        assert proc.stderr == ""
    # Nothing of the others landed in the package: the modem took it whole and upgraded.
    assert first.returncode == 0, out
    assert m.received_md5 == hashlib.md5(PACKAGE).hexdigest()
    assert m.outcome == "END 0"
    assert [c for c in m.commands if c.upper().startswith('AT+QFOTADL="')] == [
        'AT+QFOTADL="FILE:%d",1,0,100' % len(PACKAGE)
    ]


_HOLDER = textwrap.dedent(
    """
    import fcntl, os, sys
    fd = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY)
    if sys.argv[2] == "excl":
        fcntl.ioctl(fd, 0x540C)  # TIOCEXCL
    else:
        fcntl.flock(fd, fcntl.LOCK_EX)
    print("held", flush=True)
    sys.stdin.read()  # until the test closes our stdin
    if sys.argv[2] == "excl":
        fcntl.ioctl(fd, 0x540D)  # TIOCNXCL
    """
)


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize(
    "how,why",
    [
        ("excl", "another program holds it exclusively"),
        ("flock", "another qfota or program has it locked"),
    ],
)
def test_port_held_by_another_program(runtime, how, why, image):
    m = Modem(timing=dict(FAST, noise_ms=0))
    with PtySimulator(m) as sim:
        holder = subprocess.Popen(
            [sys.executable, "-c", _HOLDER, sim.path, how],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout.readline().strip() == "held"
            proc = subprocess.run(
                qfota_cmd(sim.path, image, runtime), capture_output=True, text=True, timeout=30
            )
        finally:
            holder.stdin.close()
            holder.wait(10)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert proc.stdout.strip() == "qfota: failed: PORT: port busy: %s (%s)" % (sim.path, why)
        time.sleep(0.05)
        assert sim.bytes_in == 0
        assert m.commands == []


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_lock_is_released_after_the_update(runtime, image):
    m = Modem(expect_md5=hashlib.md5(PACKAGE).hexdigest(), timing=FAST, baud=0, seed=2)
    with PtySimulator(m) as sim:
        proc = subprocess.run(
            qfota_cmd(sim.path, image, runtime), capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert excl_flag(sim.path) == 0
        assert can_flock(sim.path)


def test_portlock_unit(tmp_path):
    # PortLock itself, on a pty with no simulator: busy while held, free after release.
    master, slave = os.openpty()
    path = os.ttyname(slave)
    try:
        lock = portlock.PortLock(path)
        mine = "qfota pid %d holds it" % os.getpid()
        with pytest.raises(portlock.PortBusy, match=mine):
            portlock.PortLock(path)
        lock.exclusive()
        assert excl_flag(path) == 1
        with pytest.raises(portlock.PortBusy, match=mine):
            portlock.PortLock(path)
        lock.release()
        assert excl_flag(path) == 0
        portlock.PortLock(path).release()
        with pytest.raises(FileNotFoundError):
            portlock.PortLock(str(tmp_path / "nodev"))
    finally:
        os.close(master)
        os.close(slave)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_kill_9_leaves_no_stale_busy_port(runtime, image):
    # TIOCEXCL outlives its owner on a pty (the simulator keeps the tty open): after a
    # kill -9 mid-transfer the next qfota clears it and recovers the modem, instead of
    # "port busy" with nothing holding the port.
    m = Modem(expect_md5=hashlib.md5(PACKAGE).hexdigest(), timing=FAST, baud=115200, seed=6)
    with PtySimulator(m) as sim:
        with streaming(sim, qfota_cmd(sim.path, image, runtime), 4000) as first:
            assert excl_flag(sim.path) == 1
            kids = children(first.pid)
            first.kill()
            first.communicate(timeout=30)
        for pid in kids:  # the MicroPython child dies with its parent (PDEATHSIG)
            for _ in range(500):
                if not os.path.exists("/proc/%d" % pid):
                    break
                time.sleep(0.02)
            assert not os.path.exists("/proc/%d" % pid), "child %d outlived its parent" % pid
        assert excl_flag(sim.path) == 1  # the stale flag: nobody cleared it
        cmd = qfota("recover", "--runtime", runtime, "--port", sim.path)
        cmd += ["--timeout", "fileend=8", "--timeout", "probe=3"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
        assert excl_flag(sim.path) == 0
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == (
        "qfota: cleared the exclusive flag that qfota pid %d left on %s (it is gone)"
        % (first.pid, sim.path)
    ), lines
    assert "port busy" not in proc.stdout
    assert lines[-1].startswith("qfota: done: the modem runs "), lines
    assert "FILEEND 500" in m.history
