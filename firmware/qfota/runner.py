"""Runs one update from an options dict: the glue of ``qfota update`` on both runtimes.

Unix port and CPython only (``boards/unix.py`` and ``qfota_tools.commands.update``); it does
not ship to boards, where the application (``qfota.app``) drives the engine itself.
"""

import gc

from qfota import session as S
from qfota.report import Reporter


def run_options(opts, open_port, out=print):
    """One update from an options dict (the keys of ``qfota update``), reported by a
    ``Reporter``; ``open_port(flow_hw)`` opens the port once the checks passed. Returns
    the exit status. The same on every runtime: ``boards/unix.py`` and the CPython
    ``qfota update`` both call it."""
    from qfota.driver import update

    mem = opts.get("mem", False) and hasattr(gc, "mem_alloc")  # a MicroPython figure
    rep = Reporter(
        out,
        live=opts.get("live", False),
        verbose=opts.get("verbose", False),
        mem=mem,
        json=opts.get("json", False),
        log=opts.get("log"),
    )
    flow_hw = opts.get("flow", "hw") == "hw"
    kwargs = {
        "upgrade_mode": opts.get("mode", 1),
        "download_urcs": opts.get("download_urcs", 0),
        "update_urcs": opts.get("update_urcs", 100),
        "flow": S.FLOW_HW if flow_hw else S.FLOW_NONE,
        "usb": opts.get("usb", False),
        "on_event": rep.event,
        "protocol_download": opts.get("protocol_download", False),
        "trace": opts.get("verbose", False),
    }
    for key in ("cid", "apn", "min_voltage_mv", "timeouts"):
        if opts.get(key) is not None:
            kwargs[key] = opts[key]
    try:
        s = update(
            lambda: open_port(flow_hw),
            image=opts.get("image"),
            url=opts.get("url"),
            chunk=opts.get("chunk", 4096),
            rate=opts.get("rate", 15000),
            lock_heap=opts.get("lock_heap", False),
            **kwargs,
        )
        return rep.result(s)
    except Exception as e:  # noqa: BLE001 - every failure becomes one closing line
        return rep.result(err=e)
