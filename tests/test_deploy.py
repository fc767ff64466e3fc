"""``qfota deploy``, package.json and the .mpy build, against the simulated board."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from qfota_tools.commands import deploy
from qfota_tools.devtools import build_mpy, build_package
from qfota_tools.simulators.board_sim import BoardSim, mpremote

pytestmark = pytest.mark.timeout(120)

REPO = build_package.REPO
ENGINE = sorted(p.name for p in (REPO / "firmware" / "qfota").glob("*.py"))


@pytest.fixture
def board(tmp_path):
    root = tmp_path / "board"
    sim = BoardSim(root)
    dev = sim.start()
    yield root, dev
    sim.stop()


def qfota(*args, timeout=120):
    return subprocess.run(
        [sys.executable, "-m", "qfota_tools.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def snapshot(root):
    """{relative path: sha256} of every file on the simulated board."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(Path(root).rglob("*"))
        if p.is_file()
    }


def test_package_json_is_fresh():
    assert (REPO / "package.json").read_text() == build_package.render(), (
        "package.json is stale: run python -m qfota_tools.devtools.build_package"
    )


def test_package_json_lists_the_engine():
    urls = dict(build_package.urls())
    assert sorted(urls) == sorted(
        ["qfota/" + n for n in ENGINE] + (["main.py"] if "main.py" in urls else [])
    )
    assert all((REPO / local).is_file() for local in urls.values())


def test_mip_install_of_package_json(board):
    root, dev = board
    mpremote(dev, "mip", "install", str(REPO / "package.json"))
    listed = json.loads((REPO / "package.json").read_text())["urls"]
    assert sorted("qfota/" + p.name for p in (root / "lib" / "qfota").iterdir()) == sorted(
        dev for dev, _local in listed if dev.startswith("qfota/")
    )
    out = mpremote(dev, "exec", "import qfota.errors; print(qfota.errors.__file__)").stdout
    assert out.strip() == "/lib/qfota/errors.py"


def test_deploy_twice(board):
    root, dev = board
    first = qfota("deploy", "--board", "unix", "--device", dev)
    assert first.returncode == 0, first.stderr
    assert "installed" in first.stdout
    files = snapshot(root)
    assert files["board.py"] == hashlib.sha256((REPO / "boards/unix.py").read_bytes()).hexdigest()
    assert sorted(k for k in files if k.startswith("qfota/")) == ["qfota/" + n for n in ENGINE]
    second = qfota("deploy", "--board", "unix", "--device", dev)
    assert second.returncode == 0, second.stderr
    assert second.stdout.startswith("up to date")
    assert snapshot(root) == files
    out = mpremote(dev, "exec", "import qfota.errors; print(qfota.errors.__file__)").stdout
    assert out.strip() == "qfota/errors.py"


def test_deploy_mpy_replaces_sources(board):
    root, dev = board
    assert qfota("deploy", "--board", "unix", "--device", dev).returncode == 0
    proc = qfota("deploy", "--board", "unix", "--mpy", "--device", dev)
    assert proc.returncode == 0, proc.stderr
    names = sorted(p.name for p in (root / "qfota").iterdir())
    assert names == sorted(n[:-3] + ".mpy" for n in ENGINE)
    code = "import qfota.errors; print(qfota.errors.__file__)"
    assert mpremote(dev, "exec", code).stdout.strip() == "qfota/errors.mpy"
    files = snapshot(root)
    assert qfota("deploy", "--board", "unix", "--mpy", "--device", dev).stdout.startswith("up to")
    assert snapshot(root) == files


def test_deploy_refuses_missing_board_file(tmp_path):
    with pytest.raises(deploy.DeployError, match="no board file boards/rp2.py"):
        deploy.plan("rp2", repo=tmp_path)
    proc = qfota("deploy", "--board", "nosuch", "--device", "/dev/null")
    assert proc.returncode != 0 and "invalid choice" in proc.stderr


def test_build_mpy_imports_on_micropython(tmp_path, micropython):
    built = build_mpy.build(out=tmp_path)
    assert sorted(Path(p).name for _d, p in built) == sorted(n[:-3] + ".mpy" for n in ENGINE)
    probe = subprocess.run(
        [micropython, "-c", "import sys; print(sys.implementation._mpy)"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    sys_mpy = int(probe.stdout)
    assert all(build_mpy.compatible(p, sys_mpy) for _d, p in built)
    with BoardSim(tmp_path / "b") as dev:
        mpremote(dev, "fs", "cp", "-r", str(tmp_path / "qfota"), ":")
        code = "import qfota.errors, qfota.compat; print(qfota.errors.__file__)"
        assert mpremote(dev, "exec", code).stdout.strip() == "qfota/errors.mpy"


def test_build_mpy_per_board_march(tmp_path):
    built = build_mpy.build("rp2", out=tmp_path)
    assert built and all(build_mpy.header(p)[0] == build_mpy.MPY_VERSION for _d, p in built)


def test_help():
    proc = qfota("deploy", "--help")
    assert proc.returncode == 0 and "--mpy" in proc.stdout
