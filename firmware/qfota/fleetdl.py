"""Server mode's download and check: the artifact into ``folder/<id>.bin`` in ``Range``
requests (a reset resumes from the partial file), then its hash and, in an SWU, the
image's; then the update is due, or waits for the server (``update`` skip, a window).

``offer(f, info)`` takes a deployment the server offers from its record in the journal on.
``f`` is a ``Fleet`` (on a gateway: it loads this module for an offer and releases it
after) or a ``Fetcher``: the app's download phase (``qfota.serve``), with no DDI client
in the heap: its feedback is posted at once, and between ranges it polls only to see a
``cancelAction``, which it leaves to the next poll phase to answer. Both give the
transport, the journal, the settings and the feedback.
"""

import json
import os

from qfota.action import (
    BODY_MAX,
    CANCELLED,
    DOWNLOAD,
    DOWNLOADED,
    DUE,
    REPORT,
    REPORTED,
    STEPS,
    close,
    feedback,
    file_size,
    part,
    remove,
    save,
    short,
)
from qfota.compat import const, release, ticks_add, ticks_diff, ticks_ms
from qfota.errors import FotaError

DOWNLOAD_TRIES = const(5)  # offers in which a download may fail before the action does
URL_MAX = const(255)  # the note: <url> at most 255 bytes
_BEFORE_TRANSFER = (DOWNLOAD, DOWNLOADED, DUE)
# The download's receive buffer at least (bodies go to storage in pieces of it): the
# poll phase's 1 KB one (httpdrv.RX) is kept; 2 KB cost 1 KB of heap for the same rate
# (bench/fleet_bench.py: 81-87% of the line with 1 KB, 82-83% with 2 KB or 4 KB).
_RX = const(1024)


def room(folder):
    """Free bytes in the file system holding ``folder``."""
    st = os.statvfs(folder)
    return st[0] * st[4]


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


def offer(f, info):
    """A deployment the server offers (``qfota.ddi``'s info; not ``download`` skip; the
    modem's revision known): its record in the journal (kept when it is the one begun
    before), then URL mode, or the download, the check and the update or a wait."""
    aid = info["id"]
    rec = f.journal.data
    st = rec.get("state") if rec.get("id") == aid else None
    hashes = [list(h) for h in info["hashes"]]
    if not (
        st in _BEFORE_TRANSFER and rec.get("size") == info["size"] and rec.get("hashes") == hashes
    ):
        if st in (REPORTED, CANCELLED):
            f._say("deployment", "action %s offered again after its result: run again" % aid)
        if rec.get("id"):
            remove(f._part(rec["id"]))
        src = short(f.revision)
        rec = {
            "id": aid,
            "state": DOWNLOAD,
            "filename": info["filename"],
            "size": info["size"],
            "hashes": hashes,
            "version": info["version"],
            "source": src,
            "target": target_of(info["version"], src),
            "attempts": 0,
            "tries": 0,
        }
        f.journal.data = {}
        f._save(**rec)
        rec = f.journal.data
    f._say("deployment", "action %s: %s (%d bytes)" % (aid, info["filename"], info["size"]))
    f._begin(aid)
    url = _url_for(f, info)
    if url is not None:
        f._progress(aid, STEPS, "update: the modem fetches the package itself (URL mode)")
        f._flush()
        f._go(url)
        return
    limit = f.room if f.room is not None else room(f.folder)
    have = file_size(f._part(aid))
    if have > 0:
        limit += have
    if info["size"] > limit or info["size"] > f.image_max:
        f._close(
            rec,
            False,
            [
                "DOWNLOAD: the artifact is %d bytes; the storage has room for %d and the image"
                " limit is %d" % (info["size"], limit, f.image_max)
            ],
        )
        return
    fetch(f, rec, info)


def _url_for(f, info):
    if not f.url_mode or f.download_auth:
        return None
    if info["filename"].lower().endswith(".swu"):
        return None
    for link in (info["link_http"], info["link"]):
        if link is not None and len(link) <= URL_MAX and (f.tls or link[:5] == "http:"):
            from qfota.urls import check_url

            try:
                check_url(link)
            except FotaError:
                continue
            return link
    return None


def fetch(f, rec, info):
    """From the journal's state ``download`` (or ``downloaded``): download, check, then
    the update (``f._go``) or a wait; returns nothing: the journal says how far it got
    (a cancel, a failure reported or resumed at the next offer stop it on the way)."""
    if rec["state"] != DOWNLOADED:
        if download(f, rec, info) is None or check(f, rec) is None:
            return
        rec = f.journal.data
    aid = rec["id"]
    if info["update"] == "skip" or info["window"] == "unavailable":
        if rec["state"] != DOWNLOADED:
            f._save(state=DOWNLOADED)
            why = "update skip" if info["update"] == "skip" else "maintenance window unavailable"
            f._feedback(aid, "downloaded", "none", ["downloaded and checked; " + why])
        f._idle()
        f._say("downloaded", "action %s: waiting (%s)" % (aid, info["update"]))
        return
    f._progress(aid, STEPS, "update: FILE mode")
    f._flush()
    f._go(None)


class Fetcher:
    """What ``offer`` asks of a ``Fleet``, for the app's download phase without the DDI
    client: ``base`` the controller's URL, ``origin`` the server's (``/`` ended), ``auth``
    the headers with the token (never printed), ``say(name, text)`` the Fleet's
    ``on_event``; keywords: the Fleet's ``revision``, ``url_mode``, ``tls``,
    ``download_auth``, ``range_size``, ``image_max``, and ``active_ms`` between the polls
    for a cancel. ``due``: the update is due (the journal's state ``due``); ``_cancel``:
    the server cancels the action."""

    def __init__(self, transport, journal, folder, base, origin, auth, say, **kw):
        self.transport = transport
        self.journal = journal
        self.folder = folder
        self.base = base
        self.origin = origin
        self._auth = auth
        self.on_event = say
        self.revision = kw["revision"]
        self.url_mode = kw["url_mode"]
        self.tls = kw["tls"]
        self.download_auth = kw["download_auth"]
        self.range_size = kw["range_size"]
        self.active_ms = kw["active_ms"]
        self.image_max = kw["image_max"]
        self.room = None  # statvfs
        self.clock = kw.get("clock", ticks_ms)
        self._poll_at = ticks_add(self.clock(), self.active_ms)  # the poll phase just polled
        self._cancel = None
        self.due = False

    def _say(self, name, text):
        try:
            self.on_event(name, text)
        except Exception:  # a log that fails must not cost the update
            pass

    def _save(self, **changes):
        save(self.journal, self._say, **changes)

    def _part(self, aid):
        return part(self.folder, aid)

    def _send(self, method, url, body=None):
        """One request to the server; its status and body, or None (said why)."""
        headers = self._auth
        if body is not None:
            headers = headers + (("Content-Type", "application/json"),)
        try:
            status, data = self.transport.request(method, url, headers, body, None, BODY_MAX)
        except FotaError as e:
            self._say("failed", str(e))
            return None
        if not 200 <= status < 300:
            self._say("failed", "DDI: %s: HTTP %d" % ("feedback" if body else "poll", status))
            return None
        return data

    def _feedback(self, aid, execution, finished, details, cnt=None):
        url, body = feedback(
            self.base, "deploymentBase", aid, execution, finished, details, cnt, STEPS
        )
        self._send("POST", url, body)

    def _progress(self, aid, cnt, text):
        self._say("progress", "action %s: %s" % (aid, text))
        self._feedback(aid, "proceeding", "none", [text], cnt)

    def _service(self):
        """Between ranges, every ``active_ms``: a poll, for a cancel only."""
        now = self.clock()
        if ticks_diff(now, self._poll_at) < 0:
            return
        self._poll_at = ticks_add(now, self.active_ms)
        data = self._send("GET", self.base)
        try:
            links = json.loads(data.decode()).get("_links") if data else None
            cancel = isinstance(links, dict) and "cancelAction" in links
        except (ValueError, AttributeError):  # a bad answer: the poll phase will say
            cancel = False
        if cancel:
            self._cancel = True
            self._say("cancel", "the server cancels action %s" % self.journal.data["id"])

    def _flush(self):
        pass  # feedback goes out at once

    def _begin(self, aid):
        pass  # the poll phase's pace: polls here are for a cancel only

    def _idle(self):
        pass  # the next poll phase polls at the server's pace

    def _go(self, url):
        self._save(state=DUE, url=url)
        self.due = True

    def _close(self, rec, ok, details):
        close(self.journal, ok, details, self._part(rec["id"]), self._say)


class _Sink:
    """A file as the transport's sink (``write(buf, off, n)``)."""

    def __init__(self, f):
        self.f = f

    def write(self, buf, off, n):
        if off == 0 and n == len(buf):
            return self.f.write(buf)
        return self.f.write(memoryview(buf)[off : off + n])


def _link(f, info):
    """The link to download from, and the headers it gets: https where the transport
    has TLS (on the modem, an SSL context set up for it), else the plain http one
    hawkBit offers as download-http. ``(None, ())`` when there is none to use."""
    order = (info["link"], info["link_http"]) if f.tls else (info["link_http"], info["link"])
    for link in order:
        if link is not None and (f.tls or link.startswith("http:")):
            if not f.download_auth or not link.startswith(f.origin):
                # The token goes to this server only: elsewhere it is fetched without.
                return link, ()
            return link, f._auth
    return None, ()


def download(f, rec, info):
    """The artifact into ``folder/<id>.bin`` in ranges; True when complete, None when
    this offer ended without it (cancel, a failure: resumed at the next offer)."""
    aid = rec["id"]
    size = rec["size"]
    path = f._part(aid)
    have = file_size(path)
    if have < 0 or have > size:
        remove(path)
        have = 0
    link, auth = _link(f, info)
    if link is None:
        f._close(rec, False, ["DOWNLOAD: no plain http link, and TLS is off"])
        return None
    f._progress(aid, 1, "download: %d of %d bytes" % (have, size))
    restarted = False
    while have < size:
        f._service()
        if f._cancel is not None:
            return None
        end = have + f.range_size
        end = (size if end > size else end) - 1
        headers = auth + (("Range", "bytes=%d-%d" % (have, end)),)
        try:
            fh = open(path, "ab")
        except OSError as e:
            return _failed(f, rec, "DOWNLOAD: cannot write %s: %s" % (path, e))
        try:
            status, n = f.transport.request("GET", link, headers, None, _Sink(fh))
        except FotaError as e:
            status = e
        except OSError as e:  # the storage failed under the sink
            status = FotaError("STORAGE", None, str(e))
        finally:
            fh.close()
        if isinstance(status, FotaError):
            text = "DOWNLOAD: %s; %d of %d bytes on flash" % (status, file_size(path), size)
            return _failed(f, rec, text)
        now = file_size(path)
        if status == 200 and have > 0 and not restarted:
            # The server ignored the Range: the body was the whole file, from 0.
            remove(path)
            have = 0
            restarted = True
            continue
        if status not in (200, 206) and now != have:
            remove(path)  # an error page went into the file: start again at the next offer
        if status not in (200, 206) or now < 0:
            return _failed(
                f, rec, "DOWNLOAD: HTTP %d; %d of %d bytes on flash" % (status, max(now, 0), size)
            )
        if now == have:
            return _failed(f, rec, "DOWNLOAD: the server sent no byte at %d" % have)
        have = now
    if have != size:
        remove(path)
        return _failed(f, rec, "DOWNLOAD: %d bytes, the server said %d" % (have, size))
    f._say("downloaded", "action %s: %d bytes" % (aid, size))
    return True


def _failed(f, rec, text):
    tries = rec.get("tries", 0) + 1
    f._say("failed", "action %s: %s" % (rec["id"], text))
    if tries >= DOWNLOAD_TRIES:
        f._close(rec, False, ["%s (try %d of %d)" % (text, tries, DOWNLOAD_TRIES)])
    else:
        f._save(tries=tries)
        f._idle()  # the next poll offers it again: resume then
    return None


def check(f, rec):
    """The artifact's hash, the SWU's inside; ``(offset, length)`` of the modem's image,
    or None (the failure is reported)."""
    aid = rec["id"]
    path = f._part(aid)
    f._progress(aid, 2, "check")
    try:
        # the transport's receive buffer, idle between requests: no second one for the check
        off, length, checked = _verify(path, rec, getattr(f.transport, "rx", None))
    except (FotaError, OSError) as e:
        remove(path)
        text = str(e) if isinstance(e, FotaError) else "CHECK: cannot read %s: %s" % (path, e)
        f._close(rec, False, [text])
        return None
    finally:
        release("swu")  # read once per action: its code need not stay in the heap
    f._save(offset=off, length=length, checked=checked)
    f._say("checked", "action %s: %s" % (aid, ", ".join(checked)))
    return off, length


def _verify(path, rec, buf):
    # Its own function: a local of check() holding swu's code would keep it in the heap.
    from qfota.swu import verify

    return verify(path, rec["size"], rec["hashes"], buf)


def phase(app, transport, journal, folder, rev, hand):
    """The app's download phase (``qfota.serve``): the offered deployment's record, the
    artifact through the modem's HTTP, its check, and the update due or a wait, without
    the DDI client (``offer``); ``hand``: what the poll phase handed over. False when it ended without the update due, a result to
    post or the server's cancel (a failed try, said; a wait for the server): the next
    poll phase does not poll at once."""
    info, base, origin, auth, active_ms, range_size, image_max = hand
    cfg = app.cfg
    # Between requests the driver's buffer may be replaced: the download's (also the
    # check's) is at least _RX, the poll phase's kept when it is.
    if len(transport.rx) < _RX:
        transport.rx = bytearray(_RX)
    transport.core.keep_checks = True  # a Range request each: kept (see HttpAt.begin)

    def said(name, text):
        app.say("%s: %s" % (name, text))

    f = Fetcher(transport, journal, folder, base, origin, auth, said, revision=rev,
                url_mode=cfg["url_mode"], tls=cfg["tls"], download_auth=cfg["download_auth"],
                range_size=range_size, image_max=image_max, active_ms=active_ms)  # fmt: skip
    offer(f, info)
    return f.due or f._cancel is not None or journal.data.get("state") == REPORT
