"""End to end on the simulated board: deploy, stage, then the application on the board.

The EC200 simulator serves a ``Modem`` on one pty; ``qfota board-sim`` (the MicroPython
unix port behind another pty, its own folder as the filesystem) is the board. The real
``qfota deploy --board unix`` and ``qfota stage`` (both through the real mpremote) put
the firmware and the image on it; then the deployed ``/main.py`` runs on the board, as at
boot, and updates the simulated modem through the host's ``/dev``: ``/board.py`` (the
unix board file) opens ``$QFOTA_PORT``, which the board's interpreter inherits.
"""

import hashlib
import json
import os
import subprocess
import sys
import time

import pytest

from qfota_tools.simulators.board_sim import BoardSim, mpremote
from qfota_tools.simulators.ec200.model import FAST, Modem
from qfota_tools.simulators.ec200.pty_sim import PtySimulator

pytestmark = pytest.mark.timeout(90)

BOUND_S = 60.0
SIZE = 40_000  # larger than a pty's buffer: flow control holds the app's writes
# The application's waits (qfota.cfg on the board): short, above the simulator's FAST delays.
TIMEOUTS = {
    "probe_ms": 3000,
    "command_ms": 2000,
    "filestart_ms": 2000,
    "fileend_ms": 2000,
    "start_ms": 2000,
    "progress_ms": 2000,
    "end_ms": 3000,
    "reboot_ms": 2000,
    "settle_ms": 3000,
    "stall_ms": 2000,
}


def qfota(*args, timeout=40):
    proc = subprocess.run(
        [sys.executable, "-m", "qfota_tools.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, "qfota %s: %s%s" % (args[0], proc.stdout, proc.stderr)
    return proc.stdout


def run_app(dev):
    """The deployed /main.py on the board, to its end; the lines it printed."""
    proc = mpremote(dev, "exec", "import main", timeout=30)
    assert not proc.stderr.strip(), proc.stdout + proc.stderr
    return proc.stdout


def test_deploy_stage_and_update_on_the_simulated_board(tmp_path):
    t0 = time.monotonic()
    image = tmp_path / "EC200T_A07_A08.bin"
    data = os.urandom(SIZE)
    image.write_bytes(data)
    md5 = hashlib.md5(data).hexdigest()
    cfg = tmp_path / "qfota.cfg"
    cfg.write_text(json.dumps({"timeouts": TIMEOUTS}))
    root = tmp_path / "board"

    model = Modem(expect_md5=md5, timing=FAST)
    source, target = model.revision, model.new_revision
    with PtySimulator(model) as sim:
        board = BoardSim(root, env={"QFOTA_PORT": sim.path})
        dev = board.start()
        try:
            out = qfota("deploy", "--board", "unix", "--device", dev)
            assert "deployed board unix" in out
            out = qfota(
                "stage",
                str(image),
                "--device",
                dev,
                "--to",
                ":/sd/fota",
                "--source-rev",
                source,
                "--target-rev",
                target,
            )
            assert "sha256 verified on the device" in out
            mpremote(dev, "fs", "cp", str(cfg), ":/sd/fota/qfota.cfg")
            assert (root / "sd" / "fota" / image.name).read_bytes() == data

            # First boot: the update.
            out = run_app(dev)
            assert "done: %s -> %s" % (source, target) in out, out
            assert "failed" not in out and "refused" not in out, out
            assert sim.inspect(lambda m: (m.received_md5, m.outcome)) == (md5, "END 0"), out
            assert sim.wait_for(lambda m: m.updates_completed, 5) == 1
            assert model.revision == target
            journal = json.loads((root / "qfota_journal.json").read_text())
            assert journal["state"] == "done" and journal["stage"] == "DONE", journal
            assert journal["revision"] == target and journal["attempts"] == 1, journal
            assert journal["sha256"] == hashlib.sha256(data).hexdigest()

            # Next boot: the modem already runs the target; nothing is sent.
            n = sim.inspect(lambda m: len(m.commands))
            out = run_app(dev)
            assert "nothing to do: the modem already runs %s" % target in out, out
            later = sim.inspect(lambda m: m.commands[n:])
            assert later and not any(c.upper().startswith("AT+QFOTADL") for c in later), later
            assert sim.inspect(lambda m: (m.updates_completed, m.reboots)) == (1, 1)
            journal = json.loads((root / "qfota_journal.json").read_text())
            assert journal["state"] == "current" and journal["revision"] == target, journal
        finally:
            board.stop()
    assert sim.error is None
    assert time.monotonic() - t0 < BOUND_S
