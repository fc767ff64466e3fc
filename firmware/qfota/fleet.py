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
allowed), ``update`` (the modem may be inside the transfer or upgrade: after a reset
``recover()`` follows it), ``report`` (the result, not yet taken by the server),
``reported``, ``cancelled``. A result is posted until the server takes it, once; a
failed action is never run again unless the server offers it again after its result.
"""

import os

from qfota import ddi
from qfota.compat import const, release, sleep_ms, ticks_ms
from qfota.defaults import IMAGE_MAX
from qfota.errors import FotaError
from qfota.journal import Journal

# bytes per Range request: 32 KB gave 64% of the line rate on the emulated Pico, 64 KB 77%
# (bench/fleet_bench.py); whether the modem keeps a whole 64 KB answer is unverified
RANGE = const(65536)
URL_MAX = const(255)  # the note: <url> at most 255 bytes
DOWNLOAD_TRIES = const(5)  # offers in which a download may fail before the action does
MAX_ATTEMPTS = const(3)  # updates begun for one action (a reset mid-transfer re-runs it)
_STEPS = const(3)  # progress: 1 download, 2 check, 3 update

# Journal states.
DOWNLOAD = "download"
DOWNLOADED = "downloaded"
UPDATE = "update"
REPORT = "report"
REPORTED = "reported"
CANCELLED = "cancelled"
_BEFORE_TRANSFER = (DOWNLOAD, DOWNLOADED)


class _Sink:
    """A file as the transport's sink (``write(buf, off, n)``)."""

    def __init__(self, f):
        self.f = f

    def write(self, buf, off, n):
        if off == 0 and n == len(buf):
            return self.f.write(buf)
        return self.f.write(memoryview(buf)[off : off + n])


def _size(path):
    try:
        return os.stat(path)[6]
    except OSError:
        return -1


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


def room(folder):
    """Free bytes in the file system holding ``folder``."""
    st = os.statvfs(folder)
    return st[0] * st[4]


def short(revision):
    """``EC200TCNDAR02A07M16_01.001.01.001`` -> ``EC200TCNDAR02A07M16``."""
    return revision.split("_")[0] if revision else revision


def target_of(version, revision):
    """The (short) revision a deployment's version names, when it looks like one of this
    modem's family; else None. ``0.0.0+EC200TCNDAR02A08M16.01.001.01.001`` (what ``qfota
    swu`` writes: semver build metadata has no '_'), ``EC200TCNDAR02A08M16_01.001.01.001``
    and ``EC200TCNDAR02A08M16`` all name ``EC200TCNDAR02A08M16``."""
    if not isinstance(version, str) or not revision:
        return None
    t = version.split("+")[-1].split(".")[0].split("_")[0]
    if not 10 <= len(t) <= 80 or t[:5] != revision[:5]:
        return None
    for ch in t:
        if not (ch.isdigit() or "A" <= ch <= "Z" or ch == "_"):
            return None
    return t


class Fleet:
    """Server mode over ``transport`` and ``updater``; see the module's text.

    ``token``: the device's TargetToken (sent as ``Authorization`` to this controller's
    URLs and, with ``download_auth``, to artifact links on the same server; never
    printed). ``room``: free bytes for downloads (default: ``statvfs`` of ``folder``);
    ``image_max``: the largest package. ``on_event(name, text)``: what happened, for the
    product to print or log. Poll bounds (ms) go to ``ddi.Client``.
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
        **client_kw,
    ):
        self.clock = clock
        self.client = ddi.Client(server, tenant, controller, now=clock(), **client_kw)
        self.origin = server.rstrip("/") + "/"
        self._auth = ()
        if token is not None:
            # Never repeated in the message: it is a secret.
            if not isinstance(token, str) or not 0 < len(token) <= 256:
                raise FotaError("PARAMS", None, "the token must be 1-256 characters")
            for ch in token:
                if not 33 <= ord(ch) <= 126 or ch in "\"'":
                    raise FotaError(
                        "PARAMS", None, "the token holds a space, quote or control character"
                    )
            self._auth = (("Authorization", "TargetToken " + token),)
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
        self.journal = Journal(folder + "/action.json")
        self.revision = None
        self._busy = None  # the action a download is running for
        self._cancel = None  # a cancel seen while busy: its stop id
        self._answered = None  # the last stop id answered
        self.reported = 0  # results the server took in this run

    # ------------------------------------------------------------ the loop
    def start(self):
        """Resume what a reset cut, read the modem's revision, queue the configData."""
        try:
            os.mkdir(self.folder)
        except OSError:
            pass
        rec = self.journal.load()
        st = rec.get("state")
        if st == UPDATE:
            self._say("resume", "action %s: following the modem after a reset" % rec["id"])
            self._resume_update(rec)
        elif st == REPORT:
            self._say("resume", "action %s: posting its result" % rec["id"])
            self._post_result(rec)
        if self.revision is None:
            self._read_revision()
        self._send_config()

    def step(self):
        """Send what is due (one poll at most) and act on the answers; returns ms until
        the next is due."""
        self._service()
        return self.client.wait_ms(self.clock())

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
        # A journal that cannot be written is reported; the action goes on (its record in
        # RAM still holds) and only an MCU reset in that window could repeat or lose a step.
        try:
            self.journal.save(**changes)
        except OSError as e:
            self.journal.data.update(changes)
            self._say("failed", "journal not written (%s): a reset now may repeat a step" % e)

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
            self._read_revision()  # the gate needs it: without it, nothing is begun
            if self.revision is None:
                return
            self._send_config()
        rec = self.journal.data
        if rec.get("id") != aid and rec.get("state") in (UPDATE, REPORT):
            # Another action's end comes first: its result must not be lost to this one.
            if rec["state"] == UPDATE:
                self._resume_update(rec)
            else:
                self._post_result(rec)
            return
        st = rec.get("state") if rec.get("id") == aid else None
        if st == REPORT:
            self._post_result(rec)  # its result, once; never run again by itself
            return
        if st == UPDATE:
            self._resume_update(rec)
            return
        if info["download"] == "skip":
            self._say("skip", "action %s: download skip: nothing done until the server says" % aid)
            return
        same = (
            st in _BEFORE_TRANSFER
            and rec.get("size") == info["size"]
            and rec.get("hashes") == [list(h) for h in info["hashes"]]
        )
        if not same:
            if st in (REPORTED, CANCELLED):
                self._say("deployment", "action %s offered again after its result: run again" % aid)
            self._clear_files()
            rec = {
                "id": aid,
                "state": DOWNLOAD,
                "filename": info["filename"],
                "size": info["size"],
                "hashes": [list(h) for h in info["hashes"]],
                "version": info["version"],
                "source": short(self.revision),
                "target": target_of(info["version"], short(self.revision)),
                "attempts": 0,
                "tries": 0,
            }
            self.journal.data = {}
            self._save(**rec)
        self._say("deployment", "action %s: %s (%d bytes)" % (aid, info["filename"], info["size"]))
        c = self.client
        c.begin(aid, self.clock())
        url = self._url_for(info)
        if url is not None:
            self._progress(aid, 3, "update: the modem fetches the package itself (URL mode)")
            self._flush()
            self._run_update(rec, url=url)
            return
        limit = self.room if self.room is not None else room(self.folder)
        have = _size(self._part(aid))
        if have > 0:
            limit += have
        if info["size"] > limit or info["size"] > self.image_max:
            self._close(
                rec,
                False,
                [
                    "DOWNLOAD: the artifact is %d bytes; the storage has room for %d and the image"
                    " limit is %d" % (info["size"], limit, self.image_max)
                ],
            )
            return
        if rec["state"] == DOWNLOAD:
            self._busy = aid
            try:
                got = self._download(rec, info)
            finally:
                self._busy = None
                self._cancel = None
            if got is None:
                return
            window = self._check(rec)
            if window is None:
                return
            rec = self.journal.data
        else:
            window = (rec["offset"], rec["length"])
        if info["update"] == "skip" or info["window"] == "unavailable":
            if rec["state"] != DOWNLOADED:
                self._save(state=DOWNLOADED)
                why = (
                    "update skip" if info["update"] == "skip" else "maintenance window unavailable"
                )
                c.feedback(
                    aid, "downloaded", "none", ["downloaded and checked; " + why], now=self.clock()
                )
            c.action = None  # poll at the server's pace, fetch the deployment again
            self._say("downloaded", "action %s: waiting (%s)" % (aid, info["update"]))
            return
        self._progress(aid, 3, "update: FILE mode")
        self._flush()
        self._run_update(rec, window=window)

    def _url_for(self, info):
        if not self.url_mode or self.download_auth:
            return None
        if info["filename"].lower().endswith(".swu"):
            return None
        for link in (info["link_http"], info["link"]):
            if link is not None and len(link) <= URL_MAX and (self.tls or link[:5] == "http:"):
                from qfota.urls import check_url

                try:
                    check_url(link)
                except FotaError:
                    continue
                return link
        return None

    def _part(self, aid):
        return "%s/%s.bin" % (self.folder, aid)

    def _clear_files(self):
        aid = self.journal.data.get("id")
        if aid:
            _remove(self._part(aid))

    def _progress(self, aid, cnt, text):
        self._say("progress", "action %s: %s" % (aid, text))
        self.client.feedback(aid, "proceeding", "none", [text], cnt, _STEPS, self.clock())

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
    def _link(self, info):
        """The link to download from, and the headers it gets: https where the transport
        has TLS (on the modem, an SSL context set up for it), else the plain http one
        hawkBit offers as download-http. ``(None, ())`` when there is none to use."""
        order = (info["link"], info["link_http"]) if self.tls else (info["link_http"], info["link"])
        for link in order:
            if link is not None and (self.tls or link.startswith("http:")):
                if not self.download_auth or not link.startswith(self.origin):
                    # The token goes to this server only: elsewhere it is fetched without.
                    return link, ()
                return link, self._auth
        return None, ()

    def _download(self, rec, info):
        """The artifact into ``folder/<id>.bin`` in ranges; True when complete, None when
        this offer ended without it (cancel, a failure: resumed at the next offer)."""
        aid = rec["id"]
        size = rec["size"]
        path = self._part(aid)
        have = _size(path)
        if have < 0 or have > size:
            _remove(path)
            have = 0
        link, auth = self._link(info)
        if link is None:
            self._close(rec, False, ["DOWNLOAD: no plain http link, and TLS is off"])
            return None
        self._progress(aid, 1, "download: %d of %d bytes" % (have, size))
        restarted = False
        while have < size:
            self._service()
            if self._cancel is not None:
                return None
            end = have + self.range_size
            end = (size if end > size else end) - 1
            headers = auth + (("Range", "bytes=%d-%d" % (have, end)),)
            try:
                f = open(path, "ab")
            except OSError as e:
                return self._download_failed(rec, "DOWNLOAD: cannot write %s: %s" % (path, e))
            try:
                status, n = self.transport.request("GET", link, headers, None, _Sink(f))
            except FotaError as e:
                status = e
            except OSError as e:  # the storage failed under the sink
                status = FotaError("STORAGE", None, str(e))
            finally:
                f.close()
            if isinstance(status, FotaError):
                text = "DOWNLOAD: %s; %d of %d bytes on flash" % (status, _size(path), size)
                return self._download_failed(rec, text)
            now = _size(path)
            if status == 200 and have > 0 and not restarted:
                # The server ignored the Range: the body was the whole file, from 0.
                _remove(path)
                have = 0
                restarted = True
                continue
            if status not in (200, 206) and now != have:
                _remove(path)  # an error page went into the file: start again at the next offer
            if status not in (200, 206) or now < 0:
                return self._download_failed(
                    rec, "DOWNLOAD: HTTP %d; %d of %d bytes on flash" % (status, max(now, 0), size)
                )
            if now == have:
                return self._download_failed(rec, "DOWNLOAD: the server sent no byte at %d" % have)
            have = now
        if have != size:
            _remove(path)
            return self._download_failed(
                rec, "DOWNLOAD: %d bytes, the server said %d" % (have, size)
            )
        self._say("downloaded", "action %s: %d bytes" % (aid, size))
        return True

    def _download_failed(self, rec, text):
        tries = rec.get("tries", 0) + 1
        self._say("failed", "action %s: %s" % (rec["id"], text))
        if tries >= DOWNLOAD_TRIES:
            self._close(rec, False, ["%s (try %d of %d)" % (text, tries, DOWNLOAD_TRIES)])
        else:
            self._save(tries=tries)
            self.client.action = None  # the next poll offers it again: resume then
        return None

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

    def _check(self, rec):
        """The artifact's hash, the SWU's inside; ``(offset, length)`` of the modem's image,
        or None (the failure is reported)."""
        aid = rec["id"]
        path = self._part(aid)
        self._progress(aid, 2, "check")
        try:
            off, length, checked = _verify(path, rec)
        except (FotaError, OSError) as e:
            _remove(path)
            text = str(e) if isinstance(e, FotaError) else "CHECK: cannot read %s: %s" % (path, e)
            self._close(rec, False, [text])
            return None
        finally:
            release("swu")  # read once per action: its code need not stay in the heap
        self._save(offset=off, length=length, checked=checked)
        self._say("checked", "action %s: %s" % (aid, ", ".join(checked)))
        return off, length

    # ------------------------------------------------------------ cancel
    def _on_cancel(self, aid, stop):
        if stop == self._answered:
            return
        rec = self.journal.data
        ours = rec.get("id") == stop
        c = self.client
        if ours and rec.get("state") in _BEFORE_TRANSFER:
            self._cancel = stop if self._busy == stop else None
            _remove(self._part(stop))
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
    def _run_update(self, rec, window=None, url=None):
        attempts = rec.get("attempts", 0) + 1
        self._save(state=UPDATE, attempts=attempts, url=url)
        self._say("update", "action %s: attempt %d" % (rec["id"], attempts))
        try:
            if url is not None:
                rev = self.updater.update_url(url, rec["source"], rec["target"])
            else:
                off, n = window if window is not None else (0, rec["size"])
                rev = self.updater.update(
                    self._part(rec["id"]), off, n, rec["source"], rec["target"]
                )
        except FotaError as e:
            self._close(rec, False, _failure(e))
            return
        self._success(rec, rev)

    def _resume_update(self, rec):
        try:
            rev = self.updater.recover()
        except FotaError as e:
            self._close(rec, False, _failure(e))
            return
        self.revision = rev
        src, tgt = rec.get("source"), rec.get("target")
        from qfota.session import same_revision

        if tgt and same_revision(rev, tgt) or not tgt and not same_revision(rev, src):
            self._success(rec, rev)
        elif same_revision(rev, src) and rec.get("attempts", 0) < MAX_ATTEMPTS:
            self._say(
                "resume", "action %s: the modem is on %s still: update again" % (rec["id"], rev)
            )
            if rec.get("url"):
                self._run_update(rec, url=rec["url"])
            else:
                self._run_update(rec, window=(rec["offset"], rec["length"]))
        else:
            self._close(
                rec,
                False,
                ["RECOVER: the modem runs %s after %d attempts" % (rev, rec.get("attempts", 0))],
            )

    def _success(self, rec, rev):
        self.revision = rev
        details = ["revision %s" % short(rev)]
        if rec.get("checked"):
            details.append("checked: " + ", ".join(rec["checked"]))
        self._close(rec, True, details)
        self._send_config()

    def _close(self, rec, ok, details):
        """Record the result, then post it; ``_sent`` marks it taken."""
        self._save(state=REPORT, ok=ok, details=details)
        _remove(self._part(rec["id"]))
        self._say(
            "result",
            "action %s: %s: %s" % (rec["id"], "success" if ok else "failure", "; ".join(details)),
        )
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
            self.client.action = None

    def _refused_result(self, aid):
        rec = self.journal.data
        if rec.get("id") == aid and rec.get("state") == REPORT:
            self._save(state=REPORTED, refused=True)
            self.client.action = None


def _verify(path, rec):
    """The hash the server gave (the strongest ``hashlib`` has), then, in an SWU, the
    sha256 sw-description gives its image. ``(offset, length, what was checked)``."""
    import hashlib

    from qfota import swu

    checked = []
    for alg, want in rec["hashes"]:
        if hasattr(hashlib, alg):
            with open(path, "rb") as f:
                got = swu.hash_window(f, 0, rec["size"], alg)
            if got != want:
                raise FotaError(
                    "CHECK", None, "%s of the artifact is %s, the server says %s" % (alg, got, want)
                )
            checked.append(alg)
            break
    off, length = 0, rec["size"]
    if swu.is_swu(path):
        name, off, length, sha = swu.find_image(path)
        if sha:
            checked.append("sha256 of %s in sw-description" % name)
    if not checked:
        given = ", ".join(a for a, _ in rec["hashes"]) or "none"
        raise FotaError(
            "CHECK", None, "no hash this device can check (the server gave: %s)" % given
        )
    return off, length, checked


def _failure(e):
    """Feedback lines of a failure: the stage, the note's code and its meaning."""
    if e.code is not None:
        return ["%s: %d: %s" % (e.stage, e.code, e.meaning), str(e)]
    return [str(e)]


class DriverUpdater:
    """The modem's part of server mode through ``qfota.driver`` over ``port`` (a port or
    a function that opens one). ``session`` options (timeouts, flow, usb, ...) go to every
    run; ``update`` options (chunk, lock_heap, download_urcs, ...) to updates only."""

    def __init__(self, port, on_event=None, timeouts=None, usb=False, **update):
        self.port = port
        self.on_event = on_event
        self.common = {"timeouts": timeouts, "usb": usb}
        self.opts = update

    def revision(self):
        from qfota.driver import _drive
        from qfota.session import Session

        # The revision steps only: the info plan's others are qfota.info's, which is not
        # shipped to a board (found on the emulated Pico).
        s = Session(info=True, plan=lambda s: ["probe", "echo_off", "qgmr", "ati"], **self.common)
        return _drive(self.port, s, on_event=self.on_event).revision_before

    def recover(self):
        from qfota.driver import recover

        s = recover(self.port, on_event=self.on_event, **self.common)
        return s.revision_after or s.revision_before

    def update(self, path, offset, length, source, target):
        from qfota.driver import update

        s = update(
            self.port,
            path,
            image_offset=offset,
            image_length=length,
            expect_source=source,
            target=target,
            on_event=self.on_event,
            **self.common,
            **self.opts,
        )
        return s.revision_after or s.revision_before

    def update_url(self, url, source, target):
        from qfota.driver import update

        s = update(
            self.port,
            url=url,
            expect_source=source,
            target=target,
            on_event=self.on_event,
            **self.common,
            **self.opts,
        )
        return s.revision_after or s.revision_before
