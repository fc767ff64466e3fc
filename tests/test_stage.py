"""``qfota stage`` against the simulated board: copy, manifest, resume, room, hash."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from cli_rig import run as qfota

from qfota_tools.commands import stage
from qfota_tools.simulators.board_sim import BoardSim, mpremote
from qfota_tools.transport import remote

pytestmark = pytest.mark.timeout(120)

SIZE = 200_000
REVS = ("--source-rev", "R1", "--target-rev", "R2")


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "ec200.bin"
    path.write_bytes(os.urandom(SIZE))
    return path


def test_stage_copies_image_and_manifest(board, image):
    root, dev = board
    proc = qfota("stage", str(image), "--device", dev, "--source-rev", "R1", "--target-rev", "R2")
    assert proc.returncode == 0, proc.stderr
    assert "verified on the device" in proc.stdout
    assert "via repl)" in proc.stdout  # auto: the unix port has no machine.USBDevice
    data = image.read_bytes()
    fota = root / "sd" / "fota"
    assert (fota / "ec200.bin").read_bytes() == data
    assert sorted(os.listdir(fota)) == ["ec200.bin", "ec200.bin.json"]
    man = json.loads((fota / "ec200.bin.json").read_text())
    assert man == {
        "file": "ec200.bin",
        "length": SIZE,
        "sha256": hashlib.sha256(data).hexdigest(),
        "md5": hashlib.md5(data).hexdigest(),
        "source_revision": "R1",
        "target_revision": "R2",
    }
    # The board itself reads the manifest and agrees with the hash.
    code = (
        "import json, hashlib, binascii\n"
        "m = json.load(open('/sd/fota/ec200.bin.json'))\n"
        "h = hashlib.sha256(open('/sd/fota/' + m['file'], 'rb').read())\n"
        "print(binascii.hexlify(h.digest()).decode() == m['sha256'])"
    )
    assert mpremote(dev, "exec", code).stdout.strip() == "True"
    again = qfota("stage", str(image), "--device", dev, "--source-rev", "R1", "--target-rev", "R2")
    assert again.returncode == 0 and "already on the board" in again.stdout


def test_stage_to_flash_folder(board, image):
    root, dev = board
    assert (
        qfota(
            "stage",
            str(image),
            "--device",
            dev,
            "--to",
            ":/fw",
            "--source-rev",
            "R1",
            "--target-rev",
            "R2",
        ).returncode
        == 0
    )
    assert (root / "fw" / "ec200.bin").read_bytes() == image.read_bytes()
    assert json.loads((root / "fw" / "ec200.bin.json").read_text())["source_revision"] == "R1"


def test_resume_after_interrupted_copy(board, image):
    root, dev = board
    part = root / "sd" / "fota" / "ec200.bin.part"

    class Stop(Exception):
        pass

    def stop_after_5(done, total):
        if done >= 5 * 4096:
            raise Stop

    t = remote.connect(dev)
    try:
        with pytest.raises(Stop):
            stage.stage(t, str(image), chunk=4096, progress=stop_after_5)
    finally:
        remote.close(t)
    # Complete frames only: the 5 acknowledged and at most the WINDOW - 1 then in flight.
    kept = part.stat().st_size
    assert kept % 4096 == 0 and 5 * 4096 <= kept <= (5 + stage.WINDOW - 1) * 4096
    assert not (root / "sd" / "fota" / "ec200.bin.json").exists()

    t = remote.connect(dev)
    try:
        res = stage.stage(t, str(image), chunk=4096)
    finally:
        remote.close(t)
    assert res.resumed_from == kept
    assert res.sent == SIZE - kept  # appended, not restarted
    assert (root / "sd" / "fota" / "ec200.bin").read_bytes() == image.read_bytes()
    assert not part.exists()


def test_resume_after_killed_process(board, tmp_path):
    root, dev = board
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(2 << 20))
    part = root / "sd" / "fota" / "big.bin.part"
    argv = [sys.executable, "-m", "qfota_tools.cli", "stage", str(big), "--device", dev, *REVS]
    proc = subprocess.Popen(argv + ["--chunk", "256"], stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if part.exists() and part.stat().st_size >= 256 * 1024:
            break
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    proc.stdout.close()
    killed_at = part.stat().st_size
    assert 0 < killed_at < big.stat().st_size

    again = qfota("stage", str(big), "--device", dev, "--source-rev", "R1", "--target-rev", "R2")
    assert again.returncode == 0, again.stderr
    resumed = int(again.stdout.split("resumed at ")[1].split(")")[0])
    assert resumed >= killed_at - 256  # at most the frame in flight is redone
    assert (root / "sd" / "fota" / "big.bin").read_bytes() == big.read_bytes()


# Device code: open() in append mode gives a file whose 4th write fails (a full card).
FAILING_OPEN = """
_real_open = open
class _Failing:
    def __init__(self, f):
        self.f, self.n = f, 0
    def write(self, d):
        self.n += 1
        if self.n > 3:
            raise OSError(28)
        return self.f.write(d)
    def __enter__(self):
        return self
    def __exit__(self, *a):
        self.f.close()
def open(p, m='r'):
    f = _real_open(p, m)
    return _Failing(f) if 'a' in m else f
"""


def test_write_error_mid_copy(board, image):
    """A write that fails with frames in flight: the receiver drains them, the error comes
    back as one line and the raw REPL is clean for the next command."""
    root, dev = board
    t = remote.connect(dev)
    try:
        remote.run(t, FAILING_OPEN)
        with pytest.raises(stage.StageError, match="on the device: OSError.*28"):
            stage.stage(t, str(image), chunk=4096)
        assert remote.call(t, "6 * 7") == 42
    finally:
        remote.close(t)
    assert (root / "sd" / "fota" / "ec200.bin.part").stat().st_size == 3 * 4096
    assert not (root / "sd" / "fota" / "ec200.bin.json").exists()


def test_part_of_another_image_starts_over(board, image):
    root, dev = board
    fota = root / "sd" / "fota"
    fota.mkdir(parents=True)
    (fota / "ec200.bin.part").write_bytes(b"not this image" * 100)
    t = remote.connect(dev)
    try:
        res = stage.stage(t, str(image))
    finally:
        remote.close(t)
    assert (res.resumed_from, res.sent) == (0, SIZE)
    assert (fota / "ec200.bin").read_bytes() == image.read_bytes()


def test_full_board_refused_before_copying(tmp_path, image):
    root = tmp_path / "full"
    with BoardSim(root, free_bytes=100_000) as dev:
        proc = qfota(
            "stage", str(image), "--device", dev, "--source-rev", "R1", "--target-rev", "R2"
        )
    assert proc.returncode == 1
    assert "lacks room" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (root / "sd" / "fota").exists()  # nothing touched


def test_wrong_hash_detected(board, image):
    root, dev = board
    part = root / "sd" / "fota" / "ec200.bin.part"

    def corrupt():
        data = bytearray(part.read_bytes())
        data[1000] ^= 0xFF
        part.write_bytes(bytes(data))

    t = remote.connect(dev)
    try:
        with pytest.raises(stage.StageError, match="sha256 mismatch on the device"):
            stage.stage(t, str(image), after_copy=corrupt)
    finally:
        remote.close(t)
    assert os.listdir(root / "sd" / "fota") == []  # no image, no manifest, no part


def _refused(proc, *words):
    """Exit 2, one line naming the problem, no traceback."""
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("qfota stage: ") and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr
    for w in words:
        assert w in proc.stderr, proc.stderr


def test_device_that_cannot_be_opened(tmp_path, image):
    proc = qfota("stage", str(image), "--device", str(tmp_path / "no-such-port"), *REVS)
    _refused(proc, "cannot open the board", "no-such-port")


def test_a_port_with_no_board_behind_it_is_refused_within_a_bound():
    """A pty nobody answers (a board that never saw the Ctrl-C): connect gives up after
    its two bounded tries (mpremote alone read the pty without a bound: it hung)."""
    from qfota_tools.transport import remote

    master, slave = os.openpty()
    t0 = time.monotonic()
    try:
        with pytest.raises(remote.RemoteError, match="no MicroPython raw REPL"):
            remote.connect(os.ttyname(slave))
    finally:
        os.close(master)
        os.close(slave)
    assert time.monotonic() - t0 < 4 * remote.LINK_TIMEOUT + 10


def test_missing_image_refused(tmp_path):
    proc = qfota("stage", str(tmp_path / "missing.bin"), "--device", "/dev/null", *REVS)
    _refused(proc, "no such file")


def test_empty_image_refused(tmp_path):
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    # /dev/null is no board: the refusal must come before anything is opened
    _refused(qfota("stage", str(empty), "--device", "/dev/null", *REVS), "empty")


def test_board_path_needs_colon(image):
    proc = qfota("stage", str(image), "--device", "/dev/null", "--to", "/sd/fota", *REVS)
    _refused(proc, "--to", "':'")


@pytest.mark.parametrize("drop", ["--source-rev", "--target-rev"])
def test_revisions_required(image, drop):
    revs = {"--source-rev": "R1", "--target-rev": "R2"}
    del revs[drop]
    args = [x for kv in revs.items() for x in kv]
    proc = qfota("stage", str(image), "--device", "/dev/null", *args)
    _refused(proc, "--source-rev and --target-rev are required")


def test_small_device_heap(tmp_path, image):
    """The receiver and the hashing fit a microcontroller-sized heap."""
    root = tmp_path / "small"
    with BoardSim(root, heapsize="96K") as dev:
        proc = qfota(
            "stage", str(image), "--device", dev, "--source-rev", "R1", "--target-rev", "R2"
        )
    assert proc.returncode == 0, proc.stderr
    assert (root / "sd" / "fota" / "ec200.bin").read_bytes() == image.read_bytes()


def test_via_usb_refused_on_a_board_without_runtime_usb(board, image):
    root, dev = board
    proc = qfota("stage", str(image), "--device", dev, "--via", "usb", *REVS)
    assert proc.returncode == 1, proc.stderr
    assert "--via usb" in proc.stderr and "machine.USBDevice" in proc.stderr, proc.stderr
    assert "use --via repl" in proc.stderr and "Traceback" not in proc.stderr
    assert not (root / "sd" / "fota").exists()  # refused before anything changed


def test_bad_via_refused(image):
    proc = qfota("stage", str(image), "--device", "/dev/null", "--via", "wifi", *REVS)
    assert proc.returncode == 2 and "--via" in proc.stderr and "wifi" in proc.stderr


def test_help():
    proc = qfota("stage", "--help")
    assert proc.returncode == 0 and "--source-rev" in proc.stdout


def test_frames_escape_ctrl_c(board, tmp_path):
    root, dev = board
    nasty = tmp_path / "nasty.bin"
    data = (b"\x03\x1b#;\x1b;\x1b#\x03\x03\x1b\x1b\x04\x02\x01\r\n" * 3000)[:40_000] + b"\x1b"
    nasty.write_bytes(data)
    assert all(b"\x03" not in stage.frame(data[i : i + 999]) for i in range(0, len(data), 999))
    proc = qfota(
        "stage",
        str(nasty),
        "--device",
        dev,
        "--chunk",
        "999",
        "--source-rev",
        "R1",
        "--target-rev",
        "R2",
    )
    assert proc.returncode == 0, proc.stderr
    assert (root / "sd" / "fota" / "nasty.bin").read_bytes() == data
