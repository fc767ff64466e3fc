"""The engine alone on the MicroPython unix port, for ``qfota update --runtime micropython``
(unix port only, like ``qfota.tty``): ``run(call)`` runs one update, recover or info over
a tty and writes what happens as lines that the CLI (CPython) reports with the same
reporter and journal as its own runtime. This process holds what a board would: the
engine and its port, nothing of the CLI.
"""

import gc
import json

from qfota import driver
from qfota.errors import FotaError
from qfota.tty import TtyPort

# What the CLI reads of a finished session (its reporter, journal and ``qfota info``).
FIELDS = (
    "result",
    "revision_before",
    "revision_after",
    "recovered",
    "end_code",
    "sent",
    "stream_ms",
    "supported",
    "flow_setting",
    "voltage_mv",
    "pdp",
    "events_dropped",
)


def main(out=print):
    """``run()`` with the call the CLI put in ``QFOTA_CALL`` (JSON), the text let go first."""
    import os

    text = os.getenv("QFOTA_CALL") or "{}"
    call = json.loads(text)
    del text
    run(call, out)


def run(call, out=print):
    """``qfota.driver.<call["call"]>`` (update, recover or info) with ``call["kwargs"]``
    over ``call["port"]``, for ``qfota update --runtime micropython``. Writes one line per
    event, ``E [ev, a, b]``, then ``R {"session": {...}}`` or ``R {"error": [type, stage,
    code, detail, kind]}``; with ``call["mem"]`` also ``"heap": [live high-water, heap]``
    (gc.collect, then gc.mem_alloc, at every event). The reporter, the journal and the
    port lock stay in the CLI: this process holds what a board would, the engine and
    its port."""
    mem = call.get("mem") and hasattr(gc, "mem_alloc")
    high = [0]

    def emit(ev, a, b):
        if mem:
            gc.collect()
            used = gc.mem_alloc()
            if used > high[0]:
                high[0] = used
        out("E " + json.dumps((ev, a, b)))

    port = call["port"], call["baud"], call["flow_hw"]
    fn = getattr(driver, call["call"])
    kwargs = call["kwargs"]
    call.clear()  # on a small heap every block counts
    end = {}
    try:
        s = fn(lambda: TtyPort(*port), on_event=emit, **kwargs)
        end["session"] = {k: getattr(s, k) for k in FIELDS}
    except FotaError as e:
        end["error"] = ["FotaError", e.stage, e.code, e.detail, e.kind]
    except (Exception, KeyboardInterrupt) as e:
        end["error"] = [type(e).__name__, None, None, str(e), None]
    if mem:
        end["heap"] = [high[0], gc.mem_free() + gc.mem_alloc()]
    out("R " + json.dumps(end))
