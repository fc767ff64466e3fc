"""``make demo``: a whole FOTA update against the EC200 simulator, on MicroPython.

Makes a test package of the note's example size (4,884,688 bytes), starts the simulator
on a pty, and runs ``qfota update --runtime micropython`` against it: the very code an
MCU runs, on the MicroPython unix port. Ends with the revision change and the
simulator's own check of what it received.

    python -m qfota_tools.devtools.demo [--size N] [--baud N] [--runtime cpython|micropython]
"""

import argparse
import random
import subprocess
import sys
import time
from pathlib import Path

from qfota_tools.simulators.ec200 import model as sim_model
from qfota_tools.simulators.ec200.cli import md5_of
from qfota_tools.simulators.ec200.pty_sim import PtySimulator

NOTE_EXAMPLE_SIZE = 4_884_688  # AT+QFOTADL="FILE:4884688",1,50 in the note's example


def make_image(path, size, seed=2020):
    """A deterministic pseudo-random package (random bytes: no pattern hides a lost byte)."""
    path = Path(path)
    if path.exists() and path.stat().st_size == size:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    rnd = random.Random(seed)
    path.write_bytes(rnd.randbytes(size))
    return path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=NOTE_EXAMPLE_SIZE)
    ap.add_argument("--image", default="out/demo.bin")
    ap.add_argument(
        "--baud", type=int, default=4_000_000, help="simulated line rate (default 4000000)"
    )
    ap.add_argument("--runtime", choices=("cpython", "micropython"), default="micropython")
    args = ap.parse_args(argv)

    image = make_image(args.image, args.size)
    print("demo: package %s, %d bytes" % (image, args.size))
    modem = sim_model.Modem(expect_md5=md5_of(image), baud=args.baud, timing=sim_model.FAST, seed=7)
    sim = PtySimulator(modem)
    port = sim.start()
    print(
        "demo: EC200T simulator on %s at %d baud, revision %s" % (port, args.baud, modem.revision)
    )
    cmd = [
        sys.executable,
        "-m",
        "qfota_tools.cli",
        "update",
        "--runtime",
        args.runtime,
        "--port",
        port,
        "--image",
        str(image),
        "--baud",
        "921600",
        "--download-urcs",
        "50",
    ]
    print("demo: $ qfota " + " ".join(cmd[3:]), flush=True)
    t0 = time.monotonic()
    try:
        status = subprocess.call(cmd, timeout=600)
    finally:
        sim.stop()
    secs = time.monotonic() - t0
    ok = modem.received_md5 == md5_of(image)
    print(
        "demo: %s in %.1f s; simulator received %d bytes, md5 %s; modem now runs %s"
        % (
            "update finished" if status == 0 else "update FAILED (exit %d)" % status,
            secs,
            len(modem.received),
            "matches" if ok else "DIFFERS",
            modem.revision,
        )
    )
    return 0 if status == 0 and ok else 1


if __name__ == "__main__":
    sys.exit(main())
