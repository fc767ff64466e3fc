"""Helpers for the tests, benchmarks and demo on the emulated Pico (``qfota pico-sim``).

Fixtures come from ``QFOTA_PICO_FIRMWARE``/``QFOTA_PICO_BOOTROM``, else from
``../shared/pico/`` beside the repository (where CI keeps them).
"""

import os
import select
import shutil
import subprocess
import sys
import time
import tty
from pathlib import Path

import pytest
from cli_rig import run

from qfota_tools.simulators import pico
from qfota_tools.simulators.ec200.model import FAST, NEW_REVISION, REVISION, Modem

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "pico"
OLD_REV, NEW_REV = REVISION, NEW_REVISION


def find_fixtures():
    """(firmware, bootrom), or raise ``pico.PicoError`` saying how to supply them."""
    fw = os.environ.get("QFOTA_PICO_FIRMWARE") or str(SHARED / "RPI_PICO-v1.28.0.uf2")
    rom = os.environ.get("QFOTA_PICO_BOOTROM") or str(SHARED / "bootrom-b1.bin")
    if not (os.path.isfile(fw) and os.path.isfile(rom)):
        raise pico.PicoError(pico.HOW_TO_SUPPLY)
    missing = pico.bridge_ready()
    if missing:
        raise pico.PicoError(missing)
    return pico.fixtures(fw, rom)


def fixtures_or_skip():
    """(firmware, bootrom) for a test module: without them the module is skipped, or
    fails with ``CI=true``."""
    try:
        return find_fixtures()
    except pico.PicoError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail("emulated Pico: %s" % exc, pytrace=False)
        pytest.skip("emulated Pico: %s" % exc, allow_module_level=True)


def usb_held_ms(events, start=0):
    """On the board's clock (the bridge's event times, whatever the host's load): how long
    a runtime USB device held the board's USB, from its connection (the first
    ``usb-reconnect`` from ``events[start]``) to its giving it back (the next
    ``usb-disconnected``); None if it has not yet."""
    on = None
    for e in events[start:]:
        name, _, ms = e.partition(" ")
        if on is None and name == "usb-reconnect":
            on = int(ms)
        elif on is not None and name == "usb-disconnected":
            return int(ms) - on
    return None


def modem(image_md5=None, flow_baud=921600):
    return Modem(revision=OLD_REV, new_revision=NEW_REV, expect_md5=image_md5,
                 baud=flow_baud, timing=FAST)  # fmt: skip


def cli(*args, timeout=120):
    """``qfota ARGS`` in a subprocess, from the checkout."""
    return run(*args, timeout=timeout, cwd=str(ROOT))


def mpremote(dev, *args, timeout=60):
    exe = shutil.which("mpremote", path=os.path.dirname(sys.executable)) or "mpremote"
    return subprocess.run(
        [exe, "connect", dev, *args], capture_output=True, text=True, timeout=timeout
    )


def read_fd(fd, until, timeout):
    """Bytes read from ``fd`` until ``until`` shows up or ``timeout`` s pass."""
    buf = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            buf += os.read(fd, 4096)
            if until in buf:
                break
    return buf


def read_console(dev, until, timeout):
    """Read the REPL pty (without interrupting what runs) until ``until`` (bytes) shows up
    or ``timeout`` s pass; the text read."""
    fd = os.open(dev, os.O_RDWR | os.O_NOCTTY)
    try:
        tty.setraw(fd)
        return read_fd(fd, until, timeout).decode("utf-8", "replace")
    finally:
        os.close(fd)


def deployed_flash(path, fw, rom):
    """A flash file with ``qfota deploy --board rp2 --mpy`` done on it; the deploy's output."""
    sim = pico.PicoSim(fw, rom, flash=str(path))
    repl, _ = sim.start()
    try:
        proc = cli("deploy", "--board", "rp2", "--mpy", "--device", repl)
    finally:
        sim.stop()
    return proc
