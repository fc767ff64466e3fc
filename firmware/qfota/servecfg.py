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


def check_client(server, tenant, controller):
    """The DDI client's settings (``qfota.ddi.Client``); returns ``server`` without a
    trailing ``/``. FotaError PARAMS when one could not go into a request."""
    from qfota.action import LINK_MAX, id_ok, link_ok
    from qfota.errors import refuse

    server = server.rstrip("/") if isinstance(server, str) else server
    if not link_ok(server, LINK_MAX // 2) or server.count("/") != 2:
        raise refuse("PARAMS", "server must be http(s)://host[:port]")
    if not id_ok(tenant, "-_."):
        raise refuse("PARAMS", "tenant must be letters, digits, '-', '_', '.'")
    if not id_ok(controller, "-_."):
        raise refuse("PARAMS", "controller id must be letters, digits, '-', '_', '.'")
    return server


def check_token(token):
    """The TargetToken (a str), or FotaError PARAMS when it could not go into a request
    line; the message never repeats it: it is a secret."""
    from qfota.errors import refuse

    if not isinstance(token, str) or not 0 < len(token) <= 256:
        raise refuse("PARAMS", "the token must be 1-256 characters")
    for ch in token:
        if not 33 <= ord(ch) <= 126 or ch in "\"'":
            raise refuse("PARAMS", "the token holds a space, quote or control character")


def _check(cfg, controller, token):
    from qfota.errors import refuse
    from qfota.httpcfg import check_http

    for k in ("url_mode", "download_auth", "tls"):
        if type(cfg[k]) is not bool:
            raise refuse("PARAMS", "%s must be true or false, not %r" % (k, cfg[k]))
    for k in ("poll_min_s", "polls"):
        v = cfg[k]
        if not (v is None and k == "polls") and (type(v) is not int or v < 1):
            raise refuse("PARAMS", "%s must be a whole number, at least 1, not %r" % (k, v))
    try:
        if token is not None:
            check_token(token)
        check_client(cfg["server"], cfg["tenant"], controller)
        check_http({}, cfg["cid"], cfg["apn"], None, None)  # the transport's, without its code
    finally:
        for name in ("httpcfg", "checks", "codes"):
            release(name)  # loaded for the check only: the poll phase loads what it uses
