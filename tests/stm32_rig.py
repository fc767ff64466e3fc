"""Helpers for the tests and the bench on the emulated STM32F405 (``qfota stm32-sim``).

The firmware comes from ``QFOTA_STM32_FIRMWARE``, else from ``../shared/stm32/`` beside the
repository (where CI keeps it); ``qemu-system-arm`` from PATH.
"""

import hashlib
import os
import time
import tty
from pathlib import Path

from pico_rig import NEW_REV, OLD_REV, cli, mpremote, read_console, read_fd  # noqa: F401 - shared

from qfota_tools.simulators import stm32
from qfota_tools.simulators.ec200.model import FAST, Modem

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "stm32" / "micropython-v1.28.0-QEMU_NETDUINO_PLUS_2.elf"
# The image tests use: what fits in the 64 KiB RAM filesystem beside the deployed engine
# (deploy --mpy leaves 18 of its 128 blocks of 512 bytes), with the image's folder, its
# manifest and the app's journal (tests/test_stm32.py, test_deploy_footprint...: it fails
# when the engine outgrows this).
IMAGE = 4096


def find_firmware():
    """The firmware's path, or raise ``stm32.Stm32Error`` saying what is missing."""
    fw = os.environ.get("QFOTA_STM32_FIRMWARE") or str(SHARED)
    if not os.path.isfile(fw):
        raise stm32.Stm32Error(stm32.HOW_TO_SUPPLY)
    missing = stm32.qemu_ready()
    if missing:
        raise stm32.Stm32Error(missing)
    return fw


def image(folder, size=IMAGE, seed=1, name="ec200.bin"):
    """(path, md5) of a made-up package of ``size`` bytes in ``folder``."""
    data = hashlib.sha256(b"%d" % seed).digest() * (size // 32)
    data = bytes(b ^ (i * 7 & 0xFF) for i, b in enumerate(data))
    path = Path(folder) / name
    path.write_bytes(data)
    return path, hashlib.md5(data).hexdigest()


def modem(image_md5=None, faults=()):
    """The EC200 model as the emulated board meets it: no CTS in QEMU, so with flow
    control on it takes every byte at once (baud 0). Without flow control its receive
    buffer is 4 KiB, not 1: the relay thread of a busy host can hand it a burst of what
    the pty held meanwhile (an unpaced board still overflows it at once: it writes at over
    100 KB/s)."""
    return Modem(revision=OLD_REV, new_revision=NEW_REV, expect_md5=image_md5, baud=0,
                 timing=FAST, faults=faults, rx_buffer=4096)  # fmt: skip


def run_main(dev, until=b"qfota: done", timeout=120):
    """Soft-reset the board so ``main.py`` runs (Ctrl-C, Ctrl-B: the friendly REPL, then
    Ctrl-D; the raw REPL's soft reset, mpremote's, does not run it; the RAM filesystem
    survives); the REPL's text until ``until``."""
    fd = os.open(dev, os.O_RDWR | os.O_NOCTTY)
    try:
        tty.setraw(fd)
        os.write(fd, b"\r\x03\x03\x02")
        time.sleep(0.2)
        os.write(fd, b"\x04")
        return read_fd(fd, until, timeout).decode("utf-8", "replace")
    finally:
        os.close(fd)
