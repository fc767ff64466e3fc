"""qfota on the real MicroPython stm32 port, on an emulated STM32F405 (``qfota stm32-sim``:
QEMU's netduinoplus2).

The real mpremote deploys and stages over the board's REPL (USART1); the board's own
``main.py`` runs the application after a soft reset, which updates the EC200 model over
``machine.UART(2)``. QEMU models no CTS: flow hw streams without holds. The filesystem is
64 KiB of RAM: every test deploys afresh. With ``CI=true`` a missing QEMU or firmware fails
the run; elsewhere these tests are skipped.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from stm32_rig import (
    IMAGE,
    NEW_REV,
    OLD_REV,
    ROOT,
    cli,
    find_firmware,
    image,
    modem,
    mpremote,
    read_console,
    read_fd,
    run_main,
)

from qfota_tools.simulators import stm32

pytestmark = pytest.mark.timeout(300)

try:
    FW = find_firmware()
except stm32.Stm32Error as exc:
    if os.environ.get("CI") == "true":
        pytest.fail("emulated STM32F405: %s" % exc, pytrace=False)
    pytest.skip("emulated STM32F405: %s" % exc, allow_module_level=True)

REVS = ("--source-rev", OLD_REV, "--target-rev", NEW_REV)


def deploy(repl):
    proc = cli("deploy", "--board", "stm32", "--mpy", "--device", repl, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def stage(repl, img):
    proc = cli("stage", str(img), "--device", repl, "--to", ":/fota", *REVS, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "sha256 verified on the device" in proc.stdout and "via repl" in proc.stdout
    return proc.stdout


def board_exec(repl, code):
    proc = mpremote(repl, "exec", code)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return proc.stdout


def journal(repl):
    return json.loads(board_exec(repl, "print(open('/qfota_journal.json').read())"))


@pytest.fixture
def board(tmp_path):
    """(sim, modem, image path): the engine deployed, an image staged, the modem expecting it."""
    made = []

    def make(size=IMAGE, faults=(), flow=None):
        img, md5 = image(tmp_path, size)
        m = modem(md5, faults)
        sim = stm32.Stm32Sim(FW, modem=m)
        made.append(sim)
        sim.start()
        deploy(sim.repl_path)
        stage(sim.repl_path, img)
        if flow:
            cfg = tmp_path / "qfota.cfg"
            cfg.write_text(json.dumps({"flow": flow}))
            assert mpremote(sim.repl_path, "fs", "cp", str(cfg), ":/fota/qfota.cfg").returncode == 0
        return sim, m, img

    yield make
    for sim in made:
        sim.stop()
        assert not sim.running


def test_deploy_footprint_matches_the_board(tmp_path):
    """What deploy says it put on the board is what the board lists; only what the stm32
    app runs (no URL package, no unix modules), as .mpy without line numbers."""
    with stm32.Stm32Sim(FW) as sim:
        out = deploy(sim.repl_path)
        report = out.splitlines()[-1]
        m = re.match(
            r"on the board: (\d+) files, ([\d,]+) bytes \(qfota/ (\d+) files ([\d,]+), "
            r"board.mpy ([\d,]+), main.py ([\d,]+)\); free ([\d,]+) of ([\d,]+) bytes$",
            report,
        )
        assert m, report
        files, total, nq, qbytes, board_b, main_b, free, size = (
            int(g.replace(",", "")) for g in m.groups()
        )
        listing = json.loads(
            board_exec(
                sim.repl_path,
                "import os,json\n"
                "q={n: os.stat('/qfota/'+n)[6] for n in os.listdir('/qfota')}\n"
                "t={n: os.stat('/'+n)[6] for n in os.listdir('/') if n != 'qfota'}\n"
                "s=os.statvfs('/')\n"
                "print(json.dumps([q, t, s[0]*s[3], s[0]*s[2]]))",
            )
        )
        q, top, bfree, btotal = listing
        assert sorted(top) == ["board.mpy", "main.py"]
        assert (board_b, main_b) == (top["board.mpy"], top["main.py"])
        assert (nq, qbytes) == (len(q), sum(q.values()))
        assert (files, total) == (len(q) + 2, sum(q.values()) + sum(top.values()))
        assert (free, size) == (bfree, btotal)
        host_only = {"urls.mpy", "tty.mpy", "runner.mpy", "info.mpy", "relay.mpy"}
        assert not host_only & set(q), q
        assert all(n.endswith(".mpy") for n in q)
        # The dry run plans the same files and bytes, with no board.
        dry = cli("deploy", "--board", "stm32", "--mpy", "--dry-run")
        assert dry.returncode == 0, dry.stderr
        planned = dry.stdout.split(" gets ")[1].strip()
        assert planned == report.split("on the board: ")[1].split(";")[0]
        # A 16 KB image does not fit beside the engine: refused before anything is copied.
        big, _md5 = image(tmp_path, 16384, name="big.bin")
        proc = cli("stage", str(big), "--device", sim.repl_path, "--to", ":/fota", *REVS)
        assert proc.returncode != 0 and "lacks room" in proc.stderr, proc.stderr + proc.stdout
        # The room left holds an image of IMAGE bytes, its manifest and the app's journal.
        img, _md5 = image(tmp_path)
        stage(sim.repl_path, img)
        left = json.loads(board_exec(sim.repl_path, "import os;s=os.statvfs('/');print(s[0]*s[3])"))
        # The journal and its temporary copy need two blocks more.
        assert left >= 1024, (
            "the deployed engine (%s) leaves %d bytes after a %d-byte image: "
            "stm32_rig.IMAGE no longer fits the emulated 64 KiB filesystem" % (report, left, IMAGE)
        )


def test_app_updates_modem_over_uart2_flow_hw(board):
    sim, m, _img = board()
    text = run_main(sim.repl_path, b"qfota: done", 120)
    assert "qfota: done" in text, text
    with sim.lock:
        assert m.revision == NEW_REV and m.updates_completed == 1 and m.md5_ok
        assert "AT+IFC=2,2" in m.commands and m.overflow_bytes == 0
    # QEMU has no CTS: nothing held the board's writer, which streamed unpaced: from the
    # modem's FILESTART to the package's last byte took less than half of what flow
    # none's pacing needs at least ((IMAGE - 128) / 14872 s: see the next test).
    start = next(t for t, data in sim.said if b"FILESTART" in data)
    span = sim.package[-1][0] - start
    assert sim.package[-1][1] == IMAGE, sim.package[-3:]
    assert span < (IMAGE - 128) / 14872 / 2, (span, sim.package[:5])
    assert journal(sim.repl_path)["state"] == "done"


def test_app_updates_modem_over_uart2_flow_none(board):
    sim, m, _img = board(flow="none")
    text = run_main(sim.repl_path, b"qfota: done", 120)
    assert "qfota: done" in text, text
    with sim.lock:
        assert m.revision == NEW_REV and m.updates_completed == 1 and m.md5_ok
        # Paced: the modem's 1 KiB buffer, drained at 15 KiB/s, lost nothing, though the
        # board's UART writes at QEMU's speed (over 100 KB/s in the flow hw test).
        assert "AT+IFC=2,2" not in m.commands and m.overflow_bytes == 0
        package = [(t, k) for t, k in sim.package if k]  # from the first package byte
    # Measured at the simulator: when the modem's count of package bytes grew. The
    # driver's bucket (4 pieces of 32 bytes, refilled at 15000 - 128 B/s) gives the first
    # 128 bytes at once, then at most 14872 B/s, so the stream lasts at least that long
    # (the relay's reads can only come later than the board's writes, and the bytes of
    # the first read are not counted). That bounds the average rate; the 1-s windows and
    # the 32-byte pieces are below what reads of a pty can resolve (bench/run.py figure 3
    # measures them in-process).
    span = package[-1][0] - package[0][0]
    assert package[-1][1] == IMAGE, package[-3:]
    assert span >= (IMAGE - 128 - package[0][1]) / 15000, (span, package[:5])


def test_a_failed_upgrade_is_journaled_and_reported(board):
    sim, m, _img = board(faults=("end-506",))
    text = run_main(sim.repl_path, b"MD5 check error", 120)  # the whole failure line
    assert "END: 506" in text and "MD5" in text, text
    j = journal(sim.repl_path)
    assert j["state"] == "failed" and j["code"] == 506, j
    with sim.lock:
        assert m.revision == OLD_REV and m.updates_completed == 0


def test_soft_reset_mid_transfer_resumes_from_journal(board):
    """Ctrl-C when a quarter of the package reached the modem, then a soft reset (the RAM
    filesystem and its journal survive it): main.py follows the cut transfer to its end,
    then updates afresh."""
    sim, m, _img = board(flow="none")
    repl = sim.repl_path
    sim.type_at(IMAGE // 4, b"\x03")
    text = run_main(repl, b"interrupted: the modem may still be inside the FILE transfer", 60)
    assert "failed: STREAM: interrupted" in text, text
    with sim.lock:
        cut = m.package_bytes
        assert IMAGE // 4 <= cut < IMAGE and m.updates_completed == 0, cut
    fd = os.open(repl, os.O_RDWR | os.O_NOCTTY)
    try:
        os.write(fd, b"\x04")  # at the REPL's prompt: a soft reset, main.py runs again
    finally:
        os.close(fd)
    text = read_console(repl, b"qfota: done", 120)
    assert "qfota: done" in text and "resuming" in text, text
    with sim.lock:
        assert m.revision == NEW_REV and m.updates_completed == 1 and m.md5_ok, m.history
        starts = [i for i, h in enumerate(m.history) if h.startswith("FILESTART")]
        assert len(starts) == 2, m.history
        # The half-sent transfer ended on the modem (a quiet line: FILEEND with an error)
        # before the board began the next one.
        assert any(h.startswith("FILEEND") and h != "FILEEND 0" for h in m.history[: starts[1]])
    assert journal(repl)["state"] == "done"


def test_readme_product_snippet_runs_on_the_board(board):
    """The README's "In the product" snippet, exactly as written, run on the board."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## In the product (MicroPython)")[1]
    snippet = section.split("```python\n")[1].split("```")[0]
    sim, m, img = board()
    repl = sim.repl_path
    board_exec(repl, "import os; os.rename('/fota/ec200.bin', '/fota/EC200T.bin')")
    proc = mpremote(repl, "exec", snippet, timeout=120)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert proc.stdout.split()[-2:] == ["updated", NEW_REV], proc.stdout
    with sim.lock:
        assert m.revision == NEW_REV and m.updates_completed == 1 and m.md5_ok


def _children(pid):
    kids = []
    for task in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/children" % (pid, task)) as f:
            kids += [int(k) for k in f.read().split()]
    return kids


def _alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def _wait_gone(pid, timeout):
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not _alive(pid)


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_the_command_serves_both_ptys_and_leaves_no_qemu(tmp_path, how):
    """``qfota stm32-sim``: the REPL's pty answers mpremote, UART(2)'s pty carries what the
    board writes; SIGTERM stops it cleanly, and QEMU dies with it even after a SIGKILL."""
    link = tmp_path / "repl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "qfota_tools.cli", "stm32-sim", "--firmware", FW,
         "--link-repl", str(link)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(ROOT),
    )  # fmt: skip
    qemu = None
    try:
        repl = proc.stdout.readline().split()
        uart = proc.stdout.readline().split()
        assert repl[0] == "repl:" and uart[0] == "uart2:", (repl, uart)
        assert os.path.realpath(link) == repl[1]
        (qemu,) = _children(proc.pid)
        fd = os.open(uart[1], os.O_RDWR | os.O_NOCTTY)
        try:
            code = "from machine import UART; u = UART(2, 115200); u.write(b'from the board')"
            assert mpremote(str(link), "exec", code).returncode == 0
            got = read_fd(fd, b"from the board", 20)
        finally:
            os.close(fd)
        assert b"from the board" in got, got
        proc.send_signal(signal.SIGTERM if how == "sigterm" else signal.SIGKILL)
        proc.wait(30)
        assert _wait_gone(qemu, 10), "QEMU outlived qfota stm32-sim (%s)" % how
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        if qemu and _alive(qemu):  # the test failed: leave nothing behind all the same
            os.kill(qemu, signal.SIGKILL)
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == (0 if how == "sigterm" else -signal.SIGKILL)
