"""Board: the MicroPython unix port on a Linux box, the modem on a tty.

Wiring: a USB-serial adapter (3.3 V or 1.8 V logic to match the module's VDD_EXT, see
the module's hardware design) to the modem's main UART: adapter TXD -> module RXD,
adapter RXD <- module TXD, adapter RTS -> module RTS, adapter CTS <- module CTS, GND -> GND.
Or the module's USB AT port (``--usb``), which needs no wiring.

Standalone, one update with the same lines and exit status as ``qfota update``::

    QFOTA_OPTS='{"port": "/dev/ttyUSB0", "image": "EC200T.bin"}' MICROPYPATH=firmware:boards micropython boards/unix.py

``qfota update --runtime micropython`` runs ``qfota.relay`` instead: the engine alone in
MicroPython, what happens written as lines that the CLI (CPython) reports.
"""

import json
import sys

from qfota.defaults import DEFAULTS
from qfota.tty import TtyPort

# What the host needs of this board (read by host_tools/qfota_tools/boards.py with ast:
# qfota deploy, make typings/lint; boards/README.md).
MPY_ARCH = "x64"  # mpy-cross -march: x86-64 Linux
MPY_LINES = True  # .mpy keep source line numbers (a disk: room for them)
STUBS = "micropython-unix-stubs"
PACKAGES = ("qfota-core", "qfota-url", "qfota-http", "qfota-app", "qfota-fleet", "qfota-unix")

PORT = "/dev/ttyUSB0"
BAUD = DEFAULTS["baud"]  # the module's default; its bootloader prints at the NV-saved rate


def make_port(path=PORT, baud=BAUD, flow_hw=True):
    return TtyPort(path, baud, flow_hw)


def run(opts, out=print):
    """Run one update from an options dict (the keys of ``qfota update``); returns the exit status."""
    from qfota.runner import run_options

    return run_options(
        opts, lambda flow_hw: make_port(opts["port"], opts.get("baud", BAUD), flow_hw), out
    )


# ---------------------------------------------------------------- the application's board API
# ``qfota.app`` (firmware/main.py) uses the same three names on every board. Here they
# come from the environment, so one build serves a bench PC and the tests:
#   QFOTA_PORT (tty), QFOTA_BAUD, QFOTA_STORAGE (a folder holding fota/), QFOTA_JOURNAL.
# Under ``qfota board-sim`` the defaults are the simulated board's /sd and /.


def _env(name, default):
    import os

    return os.getenv(name) or default


STORAGE = "/sd"
JOURNAL_PATH = _env("QFOTA_JOURNAL", "/qfota_journal.json")


def open_port(flow_hw=True):
    """The modem's tty, raw, RTS/CTS on when ``flow_hw``."""
    return make_port(_env("QFOTA_PORT", PORT), int(_env("QFOTA_BAUD", BAUD)), flow_hw)


def mount_storage():
    """The folder that holds ``fota/``; OSError when it is missing."""
    import os

    path = _env("QFOTA_STORAGE", STORAGE)
    os.stat(path)
    return path


if __name__ == "__main__":
    # Options come in the environment: this interpreter build crashes ("uncaught NLR")
    # on a command-line argument longer than about 256 bytes.
    import os

    sys.exit(run(json.loads(os.getenv("QFOTA_OPTS") or sys.argv[1])))
