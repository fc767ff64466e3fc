"""The few things that differ between MicroPython and CPython, in one place.

Everything else in ``qfota`` runs unchanged on both interpreters::

    from qfota.compat import const, ticks_ms, ticks_diff, sleep_ms
"""

import gc
import sys

MICROPYTHON = sys.implementation.name == "micropython"


def release(name):
    """Forget module ``qfota.<name>`` so that its code can be collected once nothing else
    holds it (MicroPython keeps bytecode in the heap). The next import loads it afresh.
    A no-op on CPython, where code costs nothing that matters here and a test may hold
    the module it patched. Collects at once: the next module loaded (the session loads
    ``checks``, then ``steps``) then finds the room, and a small heap stays in one piece."""
    if MICROPYTHON:
        sys.modules.pop("qfota." + name, None)
        try:
            delattr(sys.modules["qfota"], name)  # import set it on the package
        except (KeyError, AttributeError):
            pass
        gc.collect()


if MICROPYTHON:
    from time import (  # type: ignore
        sleep_ms,
        sleep_us,
        ticks_add,
        ticks_diff,
        ticks_ms,
        ticks_us,
    )

    import micropython  # type: ignore
    from micropython import const  # type: ignore

    heap_lock = micropython.heap_lock
    heap_unlock = micropython.heap_unlock
else:
    import time

    def const(x):
        return x

    # Mirror MicroPython's wrapping tick arithmetic so the same code is tested
    # on both interpreters (ticks wrap at 2**30 there).
    _TICKS_PERIOD = const(1 << 30)  # consts: folded, no names kept on MicroPython
    _TICKS_HALF = const(1 << 29)
    _T0 = time.monotonic_ns()

    def ticks_ms():
        return ((time.monotonic_ns() - _T0) // 1_000_000) % _TICKS_PERIOD

    def ticks_us():
        return ((time.monotonic_ns() - _T0) // 1_000) % _TICKS_PERIOD

    def ticks_add(t, delta):
        return (t + delta) % _TICKS_PERIOD

    def ticks_diff(a, b):
        return ((a - b + _TICKS_HALF) % _TICKS_PERIOD) - _TICKS_HALF

    def sleep_ms(ms):
        time.sleep(ms / 1000)

    def sleep_us(us):
        time.sleep(us / 1_000_000)

    def heap_lock():
        return 0

    def heap_unlock():
        return 0
