"""Runs ``qfota update``, ``recover`` and ``info`` from an options dict, on both runtimes.

Unix port and CPython only (``boards/unix.py`` and ``qfota_tools.commands``); it does
not ship to boards, where the application (``qfota.app``) drives the engine itself.

It keeps a small journal per serial port (``$QFOTA_STATE_DIR``, default
``$HOME/.cache/qfota``): while a FILE transfer may be under way it says so, and a run
that finds it there (the last one was cut: Ctrl-C, a signal, a pulled cable) listens
quietly for the modem to end that transfer before it sends anything.
"""

import gc
import os
import time

from qfota import session as S
from qfota.defaults import DEFAULTS, IMAGE_MAX, TIMEOUTS
from qfota.journal import Journal
from qfota.report import Reporter

# Options that go to the Session as they are (None: leave the Session's default).
_SESSION_KEYS = (
    "download_urcs",
    "update_urcs",
    "usb",
    "cid",
    "apn",
    "min_voltage_mv",
    "timeouts",
    "expect_source",
    "target",
)


def state_dir():
    d = os.getenv("QFOTA_STATE_DIR")
    if d:
        return d
    d = (os.getenv("HOME") or "/tmp") + "/.cache"
    for p in (d, d + "/qfota"):
        try:
            os.mkdir(p)
        except OSError:
            pass  # there already (or not writable: then the journal is skipped)
    return d + "/qfota"


def port_journal(port):
    name = "".join(c if c.isalpha() or c.isdigit() else "_" for c in port)
    return Journal(state_dir() + "/port" + name + ".json")


class _PortWatch:
    """Keeps the port's journal while the session runs (an event hook)."""

    def __init__(self, journal, rep):
        self.j = journal
        self.rep = rep
        self.stage = None
        self.failed = False  # a write failed (and was reported once)

    def event(self, ev, a, b):
        self.rep.event(ev, a, b)
        if ev == S.EV_STAGE:
            self.stage = a
            inside = a in S.TRANSFER_STAGES
            if inside != (self.j.get("stage") in S.TRANSFER_STAGES):
                self._save(stage=a)

    def _save(self, **kw):
        try:
            self.j.save(time=time.time(), **kw)
        except OSError as e:
            # A read-only or full state directory must not stop an update: said once.
            if not self.failed:
                self.failed = True
                from qfota.cut import os_error

                self.rep.line(
                    "cannot write the port's journal %s (%s); the update goes on, but a run "
                    "cut now is not known to the next one ($QFOTA_STATE_DIR)"
                    % (self.j.path, os_error(e))
                )

    def end(self, session, err):
        stage = err.stage if err is not None and hasattr(err, "stage") else self.stage
        if err is not None and (stage in S.TRANSFER_STAGES or self.stage in S.TRANSFER_STAGES):
            self._save(stage=self.stage, sent=session.sent if session else 0)
        else:
            self.j.clear()


def _cut_recently(journal, timeouts):
    """The last run on this port stopped inside a FILE transfer, so recently that the
    modem may still be in it (it ends one within ``fileend_ms`` of quiet): listen first."""
    if journal.get("stage") not in S.TRANSFER_STAGES:
        return False
    window = (timeouts or {}).get("fileend_ms") or TIMEOUTS["fileend_ms"]
    age = time.time() - (journal.get("time") or 0)
    return 0 <= age <= window / 1000 + 1


def run_options(opts, open_port, out=print, engine=None):
    """One ``qfota update`` (or ``recover``/``info`` with ``opts["command"]``) from an
    options dict, reported by a ``Reporter``; ``open_port(flow_hw)`` opens the port once
    the checks passed. Returns the exit status. The same on every runtime.

    ``engine`` runs the session: ``qfota.driver`` by default; the CLI's MicroPython
    runtime passes one with the same ``update``/``recover``/``info`` that runs it in a
    MicroPython process (its ``heap``: that process's ``(high-water, heap size)``)."""
    if engine is None:
        from qfota import driver as engine

    mem = opts.get("mem", False) and hasattr(gc, "mem_alloc")  # a MicroPython figure
    rep = Reporter(
        out,
        live=opts.get("live", False),
        verbose=opts.get("verbose", False),
        mem=mem,
        json=opts.get("json", False),
        log=opts.get("log"),
    )
    command = opts.get("command", "update")
    flow_hw = opts.get("flow", DEFAULTS["flow"]) == "hw"
    kwargs = {"trace": opts.get("verbose", False), "flow": "hw" if flow_hw else "none"}
    for key in _SESSION_KEYS:
        if opts.get(key) is not None:
            kwargs[key] = opts[key]
    journal = port_journal(opts.get("port") or "port")
    journal.load()
    watch = _PortWatch(journal, rep)
    session = None
    # Every command that probes honours a cut transfer (recover always listens first).
    listen = command != "recover" and _cut_recently(journal, kwargs.get("timeouts"))
    if listen:
        if command != "info" or not opts.get("json"):  # info --json: one object only
            rep.line(
                "the last run on this port stopped in %s: listening for the modem to end "
                "that transfer before sending anything" % journal.get("stage")
            )
        kwargs["listen_first"] = True
    try:
        if command == "info":
            from qfota.info import show_info

            # One table (or one JSON object): the events only with -v.
            ev = rep.event if opts.get("verbose") else None
            session = engine.info(lambda: open_port(flow_hw), on_event=ev, **kwargs)
            if listen:
                journal.clear()  # it listened the transfer out and the modem answered
            rep.close()
            return show_info(session, out, opts.get("json", False))
        if command == "recover":
            session = engine.recover(lambda: open_port(flow_hw), on_event=watch.event, **kwargs)
        else:
            session = engine.update(
                lambda: open_port(flow_hw),
                image=opts.get("image"),
                url=opts.get("url"),
                upgrade_mode=opts.get("mode", DEFAULTS["upgrade_mode"]),
                chunk=opts.get("chunk", DEFAULTS["chunk"]),
                rate=opts.get("rate", DEFAULTS["rate"]),
                rate_above_note=opts.get("rate_above_note", False),
                max_image=opts.get("max_image", IMAGE_MAX),
                lock_heap=opts.get("lock_heap", False),
                on_event=watch.event,
                **kwargs,
            )
        watch.end(session, None)
        _heap(rep, engine)
        return rep.result(session)
    except Exception as e:  # every failure becomes one closing line
        if command != "info":
            watch.end(session, e)
        _heap(rep, engine)
        return rep.result(err=e)


def _heap(rep, engine):
    heap = getattr(engine, "heap", None)  # measured in another process
    if heap:
        rep.mem = True
        rep.heap_max, rep.heap_total = heap
