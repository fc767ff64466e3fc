"""Server mode: the modem updated when a DDI server (hawkBit, gooseBit) says so.

The same logic runs on a device (over the modem's own HTTP, ``qfota.httpat``) and on a
gateway (``host_tools/qfota_tools/transport/http_host.py``): ``transport`` is anything
with ``request(method, url, headers=(), body=None, sink=None, limit=4096) -> (status,
result)`` raising ``FotaError``; ``updater`` does the modem's part (``DriverUpdater``
over ``qfota.driver``)::

    f = Fleet(transport, DriverUpdater(port), "http://10.0.0.1:8080", "DEFAULT", "dev1",
              token=token, folder="/sd/fleet")
    f.start()                 # resumes what a reset cut, reads the revision, configData
    while True:
        sleep_ms(f.step())    # polls when due; runs a deployment when one is offered

Per deployment: URL mode when allowed (``url_mode`` and anonymous downloads,
``download_auth=False``), the link plain http(s) of at most 255 bytes and the artifact not
an SWU; else the artifact is downloaded in ``Range`` requests into ``folder`` (a reset
resumes from the partial file), its hash checked (the strongest of sha256, sha1, md5
that both the server gives and ``hashlib`` has), an SWU unwrapped (``qfota.swu``: the
modem gets the image inside), and the FILE-mode update run with the revision gate.

Exactly once: ``folder/action.json`` (``qfota.journal``, temp + rename) records how far
the action got: ``download`` (partial file), ``downloaded`` (waits for the update to be
allowed), ``due`` (allowed, nothing sent to the modem yet), ``update`` (the modem may be
inside the transfer or upgrade: after a reset ``recover()`` follows it), ``report`` (the result, not yet taken by the server),
``reported``, ``cancelled``. A result is posted until the server takes it, once; a
failed action is never run again unless the server offers it again after its result.
"""

import os

from qfota import ddi
from qfota.action import (  # noqa: F401 (the journal's states: API)
    CANCELLED,
    DOWNLOAD,
    DOWNLOADED,
    DUE,
    REPORT,
    REPORTED,
    STEPS,
    UPDATE,
    close,
    file_size,
    part,
    remove,
    save,
    short,
)
from qfota.compat import const, release, sleep_ms, ticks_ms
from qfota.defaults import IMAGE_MAX
from qfota.errors import FotaError
from qfota.journal import Journal


def __getattr__(name):
    # qfota.fleetupd's API (DriverUpdater, MAX_ATTEMPTS) through this module, without
    # holding that module while polling (MicroPython keeps bytecode in the heap).
    if name in ("DriverUpdater", "MAX_ATTEMPTS"):
        from qfota import fleetupd

        return getattr(fleetupd, name)
    raise AttributeError(name)


# bytes per Range request: 32 KB gave 64% of the line rate on the emulated Pico, 64 KB 77%
# (bench/fleet_bench.py); whether the modem keeps a whole 64 KB answer is unverified
RANGE = const(65536)
_STEP_MAX_MS = const(60_000)  # the app's poll phase sleeps at most this long at a time
_BEFORE_TRANSFER = (DOWNLOAD, DOWNLOADED, DUE)
_MODEM = (DUE, UPDATE)  # the update phase's: qfota.fleetupd.run takes them on


class Fleet:
    """Server mode over ``transport`` and ``updater``; see the module's text.

    ``token``: the device's TargetToken (sent as ``Authorization`` to this controller's
    URLs and, with ``download_auth``, to artifact links on the same server; never
    printed). ``room``: free bytes for downloads (default: ``statvfs`` of ``folder``);
    ``image_max``: the largest package. ``on_event(name, text)``: what happened, for the
    product to print or log. Poll bounds (ms) go to ``ddi.Client``.

    ``updater`` None: the download and update phases are the caller's (``qfota.serve``,
    to run them with this client out of the heap): ``due`` is set and ``step()`` returns 0
    where a download would start (``fetch``: the deployment's info; the journal's state
    ``download``; the caller runs ``qfota.fleetdl.fetch`` over a ``fleetdl.Fetcher``) or
    an update would run (the journal's state ``due`` or ``update``; the caller runs
    ``qfota.fleetupd.run`` and ``close``). A new ``Fleet`` (``revision``: the modem's, when
    known) then posts the result from ``start()``.
    """

    def __init__(
        self,
        transport,
        updater,
        server,
        tenant,
        controller,
        token=None,
        folder="fleet",
        url_mode=False,
        download_auth=True,
        tls=True,
        room=None,
        image_max=IMAGE_MAX,
        range_size=RANGE,
        on_event=None,
        clock=ticks_ms,
        revision=None,
        journal=None,
        **client_kw,
    ):
        self.clock = clock
        self.client = ddi.Client(server, tenant, controller, now=clock(), **client_kw)
        self.origin = server.rstrip("/") + "/"
        self._auth = ddi.target_auth(token)
        self.transport = transport
        self.updater = updater
        self.folder = folder
        self.url_mode = url_mode
        self.download_auth = download_auth
        self.tls = tls
        self.room = room
        self.image_max = image_max
        self.range_size = range_size
        self.on_event = on_event
        self.journal = journal or Journal(folder + "/action.json")
        self._loaded = journal is not None  # the caller's journal, loaded: start() keeps it
        self.revision = revision
        self.due = False  # updater None: the download or update phase is due (see above)
        self.fetch = None  # updater None: the deployment whose download is due
        self._busy = None  # the action a download is running for
        self._cancel = None  # a cancel seen while busy: its stop id
        self._answered = None  # the last stop id answered
        self.reported = 0  # results the server took in this run

    # ------------------------------------------------------------ the loop
    def start(self, config=True):
        """Resume what a reset cut, read the modem's revision, queue the configData
        (``config`` False: the server has it from this run already)."""
        try:
            os.mkdir(self.folder)
        except OSError:
            pass
        rec = self.journal.data if self._loaded else self.journal.load()
        st = rec.get("state")
        if st in _MODEM:
            if st == UPDATE:
                self._say("resume", "action %s: following the modem after a reset" % rec["id"])
            self._modem()
            if self.due:
                return
        elif st == REPORT:
            self._say("resume", "action %s: posting its result" % rec["id"])
            self._post_result(rec)
        if self.revision is None and self.updater is not None:
            self._read_revision()
        if config and self.journal.data.get("state") != REPORT:
            self._send_config()  # else it follows the result (_sent): see _close

    def step(self):
        """Send what is due (one poll at most) and act on the answers; returns ms until
        the next is due."""
        self._service()
        return 0 if self.due else self.client.wait_ms(self.clock())

    def run(self, rounds=None, nap_ms=1000):
        """``step()`` forever (or ``rounds`` times), sleeping in between."""
        while rounds is None or rounds > 0:
            w = self.step()
            sleep_ms(w if w < nap_ms else nap_ms)
            if rounds is not None:
                rounds -= 1

    def _exchange(self, req):
        method, url, body = req
        headers = self._auth
        if body is not None:
            headers = headers + (("Content-Type", "application/json"),)
        c = self.client
        try:
            status, data = self.transport.request(method, url, headers, body, None, ddi.BODY_MAX)
        except FotaError as e:
            c.failed(e, self.clock())
            return
        c.response(status, data, self.clock())

    def _events(self):
        c = self.client
        while True:
            ev = c.next_event()
            if ev is None:
                return
            name = ev[0]
            if name == "deployment":
                if self._busy is None:
                    self._deployment(ev[1])
            elif name == "cancel":
                self._on_cancel(ev[1], ev[2])
            elif name == "config":
                self._send_config()
            elif name == "sent":
                self._sent(ev[1], ev[2], ev[3])
            elif name == "failed":
                self._say("failed", str(ev[3]))
            elif name == "dropped" and ev[1] == ddi.FEEDBACK:
                self._refused_result(ev[2])

    def _save(self, **changes):
        save(self.journal, self._say, **changes)

    def _say(self, name, text):
        if self.on_event is not None:
            try:
                self.on_event(name, text)
            except Exception:  # a log that fails must not cost the update
                pass

    # ------------------------------------------------------------ the modem's facts
    def _read_revision(self):
        try:
            self.revision = self.updater.revision()
        except FotaError as e:
            self._say("failed", "reading the revision: %s" % e)

    def _send_config(self):
        # The revision exactly as AT+QGMR gives it: gooseBit offers a package to the
        # (model, revision) its SWU names (``qfota swu --source-rev``).
        rev = self.revision
        if rev:
            self.client.config(
                {"hw_boardname": rev[:6], "hw_revision": rev, "sw_version": rev}, self.clock()
            )

    # ------------------------------------------------------------ a deployment
    def _deployment(self, info):
        aid = info["id"]
        if self.revision is None:
            if self.updater is None:
                self.due = True  # the caller reads it (the engine's part)
                return
            self._read_revision()  # the gate needs it: without it, nothing is begun
            if self.revision is None:
                return
            self._send_config()
        rec = self.journal.data
        if rec.get("id") != aid and rec.get("state") in (DUE, UPDATE, REPORT):
            # Another action's end comes first: its result must not be lost to this one.
            if rec["state"] == REPORT:
                self._post_result(rec)
            else:
                self._modem()
            return
        st = rec.get("state") if rec.get("id") == aid else None
        if st == REPORT:
            self._post_result(rec)  # its result, once; never run again by itself
            return
        if st in _MODEM:
            self._modem()
            return
        if info["download"] == "skip":
            self._say("skip", "action %s: download skip: nothing done until the server says" % aid)
            return
        if self.updater is None:
            self.fetch = info  # the caller's download phase, this client out of the heap
            self.due = True
            return
        self._fetch(info)

    def _part(self, aid):
        return part(self.folder, aid)

    def _progress(self, aid, cnt, text):
        self._say("progress", "action %s: %s" % (aid, text))
        self.client.feedback(aid, "proceeding", "none", [text], cnt, STEPS, self.clock())

    def _feedback(self, aid, execution, finished, details):
        self.client.feedback(aid, execution, finished, details, now=self.clock())

    def _begin(self, aid):
        self.client.begin(aid, self.clock())

    def _idle(self):
        self.client.action = None  # poll at the server's pace, fetch the deployment again

    def _flush(self):
        """Send the queued feedback now, no poll: the modem goes busy next."""
        c = self.client
        while True:
            req = c.next_request(self.clock(), False)
            if req is None:
                return
            self._exchange(req)
            self._events()

    # ------------------------------------------------------------ download
    def _fetch(self, info):
        """The offered deployment: its record, then the download, the check and the update
        or a wait (``qfota.fleetdl``: in the heap only meanwhile)."""
        from qfota import fleetdl

        self._busy = info["id"]
        try:
            fleetdl.offer(self, info)
        finally:
            self._busy = None
            self._cancel = None
            release("fleetdl")

    def _service(self):
        """What is due: the queued feedback and config, and at most one poll with what it
        leads to (between ranges too: every few seconds while an action runs, a cancel)."""
        c = self.client
        polled = False
        while True:
            req = c.next_request(self.clock(), not polled)
            if req is None:
                return
            polled = polled or req[1] == c.base
            self._exchange(req)
            self._events()

    # ------------------------------------------------------------ cancel
    def _on_cancel(self, aid, stop):
        if stop == self._answered:
            return
        rec = self.journal.data
        ours = rec.get("id") == stop
        c = self.client
        if ours and rec.get("state") in _BEFORE_TRANSFER:
            self._cancel = stop if self._busy == stop else None
            self.due = False
            remove(self._part(stop))
            self._save(state=CANCELLED)
            c.action = None
            c.cancel_feedback(aid, True, ["cancelled before the transfer"], self.clock())
            self._say("cancel", "action %s: cancelled before the transfer" % stop)
        elif ours and rec.get("state") in (UPDATE, REPORT, REPORTED):
            c.cancel_feedback(
                aid, False, ["the modem has the package: the update cannot be undone"], self.clock()
            )
            self._say("cancel", "action %s: cancel refused, the transfer had begun" % stop)
        else:
            c.cancel_feedback(aid, True, ["nothing running for this action"], self.clock())
        self._answered = stop

    # ------------------------------------------------------------ update and result
    def _go(self, url):
        """The update is allowed: from here the modem's part (``qfota.fleetupd``)."""
        self._save(state=DUE, url=url)
        self._modem()

    def _modem(self):
        """The action in state ``due`` or ``update`` through the updater, then its result;
        without an updater the caller's (``due``)."""
        if self.updater is None:
            self.due = True
            return
        from qfota.fleetupd import run as run_update

        j = self.journal
        path = self._part(j.data["id"])
        ok, details, rev = run_update(j, self.updater, path, self._say)
        if rev:
            self.revision = rev
        self._close(j.data, ok, details)

    def _close(self, rec, ok, details):
        """Record the result, then post it; ``_sent`` marks it taken and sends the
        configData after it (gooseBit sets the version from a success: a result retried
        after a 409/429 would otherwise overwrite the revision the configData gave)."""
        close(self.journal, ok, details, self._part(rec["id"]), self._say)
        self._post_result(self.journal.data)

    def _post_result(self, rec):
        c = self.client
        c.begin(rec["id"], self.clock())
        c.feedback(
            rec["id"],
            "closed",
            "success" if rec.get("ok") else "failure",
            rec.get("details") or (),
            now=self.clock(),
        )

    def _sent(self, kind, aid, execution):
        rec = self.journal.data
        if kind == ddi.FEEDBACK and execution == "closed" and rec.get("id") == aid:
            if rec.get("state") == REPORT:
                self._save(state=REPORTED)
                self.reported += 1
                self._say("reported", "action %s: the server took the result" % aid)
                self._send_config()
            self.client.action = None

    def _refused_result(self, aid):
        rec = self.journal.data
        if rec.get("id") == aid and rec.get("state") == REPORT:
            self._save(state=REPORTED, refused=True)
            self.client.action = None
            self._send_config()


def phase(app, transport, journal, folder, controller, token, rev, steps, config):
    """The app's poll phase (``qfota.serve``): the DDI client over the modem's HTTP, until
    the download or the update phase is due or after ``steps`` steps (None: for ever).
    ``(steps taken, what the download phase takes or None)``; a FotaError when the
    settings are refused."""
    cfg = app.cfg

    def said(name, text):
        app.say("%s: %s" % (name, text))

    fleet = Fleet(
        transport,
        None,  # the download and update phases are ours, with this client out of the heap
        cfg["server"],
        cfg["tenant"],
        controller,
        token=token,
        folder=folder,
        url_mode=cfg["url_mode"],
        download_auth=cfg["download_auth"],
        tls=cfg["tls"],
        on_event=said,
        sleep_min=cfg["poll_min_s"] * 1000,
        revision=rev,
        journal=journal,
    )
    fleet.start(config)
    n = 0
    while not fleet.due and (steps is None or n < steps):
        wait = fleet.step()
        n += 1
        if not fleet.due:
            sleep_ms(wait if wait < _STEP_MAX_MS else _STEP_MAX_MS)
    if fleet.fetch is None:
        return n, None
    # Plain data only: the client's code goes before the download's comes in.
    f = fleet
    hand = (
        f.fetch,
        f.client.base,
        f.origin,
        f._auth,
        f.client.active_ms,
        f.range_size,
        f.image_max,
    )
    return n, hand
