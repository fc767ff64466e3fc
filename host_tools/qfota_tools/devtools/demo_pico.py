"""``make demo-pico``: the whole chain on an emulated Pico running the real rp2 firmware.

Deploy (``qfota deploy --board rp2 --mpy``), stage an image to the internal flash
(``qfota stage ... --to :/fota``), reset the board so that ``main.py`` runs the update over
UART0 against the EC200 simulator, and show the modem's revision after.
"""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from qfota_tools.simulators import pico
from qfota_tools.simulators.ec200.model import FAST, Modem

OLD = "EC200TCNDAR02A07M16_01.001.01.001"
NEW = "EC200TCNDAR02A08M16_01.001.01.001"


def _qfota(*args):
    print("$ qfota " + " ".join(args), flush=True)
    proc = subprocess.run([sys.executable, "-m", "qfota_tools.cli", *args], timeout=300)
    if proc.returncode:
        raise SystemExit("demo-pico: qfota %s failed (exit %d)" % (args[0], proc.returncode))


def _console(dev, until, timeout):
    import select
    import tty

    fd = os.open(dev, os.O_RDWR | os.O_NOCTTY)
    tty.setraw(fd)
    buf = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and until not in buf:
            if select.select([fd], [], [], 0.2)[0]:
                d = os.read(fd, 4096)
                buf += d
                sys.stdout.write(d.decode("utf-8", "replace"))
                sys.stdout.flush()
    finally:
        os.close(fd)
    return until in buf


def main():
    try:
        fw, rom = pico.fixtures()
    except pico.PicoError as exc:
        print("demo-pico: %s" % exc, file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as d:
        img = Path(d) / "ec200.bin"
        img.write_bytes(os.urandom(64 * 1024))
        m = Modem(revision=OLD, new_revision=NEW, baud=115200, timing=FAST)
        sim = pico.PicoSim(fw, rom, flash=str(Path(d) / "flash.bin"), modem=m)
        try:
            repl, _ = sim.start()
        except pico.PicoError as exc:
            print("demo-pico: %s" % exc, file=sys.stderr)
            return 2
        try:
            print("emulated Pico: REPL on %s, UART0 joined to the EC200 simulator" % repl)
            print("modem revision before: %s" % m.revision, flush=True)
            _qfota("deploy", "--board", "rp2", "--mpy", "--device", repl)
            _qfota("stage", str(img), "--device", repl, "--to", ":/fota",
                   "--source-rev", OLD, "--target-rev", NEW)  # fmt: skip
            print("$ mpremote reset   (main.py runs the update at boot)", flush=True)
            mp = os.path.join(os.path.dirname(sys.executable), "mpremote")
            subprocess.run([mp, "connect", repl, "reset"], timeout=60, check=True)
            ok = _console(repl, b"qfota: done", 180)
        finally:
            sim.stop()
        with sim.lock:
            print("\nmodem revision after: %s" % m.revision)
        return 0 if ok and m.revision == NEW else 1


if __name__ == "__main__":
    sys.exit(main())
