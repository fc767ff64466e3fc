"""Runs at boot: the qfota application (``qfota.app``) with this board's ``board.py``.

Deployed as ``/main.py`` next to ``/board.py`` (one of ``boards/*.py``) and ``/qfota/``.
On the unix port without a ``board.py`` it uses ``boards/unix.py``::

    QFOTA_PORT=/dev/ttyUSB0 QFOTA_STORAGE=/tmp/sd MICROPYPATH=firmware:boards micropython firmware/main.py
"""

import sys

from qfota import app

status = app.main()
if sys.platform == "linux":
    sys.exit(status)  # the exit status, for scripts and tests (a board just returns to the REPL)
