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

from qfota.compat import sleep_ms

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
_RX = 4096  # the transport's receive buffer: a body goes to storage in pieces of this


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


def _Updater(transport, port, **kw):
    """``qfota.fleet.DriverUpdater`` whose every run ends with ``transport.forget()``: an
    update reboots the modem, which drops the PDP context and the HTTP settings the
    transport set (found against the simulator: the result's POST after the upgrade
    failed with 708, HTTP(S) network not configured)."""
    from qfota.fleet import DriverUpdater

    class Updater(DriverUpdater):
        def revision(self):
            try:
                return DriverUpdater.revision(self)
            finally:
                transport.forget()

        def recover(self):
            try:
                return DriverUpdater.recover(self)
            finally:
                transport.forget()

        def update(self, *a):
            try:
                return DriverUpdater.update(self, *a)
            finally:
                transport.forget()

        def update_url(self, *a):
            try:
                return DriverUpdater.update_url(self, *a)
            finally:
                transport.forget()

    return Updater(port, **kw)


def run(app, root):
    """Server mode for ``app`` (a ``qfota.app.App``) with storage at ``root``; returns the
    exit status after ``polls`` steps (never, by default)."""
    from qfota.errors import FotaError
    from qfota.fleet import Fleet
    from qfota.httpdrv import ModemTransport
    from qfota.report import EXIT_FAILED, EXIT_OK

    cfg = app.cfg
    token = read_token(cfg["token_file"])
    if token is None:
        app.say("no token in %s: polling without Authorization" % cfg["token_file"])
    try:
        controller = controller_id(cfg)
    except (ImportError, AttributeError):
        app.say('failed: SERVER: name the device: set "controller" in qfota.cfg')
        return EXIT_FAILED
    port = app._open()
    transport = ModemTransport(port, cid=cfg["cid"], apn=cfg["apn"], rx=_RX)
    updater = _Updater(
        transport,
        port,
        on_event=app.rep.event,
        timeouts=cfg["timeouts"],
        flow=cfg["flow"],
        chunk=cfg["chunk"],
        lock_heap=cfg["lock_heap"],
        upgrade_mode=cfg["upgrade_mode"],
        download_urcs=cfg["download_urcs"],
        update_urcs=cfg["update_urcs"],
        min_voltage_mv=cfg["min_voltage_mv"],
    )

    def said(name, text):
        app.say("%s: %s" % (name, text))

    try:
        fleet = Fleet(
            transport,
            updater,
            cfg["server"],
            cfg["tenant"],
            controller,
            token=token,
            folder=root + "/fleet",
            url_mode=cfg["url_mode"],
            download_auth=cfg["download_auth"],
            tls=cfg["tls"],
            on_event=said,
            sleep_min=cfg["poll_min_s"] * 1000,
        )
    except FotaError as e:
        app.say("failed: %s" % e)
        return EXIT_FAILED
    app.say("server mode: %s, tenant %s, device %s" % (cfg["server"], cfg["tenant"], controller))
    fleet.start()
    polls = cfg["polls"]
    n = 0
    while polls is None or n < polls:
        wait = fleet.step()
        n += 1
        sleep_ms(wait if wait < _STEP_MAX_MS else _STEP_MAX_MS)
    return EXIT_OK
