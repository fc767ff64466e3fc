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

from qfota import at as S
from qfota.at import DOWNLOAD, TRANSFER, UPGRADE
from qfota.defaults import DEFAULTS, TIMEOUTS
from qfota.journal import Journal
from qfota.report import Reporter
from qfota.steps import stages

TRANSFER_STAGES = stages(TRANSFER)
# Past the stages where nothing of an update reached the modem, and not over.
_INSIDE = TRANSFER_STAGES + stages(DOWNLOAD) + stages(UPGRADE)
_DRIVER_KEYS = ("chunk", "rate", "rate_above_note", "max_image", "lock_heap")


def session_keys():
    """The options that go to the Session as they are (``qfota.checks.OPTIONS``)."""
    from qfota.checks import OPTIONS

    return tuple(row[0] for row in OPTIONS)


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
        self.rebooted = False  # the modem rebooted since AT+QFOTADL: no transfer is left

    def event(self, ev, a, b):
        self.rep.event(ev, a, b)
        if ev == S.EV_STAGE:
            self.stage = a
            if _inside(a) != _inside(self.j.get("stage")):
                self._save(stage=a)
        elif ev == S.EV_REBOOT:
            self.rebooted = True

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
        if err is not None and not self.rebooted and (_inside(stage) or _inside(self.stage)):
            self._save(stage=self.stage, sent=session.sent if session else 0)
        else:
            self.j.clear()


def _inside(stage):
    return stage in _INSIDE


def _listen_first(journal, timeouts, command):
    """Listen before probing. ``recover``: when the last run on this port was cut past
    the safe stages (a transfer, a download or an upgrade may go on); when nothing was
    cut here it probes at once. ``update``, ``info``: when the last run stopped inside a FILE
    transfer so recently that the modem may still be in it (it ends one within
    ``fileend_ms`` of quiet)."""
    stage = journal.get("stage")
    if command == "recover":
        return _inside(stage)
    if stage not in TRANSFER_STAGES:
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
    flow_hw = (opts.get("flow") or DEFAULTS["flow"]) == "hw"
    kwargs = {"trace": opts.get("verbose", False)}
    for key in session_keys():
        if opts.get(key) is not None:
            kwargs[key] = opts[key]
    journal = port_journal(opts.get("port") or "port")
    journal.load()
    watch = _PortWatch(journal, rep)
    session = None
    # Every command that probes honours a cut transfer (recover always listens first).
    # Every command that probes honours a cut run (_listen_first).
    listen = _listen_first(journal, kwargs.get("timeouts"), command)
    if listen and (command != "info" or not opts.get("json")):  # info --json: one object
        rep.line(
            "the last run on this port stopped in %s: listening for the modem to end "
            "that %s before sending anything"
            % (journal.get("stage"), "update" if command == "recover" else "transfer")
        )
    kwargs["listen_first"] = listen
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
            for key in _DRIVER_KEYS:  # the driver's own, where given: else its defaults
                if opts.get(key) is not None:
                    kwargs[key] = opts[key]
            session = engine.update(
                lambda: open_port(flow_hw),
                image=opts.get("image"),
                url=opts.get("url"),
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
