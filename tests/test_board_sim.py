"""The simulated board (``qfota board-sim``) driven by the real mpremote."""

import os
import subprocess
import sys
import time

import pytest

from qfota_tools.simulators.board_sim import BoardSim, mpremote, startup_code

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def board(tmp_path):
    sim = BoardSim(tmp_path / "board")
    dev = sim.start()
    yield sim, dev
    sim.stop()


def test_fs_and_exec(board, tmp_path):
    sim, dev = board
    src = tmp_path / "hello.txt"
    src.write_bytes(b"hello board\n")
    out = mpremote(dev, "fs", "cp", str(src), ":sd/hello.txt", "+", "fs", "ls", ":sd").stdout
    assert "hello.txt" in out
    assert (tmp_path / "board" / "sd" / "hello.txt").read_bytes() == b"hello board\n"
    out = mpremote(dev, "exec", "import os; print(sorted(os.listdir('/')), os.getcwd())").stdout
    assert out.strip() == "['dev', 'sd'] /"


def test_soft_reset_survived(board):
    sim, dev = board
    mpremote(dev, "resume", "exec", "a = 41")
    assert mpremote(dev, "resume", "exec", "print(a + 1)").stdout.strip() == "42"
    before = sim.resets
    out = mpremote(dev, "soft-reset", "resume", "exec", "print('a' in globals())").stdout
    assert out.strip() == "False"  # a fresh interpreter...
    deadline = time.monotonic() + 5
    while sim.resets <= before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sim.resets > before
    # ... and every plain mpremote command soft-resets first: still alive afterwards.
    for _ in range(3):
        assert mpremote(dev, "exec", "print(6 * 7)").stdout.strip() == "42"


def test_ctrl_c_interrupts_running_code(board):
    _sim, dev = board
    mpremote(dev, "exec", "--no-follow", "import time\nwhile True: time.sleep_ms(10)")
    t0 = time.monotonic()
    assert mpremote(dev, "exec", "print('back')").stdout.strip() == "back"
    assert time.monotonic() - t0 < 10


def test_host_ttys_reachable(board):
    _sim, dev = board
    code = "f = open('/dev/null', 'r+b'); print(f.write(b'x')); f.close()"
    assert mpremote(dev, "exec", code).stdout.strip() == "1"
    code = "import os\ntry:\n os.remove('/dev/null')\nexcept OSError as e:\n print(e.errno)"
    assert mpremote(dev, "exec", code).stdout.strip() == "1"  # EPERM: host /dev is safe
    assert os.path.exists("/dev/null")
    assert mpremote(dev, "exec", "open('/dev/qfota-new', 'w')", check=False).returncode != 0
    assert not os.path.exists("/dev/qfota-new")


def test_rename_with_absolute_paths(board, tmp_path):
    _sim, dev = board
    code = "import os\nopen('/sd/a', 'w').write('x')\nos.rename('/sd/a', '/sd/b')"
    mpremote(dev, "exec", code)
    assert os.listdir(tmp_path / "board" / "sd") == ["b"]


def test_free_bytes_override(tmp_path):
    with BoardSim(tmp_path / "full", free_bytes=123_456) as dev:
        out = mpremote(dev, "exec", "import os\ns = os.statvfs('/sd')\nprint(s[0], s[4])")
    bsize, bavail = map(int, out.stdout.split())
    assert bavail == 123_456 // bsize


def test_boot_py_runs_and_main_py_on_request(tmp_path):
    root = tmp_path / "b"
    root.mkdir()
    (root / "boot.py").write_text("booted = 1\n")
    (root / "main.py").write_text("ran_main = 1\n")
    probe = "print('booted' in globals(), 'ran_main' in globals())"
    with BoardSim(root) as dev:
        assert mpremote(dev, "resume", "exec", probe).stdout.split() == ["True", "False"]
    with BoardSim(root, run_main=True) as dev:
        # Powered up in the friendly REPL: main.py ran; a raw-REPL soft reset skips it.
        assert mpremote(dev, "resume", "exec", probe).stdout.split() == ["True", "True"]
        assert mpremote(dev, "exec", probe).stdout.split() == ["True", "False"]
    assert "_run('main.py')" not in startup_code(root)


def test_main_py_exit_leaves_the_board_at_its_repl(tmp_path):
    # firmware/main.py ends with sys.exit(status) on linux; a board just goes on.
    root = tmp_path / "b"
    root.mkdir()
    (root / "main.py").write_text("import sys\nran_main = 1\nsys.exit(3)\n")
    sim = BoardSim(root, run_main=True)
    with sim as dev:
        out = mpremote(dev, "resume", "exec", "print('ran_main' in globals())")
        assert out.stdout.split() == ["True"]
        assert "SystemExit" not in "".join(sim.log) + out.stdout + out.stderr
        assert sim.resets == 0


def test_cli_prints_device_and_link(tmp_path):
    link = tmp_path / "board-link"
    argv = [sys.executable, "-m", "qfota_tools.cli", "board-sim", "--root", str(tmp_path / "r")]
    proc = subprocess.Popen(argv + ["--link", str(link)], stdout=subprocess.PIPE, text=True)
    try:
        dev = proc.stdout.readline().strip()
        assert dev.startswith("/dev/pts/")
        assert os.path.realpath(link) == dev
        assert mpremote(str(link), "exec", "print(1 + 1)").stdout.strip() == "2"
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
        proc.stdout.close()
    assert not os.path.lexists(link)


def test_help():
    out = subprocess.run(
        [sys.executable, "-m", "qfota_tools.cli", "board-sim", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0 and "--free-bytes" in out.stdout
