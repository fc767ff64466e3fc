"""The application in server mode: the modem updated when a DDI server says so.

``qfota.app`` runs this instead of the staged-image mode when its settings (``fota/qfota.cfg``
or the board's ``SETTINGS``) name a ``server``::

    {"server": "http://fleet.example:8080", "tenant": "DEFAULT", "controller": "pump-0042"}

It reaches the server through the modem's own HTTP AT commands (``qfota.httpdrv``), and
``qfota.fleet`` does the rest: poll, configData with the modem's model and revision, a
deployment downloaded in ranges into ``<storage>/fleet`` (resumed after a reset), its
hash checked, an SWU unwrapped, the FILE-mode update with the revision gate and the power
check of the staged mode (``min_voltage_mv``), the result posted once. URL mode (the
modem fetches the package itself) only when ``url_mode`` is on and ``download_auth`` off.

The TargetToken is read from ``token_file`` (one line) and never printed; without the
file the device polls without ``Authorization`` (a server with device auth off).
"""

import gc

from qfota.action import DUE, REPORT, UPDATE
from qfota.compat import release, sleep_ms

DEFAULTS = {
    "server": None,  # the DDI server's base URL: http(s)://host[:port]; None: staged mode
    "tenant": "DEFAULT",
    "controller": None,  # the device's id there; None: "qfota-" + machine.unique_id() in hex
    "token_file": "/qfota_token",  # the TargetToken, one line (internal flash)
    "url_mode": False,  # let the modem fetch a raw package itself (needs download_auth off)
    "download_auth": True,  # send the token with artifact downloads
    "tls": False,  # https links too (the product configured the modem's SSL context)
    "cid": 1,  # the PDP context of the modem's HTTP
    "apn": None,  # set on that context first (AT+QICSGP) when given
    "poll_min_s": 10,  # poll no more often than this, whatever the server's sleep says
    "polls": None,  # return after this many steps (None: poll for ever)
}

_STEP_MAX_MS = 60_000  # sleep at most this long at a time (a product may want to do more)
_RX = 4096  # the download's receive buffer: a body goes to storage in pieces of this
# The poll phase's own modules, released before the download phase
_POLL = ("fleet", "ddi", "fleetdl", "fleetupd")
# The modem's HTTP and the download's, released before the update phase (the engine's
# stay: the app's); codes: the meanings of a failure.
_HTTP = ("fleetdl", "swu", "httpdrv", "httpat", "httpreq", "httptail", "codes")
# The update phase's modules nothing holds between its runs, released before the poll
# phase (session, report and app's stay: the app holds them); codes: a failure's meanings.
_ENGINE = (
    "fleetupd",
    "driver",
    "session",
    "steps",
    "answers",
    "recovery",
    "cut",
    "checks",
    "codes",
)


def read_token(path):
    """The token in ``path`` (first line, stripped), or None when there is no such file."""
    try:
        with open(path) as f:
            token = f.readline().strip()
    except OSError:
        return None
    return token or None


def controller_id(cfg):
    cid = cfg.get("controller")
    if cid:
        return cid
    import binascii

    import machine  # type: ignore

    return "qfota-" + binascii.hexlify(machine.unique_id()).decode()  # type: ignore


def _modem(app, journal, folder, rev, read):
    """The update phase: the action the journal leaves to the modem (state ``due`` or
    ``update``), then, with ``read``, the revision when it is not known; the engine alone
    in the heap. The modem's revision (None when it could not be read)."""
    from qfota.action import close, part
    from qfota.errors import FotaError
    from qfota.fleetupd import DriverUpdater
    from qfota.fleetupd import run as run_update

    st = journal.data.get("state")
    if st not in (DUE, UPDATE) and (rev is not None or not read):
        return rev

    def said(name, text):
        app.say("%s: %s" % (name, text))

    updater = DriverUpdater(app._open(), on_event=app.rep.event, **app.update_options())
    if st in (DUE, UPDATE):
        aid = journal.data["id"]
        if st == UPDATE:
            said("resume", "action %s: following the modem after a reset" % aid)
        path = part(folder, aid)
        ok, details, got = run_update(journal, updater, path, said)
        close(journal, ok, details, path, said)
        rev = got or rev
    if rev is None and read:
        try:
            rev = updater.revision()
        except FotaError as e:
            said("failed", "reading the revision: %s" % e)
    return rev


def _transport(app):
    # Its own function: a local of run() holding the class would keep httpdrv's code.
    from qfota.httpdrv import ModemTransport

    cfg = app.cfg
    t = ModemTransport(app._open(), cid=cfg["cid"], apn=cfg["apn"])  # polling: httpdrv.RX
    t.core.keep_checks = False  # polling: qfota.httpreq let go after each request's making
    return t


def _poll(app, transport, journal, folder, controller, token, rev, steps, config):
    """The poll phase: the DDI client over the modem's HTTP, until the download or the
    update phase is due or after ``steps`` steps (None: for ever). ``(steps taken, what
    the download phase takes or None)``; a FotaError when the settings are refused."""
    from qfota.fleet import Fleet

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


def _download(app, transport, journal, folder, rev, hand):
    """The download phase: the offered deployment's record, the artifact through the
    modem's HTTP, its check, and the update due or a wait, without the DDI client
    (``qfota.fleetdl.offer``). False when it ended without the update due, a result to
    post or the server's cancel (a failed try, said; a wait for the server): the next
    poll phase does not poll at once."""
    from qfota.fleetdl import Fetcher, offer

    info, base, origin, auth, active_ms, range_size, image_max = hand
    cfg = app.cfg
    # Between requests the driver's buffer may be replaced: the download's is larger (the
    # line rate) and also the check's (fleetdl), made now that the DDI client is out.
    transport.rx = bytearray(_RX)
    transport.core.keep_checks = True  # a Range request each: kept (see HttpAt.begin)

    def said(name, text):
        app.say("%s: %s" % (name, text))

    f = Fetcher(transport, journal, folder, base, origin, auth, said, revision=rev,
                url_mode=cfg["url_mode"], tls=cfg["tls"], download_auth=cfg["download_auth"],
                range_size=range_size, image_max=image_max, active_ms=active_ms)  # fmt: skip
    offer(f, info)
    return f.due or f._cancel is not None or journal.data.get("state") == REPORT


def _check(cfg, controller, token):
    """The settings the poll phase takes, checked before anything reaches the modem (its
    own function: a local of run() holding ddi's code would keep ddi alive)."""
    from qfota.ddi import Client, target_auth
    from qfota.errors import refuse
    from qfota.httpat import HttpAt

    for k in ("url_mode", "download_auth", "tls"):
        if type(cfg[k]) is not bool:
            raise refuse("PARAMS", "%s must be true or false, not %r" % (k, cfg[k]))
    for k in ("poll_min_s", "polls"):
        v = cfg[k]
        if not (v is None and k == "polls") and (type(v) is not int or v < 1):
            raise refuse("PARAMS", "%s must be a whole number, at least 1, not %r" % (k, v))
    try:
        target_auth(token)
        Client(cfg["server"], cfg["tenant"], controller, sleep_min=cfg["poll_min_s"] * 1000)
        HttpAt(cfg["cid"], cfg["apn"])
    finally:
        for name in _POLL + _HTTP:
            release(name)


def run(app, root):
    """Server mode for ``app`` (a ``qfota.app.App``) with storage at ``root``; returns the
    exit status after ``polls`` steps (never, by default).

    Three phases, one at a time in the heap: polling (``qfota.fleet``, ``qfota.ddi``, the
    modem's HTTP), the download and its check (``qfota.fleetdl``, the modem's HTTP), and
    the modem's update (``qfota.fleetupd`` over the engine); between them plain data (the
    deployment's links, the controller's URL) and the action's journal. The modules of
    one are released (``qfota.compat.release``) and collected before the next runs."""
    from qfota.errors import FotaError
    from qfota.journal import Journal
    from qfota.report import EXIT_FAILED, EXIT_OK, EXIT_REFUSED

    cfg = app.cfg
    if app.bad:
        app.say("refused: PARAMS: %s" % app.bad)
        return EXIT_REFUSED
    token = read_token(cfg["token_file"])
    if token is None:
        app.say("no token in %s: polling without Authorization" % cfg["token_file"])
    try:
        controller = controller_id(cfg)
    except (ImportError, AttributeError):
        app.say('failed: SERVER: name the device: set "controller" in qfota.cfg')
        return EXIT_FAILED
    try:
        _check(cfg, controller, token)
    except FotaError as e:
        app.say("refused: %s" % e)
        return EXIT_REFUSED
    folder = root + "/fleet"
    journal = Journal(folder + "/action.json")
    journal.load()
    app.say("server mode: %s, tenant %s, device %s" % (cfg["server"], cfg["tenant"], controller))
    polls = cfg["polls"]
    n = 0
    rev = None
    config = True  # the configData: at the first poll phase and after every update
    while True:
        more = polls is None or n < polls
        # An update the last step left due runs even after the last step, as it did inside it.
        if rev is None or journal.data.get("state") in (DUE, UPDATE):
            config = True  # the revision read or changed: the server is told
        rev = _modem(app, journal, folder, rev, more)
        if not more:
            return EXIT_OK
        if rev is None:
            sleep_ms(cfg["poll_min_s"] * 1000)  # the modem did not answer: not at once again
        for name in _ENGINE:
            release(name)
        gc.collect()
        # A new transport after the update phase: an update reboots the modem, which
        # drops the PDP context and the HTTP settings a transport set (found against the
        # simulator: the result's POST after the upgrade failed with 708, HTTP(S) network
        # not configured). The download phase goes on with the poll phase's.
        transport = _transport(app)
        try:
            k, hand = _poll(
                app, transport, journal, folder, controller, token, rev,
                None if polls is None else polls - n, config,
            )  # fmt: skip
            n += k
            config = False
            for name in _POLL:
                release(name)
            gc.collect()
            if hand is not None and not _download(app, transport, journal, folder, rev, hand):
                sleep_ms(cfg["poll_min_s"] * 1000)  # a failed download: not at once again
        except FotaError as e:
            app.say("failed: %s" % e)
            return EXIT_FAILED
        hand = transport = None
        for name in _HTTP:
            release(name)
        gc.collect()
