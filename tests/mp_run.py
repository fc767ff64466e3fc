"""Runs the ``case_*`` functions of a test module on MicroPython, one JSON line each.

MICROPYPATH=tests/mock:tests:firmware micropython tests/mp_run.py engine_cases
"""

import json
import sys

try:
    import io
except ImportError:  # pragma: no cover
    io = None


def main(name):
    mod = __import__(name)
    for case in mod.CASES:
        try:
            getattr(mod, case)()
            result = "ok"
        except BaseException as e:  # report everything, go on
            buf = io.StringIO()
            sys.print_exception(e, buf)
            result = buf.getvalue()
        print(json.dumps({"case": case, "result": result}))


main(sys.argv[1])
