"""The hawkBit DDI client, sans-I/O: requests out, responses in, events out.

The device polls ``/{tenant}/controller/v1/{controllerId}``; the server answers with a
poll interval and links when there is work (``deploymentBase``, ``cancelAction``,
``configData``); the device fetches the deployment, does it, and posts feedback. This
core only builds requests and reads answers: no socket, no clock (``now`` is a
``ticks_ms`` value passed in), no callbacks from inside ``response()``::

    c = Client("http://10.0.0.1:8080", "DEFAULT", "dev1")
    req = c.next_request(now)          # (method, url, body) or None: nothing due yet
    if req is not None:
        try:
            status, body = transport.request(req[0], req[1], headers, req[2])
            c.response(status, body, now)
        except FotaError as e:
            c.failed(e, now)
    ev = c.next_event()                # ("deployment", info), ("cancel", id, stop_id), ...

Events (tuples; the first item names it):
``("deployment", info)``: ``info`` a small dict: ``id``, ``download``, ``update``
(forced|attempt|skip), ``window`` (None|available|unavailable), ``name``, ``version``,
``filename``, ``size``, ``hashes`` (``[(alg, hex), ...]``, strongest first), ``link``,
``link_http`` (checked http(s) URLs or None), read by ``qfota.deployment`` (loaded for
that answer alone). ``("cancel", action_id, stop_id)``.
``("config",)``: the server asks for the device's attributes. ``("idle", sleep_ms)``: a
poll without work. ``("sent", kind, action_id, execution)``: the server took a feedback
(kind FEEDBACK / CANCEL_FEEDBACK) or the config (CONFIG). ``("failed", kind, action_id,
error)``: a request failed (``error`` a ``FotaError``): a poll with bad JSON or an
unexpected shape, an HTTP error, the transport's failure. The client goes on polling
after every failure; a result, a cancel answer or the config is tried again every
``retry_ms`` until the server answers, and ``("dropped", kind, action_id, execution)``
says the server refused one for good (an HTTP 4xx).

Nothing a server sends reaches a request unchecked: links must lie under this
controller's own URL (the transport adds the token to them) and hold only printable
ASCII without space or quote; ids are letters and digits. Feedback and the config are
JSON built by ``json.dumps`` from checked ids and the device's own text.
"""

import json

from qfota.action import (  # noqa: F401 (API)
    BODY_MAX,
    DETAIL_MAX,
    EXECUTIONS,
    FINISHED,
    ID_MAX,
    LINK_MAX,
    dict_at,
    href,
    id_ok,
    link_ok,
    shape,
)
from qfota.action import feedback as _feedback_of
from qfota.compat import const, release, ticks_add, ticks_diff
from qfota.errors import FAILED, FotaError

RETRIES = const(3)  # a 409/429 is tried again this often, RETRY_MS apart

# Poll bounds, in ms: the server's sleep is held inside [SLEEP_MIN, SLEEP_MAX].
SLEEP_MIN = const(10_000)
SLEEP_MAX = const(86_400_000)
SLEEP_DEFAULT = const(300_000)  # a missing or malformed sleep
ACTIVE_MS = const(5_000)  # poll interval while an action runs (to see a cancel)
RETRY_MS = const(5_000)  # after a 409/429
RETRY_WAIT_MS = const(300_000)  # after a failed poll; between tries of a kept request

# Request kinds.
POLL = "poll"
DEPLOYMENT = "deploymentBase"
CANCEL = "cancelAction"
FEEDBACK = "feedback"
CANCEL_FEEDBACK = "cancel feedback"
CONFIG = "configData"


def target_auth(token):
    """The ``Authorization`` header of the device's TargetToken, as a tuple of headers
    (``()`` for None); FotaError PARAMS when it could not go into a request line
    (``qfota.servecfg.check_token``). The message never repeats it: it is a secret."""
    if token is None:
        return ()
    from qfota.servecfg import check_token

    check_token(token)
    release("servecfg")  # the settings' checks: not held while polling
    return (("Authorization", "TargetToken " + token),)


def parse_sleep(text, lo=SLEEP_MIN, hi=SLEEP_MAX, default=SLEEP_DEFAULT):
    """``"HH:MM:SS"`` in ms, held inside [lo, hi]; ``default`` for anything else."""
    if not isinstance(text, str):
        return default
    parts = text.split(":")
    if len(parts) != 3:
        return default
    for p in parts:
        if not 0 < len(p) <= 2 or not p.isdigit():
            return default
    h, m, s = int(parts[0]), int(parts[1]), int(parts[2])
    if m > 59 or s > 59:
        return default
    ms = ((h * 60 + m) * 60 + s) * 1000
    return lo if ms < lo else hi if ms > hi else ms


class Client:
    """One DDI controller. ``server`` is ``http(s)://host[:port]``, ``tenant`` and
    ``controller`` the ids in the path. Poll bounds in ms (``sleep_min``, ``sleep_max``,
    ``sleep_default``), ``active_ms`` while an action runs, ``retry_ms`` after a failed
    poll. The first poll is due at once."""

    def __init__(
        self,
        server,
        tenant,
        controller,
        sleep_min=SLEEP_MIN,
        sleep_max=SLEEP_MAX,
        sleep_default=SLEEP_DEFAULT,
        active_ms=ACTIVE_MS,
        retry_ms=RETRY_WAIT_MS,
        now=0,
    ):
        from qfota.servecfg import check_client

        server = check_client(server, tenant, controller)
        release("servecfg")  # the settings' checks: not held while polling
        self.base = "%s/%s/controller/v1/%s" % (server, tenant, controller)
        self.lo = sleep_min
        self.hi = sleep_max
        self.sleep_default = sleep_default
        self.sleep_ms = sleep_default
        self.active_ms = active_ms
        self.retry_ms = retry_ms
        self.due = now
        self.action = None  # the action being worked on: poll at active_ms, fetch it no more
        self._queue = []  # [kind, method, url, body, action_id, execution, not_before]
        self._inflight = None
        self._tries = 0
        self._events = []

    # ------------------------------------------------------------ out
    def next_request(self, now, poll=True):
        """The next request due at ``now`` as ``(method, url, body)``, or None. One at a
        time: the answer (``response`` or ``failed``) must come before the next.
        ``poll=False``: only what the device queued (feedback, config), no poll."""
        if self._inflight is not None:
            return None
        req = None
        for r in self._queue:
            if ticks_diff(now, r[6]) >= 0:
                req = r
                self._queue.remove(r)
                break
        if req is None:
            if not poll or ticks_diff(now, self.due) < 0:
                return None
            req = [POLL, "GET", self.base, None, None, None, now]
        self._inflight = req
        return req[1], req[2], req[3]

    def wait_ms(self, now):
        """ms until something is due (0: now)."""
        if self._inflight is not None:
            return 0
        t = ticks_diff(self.due, now)
        for r in self._queue:
            d = ticks_diff(r[6], now)
            if d < t:
                t = d
        return t if t > 0 else 0

    def begin(self, action_id, now):
        """An action runs: poll every ``active_ms`` (a cancel shows there) and fetch its
        deployment no more; ``None`` ends it (the server's pace again)."""
        self.action = action_id
        if action_id is not None and ticks_diff(self.due, ticks_add(now, self.active_ms)) > 0:
            self.due = ticks_add(now, self.active_ms)

    def next_event(self):
        return self._events.pop(0) if self._events else None

    # ------------------------------------------------------------ what the device says
    def feedback(self, action_id, execution, finished, details=(), cnt=None, of=None, now=0):
        """Queue a deployment feedback. ``details``: the device's own lines of text."""
        self._feedback(
            FEEDBACK, "deploymentBase", action_id, execution, finished, details, cnt, of, now
        )

    def cancel_feedback(self, stop_id, accept, details=(), now=0):
        """Answer a cancel: ``closed``/``success`` accepts it, ``rejected`` refuses it (the
        action goes on: the modem has the package already)."""
        ex = "closed" if accept else "rejected"
        fin = "success" if accept else "none"
        self._feedback(CANCEL_FEEDBACK, "cancelAction", stop_id, ex, fin, details, None, None, now)

    def config(self, data, now=0):
        """Queue ``PUT configData`` ``{"mode": "merge", "data": data}`` (str -> str)."""
        body = json.dumps({"mode": "merge", "data": data}).encode()
        self._put([CONFIG, "PUT", self.base + "/configData", body, None, None, now])

    def _feedback(self, kind, route, aid, execution, finished, details, cnt, of, now):
        url, body = _feedback_of(self.base, route, aid, execution, finished, details, cnt, of)
        self._put([kind, "POST", url, body, aid, execution, now])

    def _put(self, req):
        # A newer request of the same kind, action and status replaces one not yet sent
        # (a later progress; a result queued again after a reset): never two of one.
        for r in self._queue:
            if r[0] == req[0] and r[4] == req[4] and r[5] == req[5]:
                self._queue.remove(r)
                break
        self._queue.append(req)

    # ------------------------------------------------------------ answers
    def failed(self, error, now):
        """The transport could not complete the request in flight (``error`` a FotaError)."""
        req = self._take()
        if req is not None:
            self._fail(req, error, now, True)

    def response(self, status, body, now):
        """The answer to the request in flight: HTTP ``status`` and the body (bytes)."""
        req = self._take()
        if req is None:
            return
        kind = req[0]
        if status in (409, 429) and self._tries < RETRIES:
            self._tries += 1  # the server is busy: the same request again, a little later
            if kind == POLL:
                self.due = ticks_add(now, RETRY_MS)
            else:
                req[6] = ticks_add(now, RETRY_MS)
                self._queue.insert(0, req)
            return
        self._tries = 0
        if not 200 <= status < 300:
            err = FotaError("DDI", None, "%s: HTTP %d" % (kind, status), FAILED)
            self._fail(req, err, now, status >= 500)
            return
        try:
            if kind == POLL:
                self._got_poll(body, now)
            elif kind == DEPLOYMENT:
                self._got_deployment(body, req[4])
            elif kind == CANCEL:
                self._got_cancel(body, req[4])
            else:
                self._events.append(("sent", kind, req[4], req[5]))
        except (ValueError, TypeError, KeyError) as e:
            self._fail(req, FotaError("DDI", None, "%s: %s" % (kind, e), FAILED), now, False)

    def _take(self):
        req = self._inflight
        self._inflight = None
        return req

    def _fail(self, req, err, now, transient):
        kind = req[0]
        if kind == POLL:
            self.due = ticks_add(now, self.retry_ms if self.action is None else self.active_ms)
        self._events.append(("failed", kind, req[4], err))
        if kind in (CONFIG, CANCEL_FEEDBACK) or req[5] == "closed":
            if transient:
                # Kept until the server takes it: a result is reported, not lost.
                req[6] = ticks_add(now, self.retry_ms)
                self._queue.append(req)
            else:
                self._events.append(("dropped", kind, req[4], req[5]))

    def _poll_next(self, now):
        self.due = ticks_add(now, self.sleep_ms if self.action is None else self.active_ms)

    def _got_poll(self, body, now):
        self.sleep_ms = self.sleep_default
        self._poll_next(now)  # a malformed answer still leaves the next poll due
        d = _load(body)
        cfg = d.get("config")
        if isinstance(cfg, dict) and isinstance(cfg.get("polling"), dict):
            self.sleep_ms = parse_sleep(
                cfg["polling"].get("sleep"), self.lo, self.hi, self.sleep_default
            )
        self._poll_next(now)
        links = d.get("_links", {})
        if not isinstance(links, dict):
            raise shape("_links")
        cancel = href(links, "cancelAction")
        deploy = href(links, "deploymentBase")
        if href(links, "configData") is not None:
            self._events.append(("config",))
        if cancel is not None:
            aid = self._action_id(cancel, "/cancelAction/")
            self._queue.insert(0, [CANCEL, "GET", cancel, None, aid, None, now])
        elif deploy is not None:
            aid = self._action_id(deploy, "/deploymentBase/")
            if aid != self.action:
                self._queue.insert(0, [DEPLOYMENT, "GET", deploy, None, aid, None, now])
        else:
            self._events.append(("idle", self.sleep_ms))

    def _action_id(self, link, route):
        # Only links under this controller: the transport adds the token to them.
        head = self.base + route
        if not link_ok(link) or not link.startswith(head):
            raise ValueError("a link outside %s... or with a bad character" % route)
        aid = link[len(head) :]
        q = aid.find("?")
        if q >= 0:
            aid = aid[:q]
        if not id_ok(aid):
            raise ValueError("a bad action id in the %s link" % route[1:-1])
        return aid

    def _got_deployment(self, body, aid):
        # Read by its own module, in the heap for this answer only (MicroPython: code is heap)
        from qfota.deployment import read

        try:
            self._events.append(("deployment", read(_load(body), aid)))
        finally:
            release("deployment")

    def _got_cancel(self, body, aid):
        d = _load(body)
        stop = dict_at(d, "cancelAction", "cancelAction").get("stopId")
        if d.get("id") != aid or not id_ok(stop):
            raise shape("cancelAction.stopId")
        self._events.append(("cancel", aid, stop))


def _load(body):
    if not isinstance(body, (bytes, bytearray)) or len(body) > BODY_MAX:
        raise ValueError("answer missing or over %d bytes" % BODY_MAX)
    try:
        d = json.loads(body.decode())
    except ValueError:  # UnicodeError is one on both interpreters
        raise ValueError("not JSON") from None
    if not isinstance(d, dict):
        raise shape("not an object")
    return d
