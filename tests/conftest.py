"""Shared fixtures: paths, the MicroPython interpreter, the fake ``machine`` module."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
MOCK = TESTS / "mock"
FIRMWARE = ROOT / "firmware"
BOARDS = ROOT / "boards"
VENV_BIN = Path(sys.executable).parent

for p in (str(MOCK), str(TESTS)):
    if p not in sys.path:
        sys.path.insert(0, p)

# gooseBit (a DDI server on 127.0.0.1) for the fleet tests: fixtures goosebit, goosebit_factory
pytest_plugins = ("goosebit_rig",)


def repo_files():
    """The tree's files, relative to ROOT: tracked, or new and not ignored (one deleted
    but not yet committed is not there)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        timeout=60,
        check=True,
    ).stdout.split(b"\0")
    return [rel for rel in (p.decode() for p in listed if p) if (ROOT / rel).is_file()]


def micropython_path():
    exe = VENV_BIN / "micropython"
    return str(exe) if exe.exists() else None


def run_micropython(args, env_path=(), timeout=300, heapsize=None, **kw):
    """Run the MicroPython unix port with our firmware, boards and mocks on its path."""
    exe = micropython_path()
    if exe is None:
        pytest.fail("no micropython interpreter in the venv: run `make venv`")
    env = dict(os.environ)
    env["MICROPYPATH"] = ":".join(
        [*map(str, env_path), str(MOCK), str(TESTS), str(FIRMWARE), str(BOARDS), ".frozen"]
    )
    cmd = [exe]
    if heapsize:
        cmd += ["-X", "heapsize=%s" % heapsize]
    return subprocess.run(
        cmd + list(args),
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=str(ROOT),
        **kw,
    )


@pytest.fixture(autouse=True)
def _state_dir(tmp_path, monkeypatch):
    """Each test its own qfota state (the per-port journal of qfota update): ptys are
    reused, and a cut transfer recorded by one test must not make another listen first."""
    monkeypatch.setenv("QFOTA_STATE_DIR", str(tmp_path))


@pytest.fixture
def board(tmp_path):
    """(its folder, its device) of the simulated board (``qfota board-sim``), stopped at
    teardown."""
    from qfota_tools.simulators.board_sim import BoardSim

    root = tmp_path / "board"
    sim = BoardSim(root)
    dev = sim.start()
    try:
        yield root, dev
    finally:
        sim.stop()


@pytest.fixture(scope="session")
def micropython():
    """Path of the real MicroPython interpreter; the suite fails (not skips) without it."""
    exe = micropython_path()
    if exe is None:
        pytest.fail("no micropython interpreter in the venv: run `make venv`")
    return exe


_mp_results = {}


def micropython_cases(module):
    """Run every ``case_*`` of ``module`` on MicroPython once; {name: "ok" | error text}."""
    if module not in _mp_results:
        proc = run_micropython([str(TESTS / "mp_run.py"), module])
        results = {}
        for line in proc.stdout.splitlines():
            if line.startswith("{"):
                rec = json.loads(line)
                results[rec["case"]] = rec["result"]
        results["__stderr__"] = proc.stderr[-3000:]
        results["__stdout__"] = proc.stdout[-3000:]
        _mp_results[module] = results
    return _mp_results[module]
