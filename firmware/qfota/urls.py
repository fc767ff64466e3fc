"""URL rules of the note (chapter 3.2.1.1/3.2.1.2), password redaction, and URL mode's
PDP steps (rows as ``qfota.steps``'s). Loaded only for URL mode (``qfota.checks``,
``qfota.steps``); the PDP steps' answers are read by ``qfota.answers``.

>>> check_url("ftp://test:secret@10.0.0.1:2121/EC200T.bin")[0]
'ftp'
>>> redact('AT+QFOTADL="ftp://test:secret@10.0.0.1/a.bin"')
'AT+QFOTADL="ftp://test:***@10.0.0.1/a.bin"'
"""

from qfota.at import FAIL, NEXT, SAFE
from qfota.compat import const
from qfota.errors import redact, refuse  # noqa: F401 - redact is used from here

URL_MAX = 255  # <url>: maximum length 255 bytes
FTP_FIELD_MAX = 50  # <username>, <password>, <serverURL>, <file_path>: 50 bytes each
_CMD = const("command_ms")  # a const: no name kept on MicroPython

# fmt: off
STEPS = {
    # name        stage   command                          body prefix   wait      on ERROR  reader   cut
    "qicsgp":   ("PDP",  b'AT+QICSGP=%d,1,"%s","","",1',   None,         _CMD,     FAIL,     None,    SAFE),
    "fota_cid": ("PDP",  b'AT+QFOTA="fota/cid",%d',        None,         _CMD,     FAIL,     None,    SAFE),
    "qiact?":   ("PDP",  b"AT+QIACT?",                     b"+QIACT:",   _CMD,     NEXT,     "qiact", SAFE),
    "qiact":    ("PDP",  b"AT+QIACT=%d",                   None,         "pdp_ms", NEXT,     None,    SAFE),
}
# fmt: on


def plan(s):
    """URL mode's steps before AT+QFOTADL: the note's examples make sure the fota context
    is up first (the APN set only when given)."""
    p = ["qicsgp"] if s.opt.get("apn") is not None else []
    return p + ["fota_cid", "qiact?", "qiact"]


def args(s):
    """The values the ``%`` templates of ``STEPS`` take, for session ``s``."""
    cid = s.opt["cid"]
    return {"qicsgp": (cid, (s.opt.get("apn") or "").encode()), "fota_cid": cid, "qiact": cid}


def _refuse(rule, url):
    # The URL itself is not repeated: a malformed one may hide its password from redact().
    raise refuse("PARAMS", "URL %s" % rule)


def _port(text, url):
    if not text or not text.isdigit() or not 1 <= int(text) <= 65535:
        _refuse("port must be 1-65535", url)
    return int(text)


def check_url(url):
    """Validate ``url`` by the note's rules; return ``(scheme, user, password, host, port, path)``.

    Raises ``FotaError("PARAMS", ...)`` naming the rule that broke.
    """
    if not isinstance(url, str) or not url:
        _refuse("is empty", "")
    if len(url.encode()) > URL_MAX:
        _refuse("longer than %d bytes (%d)" % (URL_MAX, len(url.encode())), url)
    for ch in url:
        if ch == '"' or ord(ch) < 33 or ord(ch) > 126:
            _refuse("has a quote, space, control or non-ASCII character", url)
    i = url.find("://")
    scheme = url[:i].lower() if i > 0 else ""
    if scheme not in ("ftp", "http", "https"):
        _refuse("must start with ftp://, http:// or https://", url)
    rest = url[i + 3 :]
    slash = rest.find("/")
    authority = rest if slash < 0 else rest[:slash]
    path = "" if slash < 0 else rest[slash + 1 :]
    at = authority.rfind("@")
    userinfo = authority[:at] if at >= 0 else ""
    hostport = authority[at + 1 :]
    user = password = ""
    if at >= 0:
        colon = userinfo.find(":")
        user = userinfo if colon < 0 else userinfo[:colon]
        password = "" if colon < 0 else userinfo[colon + 1 :]
    colon = hostport.rfind(":")
    host = hostport if colon < 0 else hostport[:colon]
    port = (21 if scheme == "ftp" else 443 if scheme == "https" else 80) if colon < 0 else None
    if colon >= 0:
        port = _port(hostport[colon + 1 :], url)
    if not host:
        _refuse("has no server", url)
    if scheme == "ftp":
        if len(user.encode()) > FTP_FIELD_MAX:
            _refuse("user name longer than %d bytes" % FTP_FIELD_MAX, url)
        if len(password.encode()) > FTP_FIELD_MAX:
            _refuse("password longer than %d bytes" % FTP_FIELD_MAX, url)
        if len(host.encode()) > FTP_FIELD_MAX:
            _refuse("server longer than %d bytes" % FTP_FIELD_MAX, url)
        if not path:
            _refuse("has no file path", url)
        if len(path.encode()) > FTP_FIELD_MAX:
            _refuse("file path longer than %d bytes" % FTP_FIELD_MAX, url)
        if "/" in path:
            _refuse("file path must be at the server's root (the note supports no folders)", url)
    elif not path:
        _refuse("has no file path", url)
    return scheme, user, password, host, port, path
