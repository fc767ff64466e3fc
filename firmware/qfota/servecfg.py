"""Server mode's settings: their defaults, their checks, the token and the device's id.

Loaded while the app reads its settings and starts server mode, then released
(``qfota.serve``): none of it is wanted while polling, downloading or updating, and
MicroPython keeps code in the heap.
"""

from qfota.compat import release

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


def settle(app):
    """Server mode's settings for ``app`` (a ``qfota.app.App``), checked before anything
    reaches the modem: ``(None, controller, token)``, or ``(exit status, None, None)``
    after saying why not."""
    from qfota.errors import FotaError
    from qfota.report import EXIT_FAILED, EXIT_REFUSED

    cfg = app.cfg
    if app.bad:
        app.say("refused: PARAMS: %s" % app.bad)
        return EXIT_REFUSED, None, None
    token = read_token(cfg["token_file"])
    if token is None:
        app.say("no token in %s: polling without Authorization" % cfg["token_file"])
    try:
        controller = controller_id(cfg)
    except (ImportError, AttributeError):
        app.say('failed: SERVER: name the device: set "controller" in qfota.cfg')
        return EXIT_FAILED, None, None
    try:
        _check(cfg, controller, token)
    except FotaError as e:
        app.say("refused: %s" % e)
        return EXIT_REFUSED, None, None
    return None, controller, token


def _check(cfg, controller, token):
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
        for name in ("ddi", "httpat", "httpreq", "httptail", "codes"):
            release(name)  # loaded for the check only: the poll phase loads what it uses
