"""Benchmark: ``qfota stage`` against ``mpremote fs cp``, same 4 MB file, same link.

Both run as commands (process start, connection and soft reset included) against one
simulated board (``qfota board-sim``, a pty), in one run; both copies are checked byte
for byte on the board's folder. Prints both throughputs and, last, the ratio; writes
nothing else (its files live in a temporary folder). Exits 1 when the ratio is below 4::

    $ .venv/bin/python bench/stage_bench.py
    mpremote fs cp: 4194304 bytes in 23.90 s (175 KB/s)
    qfota stage: 4194304 bytes in 0.71 s (5907 KB/s), sha256 verified on the device
    qfota stage 33.7x faster than mpremote cp (4 MB, pty)
"""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from qfota_tools.simulators.board_sim import BoardSim, mpremote_argv

SIZE = 4 * 1024 * 1024
TARGET = 4.0


def timed(argv):
    t0 = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    seconds = time.monotonic() - t0
    if proc.returncode != 0:
        raise SystemExit("stage_bench: %s failed: %s" % (argv[0], proc.stderr.strip()))
    return seconds


def main():
    with tempfile.TemporaryDirectory(prefix="qfota-stage-bench-") as tmp:
        image = Path(tmp) / "image.bin"
        data = os.urandom(SIZE)
        image.write_bytes(data)
        root = Path(tmp) / "board"
        with BoardSim(root) as dev:
            cp = timed([*mpremote_argv(), "connect", dev, "fs", "cp", str(image), ":cp.bin"])
            qfota = [sys.executable, "-m", "qfota_tools.cli", "stage", str(image)]
            qfota += ["--source-rev", "A07", "--target-rev", "A08"]  # required since issue 11
            st = timed(qfota + ["--device", dev, "--to", ":/sd/fota"])
        if (root / "cp.bin").read_bytes() != data:
            raise SystemExit("stage_bench: mpremote's copy differs")
        if (root / "sd" / "fota" / "image.bin").read_bytes() != data:
            raise SystemExit("stage_bench: qfota's copy differs")
    ratio = cp / st
    print("mpremote fs cp: %d bytes in %.2f s (%.0f KB/s)" % (SIZE, cp, SIZE / cp / 1e3))
    print(
        "qfota stage: %d bytes in %.2f s (%.0f KB/s), sha256 verified on the device"
        % (SIZE, st, SIZE / st / 1e3)
    )
    print("qfota stage %.1fx faster than mpremote cp (4 MB, pty)" % ratio)
    return 0 if ratio >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
