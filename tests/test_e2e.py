"""End to end: `qfota update` (the real CLI) against the EC200 simulator on a real pty,
through CPython (pyserial) and through the real MicroPython interpreter (boards/unix.py).

Each failing scenario must end within its bound with the right stage, code and meaning;
refused inputs must send nothing; happy paths must deliver the image intact (the
simulator's md5 of what it received).
"""

import hashlib
import os
import re
import subprocess
import sys
import time

import pytest

from qfota_tools.simulators.ec200 import model as sim_model
from qfota_tools.simulators.ec200.pty_sim import PtySimulator

RUNTIMES = ("cpython", "micropython")


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    path = tmp_path_factory.mktemp("e2e") / "EC200T_A07_to_A08.bin"
    path.write_bytes(os.urandom(60_000))
    return path


def md5(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


def run_update(port, image, runtime, *extra, timeout=60):
    cmd = [sys.executable, "-m", "qfota_tools.cli", "update", "--runtime", runtime, "--port", port]
    if image is not None:
        cmd += ["--image", str(image)]
    cmd += sim_model.wait_args(sim_model.FILE_WAITS)  # short: FAST answers in ms
    cmd += list(extra)
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    proc.seconds = time.monotonic() - t0
    proc.last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    return proc


def simulate(image=None, faults=(), baud=921_600, expect=True, **kw):
    m = sim_model.Modem(
        expect_md5=md5(image) if (image is not None and expect) else None,
        faults=faults,
        baud=baud,
        timing=sim_model.FAST,
        seed=kw.pop("seed", 3),
        **kw,
    )
    return m, PtySimulator(m)


def fotadl_sent(m):
    return any(c.upper().startswith('AT+QFOTADL="') for c in m.commands)


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize(
    "args",
    [
        ("--flow", "hw", "--mode", "1", "--download-urcs", "50"),
        ("--flow", "hw", "--mode", "0", "--update-urcs", "10"),
        ("--flow", "none", "--download-urcs", "5"),
        ("--flow", "hw", "--usb", "--download-urcs", "0", "--update-urcs", "0"),
    ],
    ids=["hw-mode1", "hw-mode0", "none-paced", "usb-no-urcs"],
)
def test_happy(runtime, args, image):
    # Without flow control the simulated module drains its receive buffer at 15 KiB/s in
    # its own time, which stops while a loaded machine does not run the simulator's
    # thread: what the pty held meanwhile then arrives at once. 16 KiB (a second of the
    # note's rate) rides out such pauses; the default 1 KiB overflowed at 70 ms.
    # test_no_flow_control_too_fast_overflows keeps the default.
    m, sim = simulate(image, rx_buffer=16384 if "none" in args else 1024)
    with sim:
        proc = run_update(sim.path, image, runtime, *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.last.startswith("qfota: done: EC200TCNDAR02A07M16"), proc.stdout
    assert "EC200TCNDAR02A08M16" in proc.last
    assert "revision before: EC200TCNDAR02A07M16" in proc.stdout
    assert m.received_md5 == md5(image) and m.outcome == "END 0"
    assert m.image_bytes_before_filestart == 0
    assert m.overflow_bytes == 0
    mode = args[args.index("--mode") + 1] if "--mode" in args else "1"
    assert m.fotadl["mode"] == int(mode), m.fotadl
    if "--usb" in args:
        assert 'AT+QCFG="usbifc",2,2' in m.commands
    elif "none" in args:
        assert "AT+IFC=0,0" in m.commands
    else:
        assert "AT+IFC=2,2" in m.commands


# The faults an update fails on, and how: from the simulator's own rows (model.FAULTS).
FAULTS = [f for f in sim_model.FAULT_NAMES if sim_model.fault_outcome(f)]
SURVIVED = [f for f in sim_model.FAULT_NAMES if not sim_model.fault_outcome(f)]


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_fault(runtime, fault, image):
    stages, code, status, text = sim_model.fault_outcome(fault)
    m, sim = simulate(image, faults=(fault,))
    with sim:
        proc = run_update(sim.path, image, runtime, "--download-urcs", "10")
    assert proc.returncode == status, proc.stdout + proc.stderr
    assert any(proc.last.startswith("qfota: failed: %s: " % s) for s in stages), proc.stdout
    if code is not None:
        assert ": %d: " % code in proc.last, proc.last
    assert text in proc.last, proc.last
    assert proc.seconds < 30, proc.seconds


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("fault", SURVIVED)
def test_survivable_faults(runtime, fault, image):
    m, sim = simulate(image, faults=(fault,))
    with sim:
        proc = run_update(sim.path, image, runtime, "--download-urcs", "20")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert m.received_md5 == md5(image) and m.outcome == "END 0"
    if fault == "no-qgmr":
        assert "revision after: EC200TCNDAR02A08M16" in proc.stdout


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_wrong_package_md5(runtime, image, tmp_path):
    other = tmp_path / "other.bin"
    other.write_bytes(image.read_bytes()[::-1])
    m, sim = simulate(other)  # the simulator expects another package: END 506
    with sim:
        proc = run_update(sim.path, image, runtime)
    assert proc.returncode == 3, proc.stdout
    assert proc.last == "qfota: failed: END: 506: FOTA firmware MD5 check error", proc.last


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_no_flow_control_too_fast_overflows(runtime, image):
    # Faster than the module's 15 KB/s without flow control: it loses bytes, FILEEND 500.
    m, sim = simulate(image)
    with sim:
        proc = run_update(
            sim.path,
            image,
            runtime,
            "--flow",
            "none",
            "--rate",
            "200000",
            "--rate-above-note-limit",
        )
    assert proc.returncode == 3, proc.stdout
    assert proc.last == "qfota: failed: FILEEND: 500: File download error", proc.last
    assert m.overflow_bytes > 0


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize(
    "args,why",
    [
        (("--image", "/nonexistent/EC200T.bin"), "image not found"),
        (("--mode", "2"), "upgrade_mode must be 0 or 1"),
        (("--download-urcs", "4"), "download_URC_max must be 0 or 5-100"),
        (("--update-urcs", "101"), "update_URC_max must be 0 or 5-100"),
        (("--url", "ftp://u:hunter2@h/dir/x.bin"), "at the server's root"),
    ],
    ids=["missing-image", "mode", "download-urcs", "update-urcs", "ftp-folder"],
)
def test_refused_before_anything_is_sent(runtime, args, why, image):
    m, sim = simulate(image)
    with sim:
        use_image = None if "--image" in args or "--url" in args else image
        proc = run_update(sim.path, use_image, runtime, *args, timeout=20)
        time.sleep(0.05)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.last.startswith("qfota: failed: PARAMS: "), proc.last
    assert why in proc.last
    assert "hunter2" not in proc.stdout + proc.stderr
    assert sim.bytes_in == 0, "bytes reached the modem: %r" % m.commands


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_empty_image_refused(runtime, tmp_path):
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    m, sim = simulate()
    with sim:
        proc = run_update(sim.path, empty, runtime, timeout=20)
    assert proc.returncode == 2 and "image is empty" in proc.last, proc.stdout
    assert sim.bytes_in == 0


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_protocol_download_mode_refused_clearly(runtime, image):
    m, sim = simulate(image)
    with sim:
        proc = run_update(sim.path, image, runtime, "--protocol-download")
    # Refused before anything is sent (its help says so): exit 2, nothing reached the modem.
    assert proc.returncode == 2, proc.stdout
    assert "protocol-download" in proc.last and "not supported" in proc.last, proc.last
    assert m.received == bytearray() or len(m.received) == 0
    assert m.history == [], m.history


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_silent_port(runtime, image):
    # Nothing answers at all: bounded by the probe wait.
    m, sim = simulate(image, faults=())
    with sim:
        sim.inspect(lambda mm: mm.go_silent())
        proc = run_update(sim.path, image, runtime, timeout=30)
    assert proc.returncode == 4, proc.stdout
    assert (
        proc.last == "qfota: failed: PREFLIGHT: timeout after 3 s: the modem did not answer AT"
    ), proc.last


def test_whole_update_in_a_small_heap_with_the_stream_under_heap_lock(image):
    # The engine compiled by mpy-cross (as on an MCU), the CLI's default chunk, a small
    # MicroPython heap, the streaming loop under heap_lock(): the update must complete.
    # The MicroPython process holds the engine and its port (qfota.relay); the CLI around
    # it runs here. 64K: the live high-water is about 56.5 KB of its 64.8 KB (README,
    # "Memory"); at 62.4 KB, fragmentation failed about one run in nine.
    m, sim = simulate(image)
    with sim:
        proc = run_update(
            sim.path,
            image,
            "micropython",
            "--mpy",
            "--heapsize",
            "64K",
            "--lock-heap",
            "--mem",
            "--download-urcs",
            "50",
        )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert m.received_md5 == md5(image)
    peak = re.search(r"heap: live high-water (\d+) bytes .* of (\d+)", proc.stdout)
    assert peak and 0 < int(peak.group(1)) < int(peak.group(2)) <= 65536, proc.stdout


def test_no_room_for_the_package_buffer_stops_before_the_transfer(image):
    # A chunk the 64K heap cannot hold: the package buffer is made before the port is
    # read, so the update stops there, says why, and the modem got nothing.
    m, sim = simulate(image)
    with sim:
        proc = run_update(
            sim.path, image, "micropython", "--mpy", "--heapsize", "64K", "--chunk", "32768"
        )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.last.startswith(
        "qfota: failed: MEMORY: no room for the 32768-byte package buffer"
    ), proc.last
    assert "nothing was sent" in proc.last
    assert m.commands == [] and len(m.received) == 0, m.commands
