"""The simulator on a real pty: AT exchanges, flow-control pushback, reopen, CPU, the CLI."""

import hashlib
import os
import select
import subprocess
import sys
import threading
import time
import tty

import pytest
from http_rig import Server, static

from qfota_tools.simulators.ec200.model import FAST, Modem
from qfota_tools.simulators.ec200.pty_sim import PtySimulator

QUIET = dict(FAST, noise_ms=0)


class Host:
    """The host side of the pty, opened like a serial port."""

    def __init__(self, path):
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self.fd)
        self.buf = bytearray()

    def send(self, data):
        os.write(self.fd, data)

    def read_until(self, pattern, timeout=3.0):
        deadline = time.monotonic() + timeout
        while pattern not in self.buf:
            left = deadline - time.monotonic()
            r, _, _ = select.select([self.fd], [], [], max(0, left))
            if not r:
                raise AssertionError("no %r in %r" % (pattern, bytes(self.buf[-300:])))
            self.buf += os.read(self.fd, 65536)
        return bytes(self.buf)

    def cmd(self, line, expect=b"OK\r\n", timeout=3.0):
        self.buf = bytearray()
        self.send(line.encode() + b"\r")
        return self.read_until(expect, timeout)

    def close(self):
        os.close(self.fd)


@pytest.fixture
def sim_factory():
    sims = []

    def make(model, **kw):
        sim = PtySimulator(model, **kw)
        sim.start()
        sims.append(sim)
        return sim

    yield make
    for s in sims:
        s.stop()


def test_at_exchange_and_link(sim_factory, tmp_path):
    link = str(tmp_path / "ec200")
    sim = sim_factory(Modem(timing=QUIET), link=link)
    assert os.path.realpath(link) == sim.path and sim.path.startswith("/dev/")
    h = Host(link)
    assert (
        h.cmd("ATI") == b"ATI\r\r\nQuectel\r\nEC200T\r\nRevision: EC200TCNDAR02A07M16\r\n\r\nOK\r\n"
    )
    assert h.cmd("ATE0") == b"ATE0\r\r\nOK\r\n"
    assert h.cmd("AT+QGMR") == b"\r\nEC200TCNDAR02A07M16_01.001.01.001\r\n\r\nOK\r\n"
    assert sim.inspect(lambda m: m.commands) == ["ATI", "ATE0", "AT+QGMR"]
    h.close()
    sim.stop()
    assert not os.path.lexists(link)


def test_host_can_close_and_reopen(sim_factory):
    sim = sim_factory(Modem(timing=QUIET))
    for _ in range(3):
        h = Host(sim.path)
        assert h.cmd("AT").endswith(b"\r\nOK\r\n")
        h.close()
        time.sleep(0.05)
    assert sim.running and sim.error is None


def test_flow_control_holds_writer_to_line_rate(sim_factory):
    sim = sim_factory(Modem(timing=QUIET, baud=115200))  # 11520 bytes/s
    h = Host(sim.path)
    h.cmd("AT+IFC=2,2")
    h.cmd('AT+QFOTADL="FILE:1000000",1', expect=b"FILESTART")
    written = [0]

    def writer():
        block = b"\xa5" * 1024
        try:
            while written[0] < 1000000:
                written[0] += os.write(h.fd, block)
        except OSError:
            pass  # the simulator went away

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    time.sleep(0.5)  # past the pty's own buffer: now the writer waits for the "modem"
    got0, w0, t0 = sim.inspect(lambda m: len(m.received)), written[0], time.monotonic()
    time.sleep(1.0)
    got1, w1, t1 = sim.inspect(lambda m: len(m.received)), written[0], time.monotonic()
    rate = (got1 - got0) / (t1 - t0)
    assert 0.9 * 11520 < rate < 1.1 * 11520
    # the writer is held: it is never more than the pty's own buffer (and the model's
    # bucket) ahead of what the "modem" took, so in the long run it goes at line rate
    assert w0 - got0 < 32768 and w1 - got1 < 32768
    assert t.is_alive()
    sim.stop()  # the writer's next write fails (EIO): it ends before its fd is closed
    t.join(30)
    assert not t.is_alive()
    h.close()


def test_keeps_up_with_921600_baud(sim_factory):
    n = 150_000  # 1.6 s at 92160 bytes/s
    sim = sim_factory(Modem(timing=QUIET, baud=921600, keep_received=False))
    h = Host(sim.path)
    h.cmd("AT+IFC=2,2")
    h.cmd('AT+QFOTADL="FILE:%d",1,5,0' % n, expect=b"FILESTART")
    cpu0, t0 = time.process_time(), time.monotonic()
    block = b"\x5a" * 4096
    sent = 0
    while sent < n:
        sent += os.write(h.fd, block[: n - sent])
    assert sim.wait_for(lambda m: m.outcome, 5) == "FILEEND 0"
    dt = time.monotonic() - t0
    cpu = time.process_time() - cpu0
    assert n / dt > 0.9 * 92160  # pty buffer and bucket make up for the start-up
    assert cpu < 0.5 * dt, "the simulator should not burn CPU: %.2f s in %.2f s" % (cpu, dt)
    h.close()


def test_without_flow_control_it_reads_everything_and_loses_the_overflow(sim_factory):
    sim = sim_factory(Modem(timing=QUIET))
    h = Host(sim.path)
    h.cmd('AT+QFOTADL="FILE:20000",1', expect=b"FILESTART")
    t0 = time.monotonic()
    h.send(bytes(20000))  # far above 15 KB/s: not held back, but lost
    assert time.monotonic() - t0 < 0.5
    h.read_until(b"FILEEND")
    assert sim.inspect(lambda m: (m.outcome, m.overflow_bytes > 0)) == ("FILEEND 500", True)


@pytest.mark.parametrize("faults", [(), ("stall",)])
def test_idle_loop_does_not_spin(sim_factory, faults):
    sim = sim_factory(Modem(timing=FAST, faults=faults))
    h = Host(sim.path)
    h.cmd("AT+IFC=2,2")
    if faults:
        h.cmd('AT+QFOTADL="FILE:4000",1', expect=b"FILESTART")
        h.send(bytes(4000))  # half is taken, the rest waits in the pty: stalled
        assert sim.wait_for(lambda m: "STALL" in m.history, 2)
    cpu0 = time.process_time()
    time.sleep(1.0)
    assert time.process_time() - cpu0 < 0.1
    h.close()


def test_url_mode_with_a_real_http_server(sim_factory, tmp_path):
    image = os.urandom(20000)
    (tmp_path / "fw.bin").write_bytes(image)
    with Server(static(tmp_path)) as srv:
        lines = []
        sim = sim_factory(
            Modem(timing=QUIET, expect_md5=hashlib.md5(image).hexdigest()), log=lines.append
        )
        h = Host(sim.path)
        h.cmd('AT+QICSGP=1,1,"internet","","",0')
        h.cmd("AT+QIACT=1")
        h.cmd('AT+QFOTADL="%s",1,5,5' % (srv.base + "/fw.bin"))
        h.read_until(b"HTTPSTART")
        h.read_until(b'"END",0')
        assert sim.wait_for(lambda m: m.updates_completed, 3) == 1
        assert sim.model.received_md5 == hashlib.md5(image).hexdigest()
        assert any(line.startswith("* fetch result 0") for line in lines)
        h.close()


def _qfota(*args, **kw):
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    return subprocess.Popen(
        [sys.executable, "-m", "qfota_tools.cli", "sim", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        **kw,
    )


def test_cli_update_then_exit_after(tmp_path):
    image = os.urandom(8192)
    img = tmp_path / "fw.bin"
    img.write_bytes(image)
    link = str(tmp_path / "modem")
    p = _qfota(
        "--fast", "--baud", "921600", "--image", str(img), "--link", link, "--log",
        "--exit-after", "1", "--exit-grace", "0.3", "--seed", "4",
    )  # fmt: skip
    try:
        assert p.stdout is not None and p.stderr is not None
        path = p.stdout.readline().decode().strip()
        assert path.startswith("/dev/") and os.path.realpath(link) == path
        h = Host(path)
        # an FTP URL with a password: no PDP context, so FTPEND 605; the log must redact it
        h.cmd('AT+QFOTADL="ftp://bob:hunter2@127.0.0.1:9/fw.bin"', expect=b"FTPEND")
        h.read_until(b"605")
        h.cmd("AT+IFC=2,2")
        h.cmd('AT+QFOTADL="FILE:%d",1,5,5' % len(image), expect=b"FILESTART")
        h.send(image)
        h.read_until(b"RDY", timeout=5)
        h.close()
        assert p.wait(timeout=10) == 0
        err = p.stderr.read().decode()
        assert "bob:***@127.0.0.1" in err and "hunter2" not in err
        assert "FILEEND" in err and "stopped: 1 updates, outcome END 0" in err
        assert not os.path.lexists(link)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_cli_sigterm_and_fault_list():
    p = _qfota("--fast", "--fault", "end-504", "--fault", "garbage")
    try:
        assert p.stdout is not None
        assert p.stdout.readline().decode().startswith("/dev/")
        p.terminate()
        assert p.wait(timeout=5) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    r = subprocess.run(
        [sys.executable, "-m", "qfota_tools.cli", "sim", "--fault", "list"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 0 and "reset-mid-transfer" in r.stdout and "pdp-inactive" in r.stdout
    r = subprocess.run(
        [sys.executable, "-m", "qfota_tools.cli", "sim", "--fault", "bogus"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 2 and "unknown fault" in r.stderr


def test_stall_reads_exactly_up_to_half_then_says_nothing(sim_factory):
    # The read chunk at 115200 baud is 230 bytes: the room left before the stall is
    # almost never a multiple of it. The simulator must read exactly that room, and the
    # stalled model must not end the transfer (no FILEEND,500 after a quiet line).
    n = 4001
    sim = sim_factory(Modem(timing=QUIET, faults=("stall",), baud=115200))
    h = Host(sim.path)
    h.cmd("AT+IFC=2,2")
    h.cmd('AT+QFOTADL="FILE:%d",1' % n, expect=b"FILESTART")
    before = sim.bytes_in
    h.buf = bytearray()
    h.send(bytes(range(256)) * 15 + bytes(n - 3840))
    assert sim.wait_for(lambda m: "STALL" in m.history, 2)
    time.sleep(QUIET["download_idle_ms"] / 1000 * 2)
    assert sim.inspect(lambda m: (len(m.received), m.outcome)) == (n // 2, None)
    assert sim.bytes_in - before == n // 2  # the rest is still in the pty
    r, _, _ = select.select([h.fd], [], [], 0.05)
    if r:
        h.buf += os.read(h.fd, 65536)
    assert b"FILEEND" not in h.buf
    cpu0 = time.process_time()
    time.sleep(0.5)
    assert time.process_time() - cpu0 < 0.05
    h.close()


@pytest.mark.parametrize(
    "args,expect",
    [
        (
            ["--image", "/nonexistent/fw.bin"],
            "qfota sim: --image /nonexistent/fw.bin: no such file",
        ),
        (["--link", "/nonexistent-dir/modem"], "qfota sim: --link /nonexistent-dir/modem: no such"),
        (["--baud", "-1"], "qfota sim: --baud -1: must be 0 or more"),
        (["--voltage-mv", "-3900"], "qfota sim: --voltage-mv -3900: must be 0 or more"),
        (["--rx-buffer", "0"], "qfota sim: --rx-buffer 0: must be 1 or more"),
        (["--fetch-timeout", "-2"], "qfota sim: --fetch-timeout -2.0: must be 0.001 or more"),
        (["--fetch-timeout", "nan"], "qfota sim: --fetch-timeout nan: must be 0.001 or more"),
        (["--exit-after", "-1"], "qfota sim: --exit-after -1: must be 1 or more"),
        (["--seed", "-3"], "qfota sim: --seed -3: must be 0 or more"),
        (["--profile", "nope"], "argument --profile: invalid choice: 'nope'"),
        (["--baud", "fast"], "argument --baud: invalid int value: 'fast'"),
    ],
)
def test_cli_refuses_bad_arguments_in_one_line(args, expect):
    r = subprocess.run(
        [sys.executable, "-m", "qfota_tools.cli", "sim", "--fast", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stdout == ""  # no pty path: it never started
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and expect in lines[0], r.stderr


def test_cli_link_over_a_regular_file_is_refused(tmp_path):
    keep = tmp_path / "notes.txt"
    keep.write_text("mine")
    r = subprocess.run(
        [sys.executable, "-m", "qfota_tools.cli", "sim", "--fast", "--link", str(keep)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 2 and r.stderr.strip() == (
        "qfota sim: --link %s: exists and is not a symlink (not replacing it)" % keep
    )
    assert keep.read_text() == "mine"


def test_cli_note_profile():
    p = _qfota("--fast", "--profile", "note")
    try:
        assert p.stdout is not None
        h = Host(p.stdout.readline().decode().strip())
        assert h.cmd("AT+QGMR", expect=b"ERROR\r\n").endswith(b"\r\nERROR\r\n")
        assert b"Revision: EC200TCNDAR02A07M16" in h.cmd("ATI")
        assert h.cmd("ATE0", expect=b"ERROR\r\n").endswith(b"\r\nERROR\r\n")
        h.close()
        p.terminate()
        assert p.wait(timeout=5) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
