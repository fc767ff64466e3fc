"""The options of the modem's HTTP transport (``qfota.httpat.HttpAt``), checked before
anything reaches the modem (``FotaError`` REFUSED, stage PARAMS).

Loaded when a transport is made and released once it has checked (``compat.release``):
on MicroPython code is heap, and none of it is needed while a request runs. Apart from
``qfota.checks`` (the session's options), which a board without the modem's HTTP (stm32)
loads for every update.
"""

from qfota.compat import release
from qfota.defaults import APN_MAX, CID_MAX, TIMEOUT_MAX_MS, TIMEOUTS
from qfota.errors import refuse


def _int(v):
    # checks._int's twin, not imported: keeping qfota.checks out of the heap is this
    # module's reason to be (it loads checks only for an APN).
    return isinstance(v, int) and not isinstance(v, bool)


def check_http(table, cid, apn, sslctxid, timeouts):
    """The transport's options; returns its waits: ``table`` (the transport's, by name)
    with ``timeouts`` over it."""
    if not _int(cid) or not 1 <= cid <= CID_MAX:
        raise refuse("PARAMS", "cid must be 1-%d" % CID_MAX)
    if sslctxid is not None and not (_int(sslctxid) and 0 <= sslctxid <= 5):
        raise refuse("PARAMS", "sslctxid must be 0-5")
    if apn is not None:
        from qfota.checks import check_text

        try:
            check_text("APN", apn, APN_MAX)
        finally:
            release("checks")  # the session's table: not held by a transport, nor after a refusal
    out = dict(table)
    for k, v in (timeouts or {}).items():
        if k not in table:
            if k in TIMEOUTS:
                continue  # the engine's other waits (one table for both): not used here
            raise refuse("PARAMS", "unknown timeout %r" % (k,))
        if not _int(v) or not 0 < v <= TIMEOUT_MAX_MS:
            raise refuse("PARAMS", "timeout %s must be 1-%d ms" % (k[:-3], TIMEOUT_MAX_MS))
        out[k] = v
    return out
