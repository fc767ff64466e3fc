"""The boards, as their files declare them: ``boards/<name>.py`` is the one place for a board.

A board file declares, as constants at module level (literals), what the host needs::

    MPY_ARCH = "armv7emsp"                  # mpy-cross -march for its CPU (qfota deploy --mpy)
    MPY_LINES = False                       # .mpy with source line numbers (tracebacks)
    STUBS = "micropython-stm32-stubs"       # its MicroPython stubs (make typings, make lint)
    PACKAGES = ("qfota-core", "qfota-app")  # the packages it runs (qfota deploy)

The host reads them with ``ast``, never by importing the file (it imports ``machine``).
``qfota deploy --board`` and ``build_mpy --board`` take their choices from here, the
Makefile its stubs (``python host_tools/qfota_tools/boards.py stubs``: one "<board>
<package>" a line) and pyright projects (``... boards.py pyright``: ``boards/pyright/
<board>.json``, or the repository's ``pyrightconfig.json`` for the board it includes, the
unix port), and ``tests/test_boards.py`` fails when a board lacks a declaration or a list
drifts.
"""

import ast
import json
import re
import sys
from pathlib import Path

if __package__:
    from qfota_tools.tree import BOARDS as BOARDS_DIR
else:  # run as a script by the Makefile, before any install: the repository's boards/
    BOARDS_DIR = Path(__file__).resolve().parents[2] / "boards"
_COMMENT = re.compile(r"^\s*//.*$", re.MULTILINE)
# name -> (type, what it is); every board file declares each of them.
DECLARATIONS = {
    "MPY_ARCH": (str, "mpy-cross -march for the board's CPU"),
    "MPY_LINES": (bool, "keep source line numbers in the .mpy files"),
    "STUBS": (str, "the MicroPython stubs package pyright checks the board against"),
    "PACKAGES": (tuple, "the firmware packages the board runs"),
}


class BoardError(Exception):
    """A board that does not exist or does not declare what the host needs."""


def names(folder=BOARDS_DIR):
    """The boards: one per ``boards/*.py``, sorted."""
    return sorted(p.stem for p in Path(folder).glob("*.py"))


def constants(path):
    """{name: value} of the literal constants at module level of the file at ``path``."""
    tree = ast.parse(Path(path).read_text(), str(path))
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if isinstance(target, ast.Name):
            try:
                found[target.id] = ast.literal_eval(value)
            except ValueError:
                pass  # not a literal (a call, an expression): not a declaration
    return found


def facts(board, folder=BOARDS_DIR):
    """{declaration: value} of ``board``; BoardError if the file or a declaration is missing."""
    path = Path(folder) / (board + ".py")
    if not path.is_file():
        raise BoardError(
            "no board file boards/%s.py (boards: %s)" % (board, ", ".join(names(folder)))
        )
    got = constants(path)
    out = {}
    for name, (kind, what) in DECLARATIONS.items():
        if name not in got:
            raise BoardError("boards/%s.py declares no %s (%s)" % (board, name, what))
        if not isinstance(got[name], kind):
            raise BoardError("boards/%s.py: %s must be a %s" % (board, name, kind.__name__))
        out[name] = got[name]
    return out


def read_jsonc(path):
    """A pyright configuration: JSON with ``//`` comment lines."""
    return json.loads(_COMMENT.sub("", Path(path).read_text()))


def pyright_config(board, folder=BOARDS_DIR):
    """The pyright project that checks ``board``: ``boards/pyright/<board>.json``, else the
    repository's ``pyrightconfig.json`` when it includes ``boards/<board>.py``; a path
    relative to the repository. BoardError when neither does."""
    folder = Path(folder)
    own = folder / "pyright" / (board + ".json")
    if own.is_file():
        return "%s/pyright/%s.json" % (folder.name, board)
    root = folder.parent / "pyrightconfig.json"
    if root.is_file() and "%s/%s.py" % (folder.name, board) in read_jsonc(root).get("include", ()):
        return root.name
    raise BoardError(
        "no pyright project checks boards/%s.py (add boards/pyright/%s.json)" % (board, board)
    )


def main(argv=None):
    """``boards.py stubs``: "<board> <stubs package>" per line; ``boards.py pyright``: the
    pyright project of each board, one a line (for the Makefile)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv not in (["stubs"], ["pyright"]):
        print("usage: boards.py stubs|pyright", file=sys.stderr)
        return 2
    try:
        for name in names():
            if argv == ["stubs"]:
                print(name, facts(name)["STUBS"])
            else:
                print(pyright_config(name))
    except BoardError as exc:
        print("boards: %s" % exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
