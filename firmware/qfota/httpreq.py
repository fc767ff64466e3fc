"""The checks and the making of a request for ``qfota.httpat`` (the transport's own
options are ``qfota.httpcfg``'s): everything a request holds is refused here
(``FotaError`` REFUSED) before a byte goes to the modem, and the raw request is built
only from checked parts, so nothing from a caller or a server can end
an AT line or add a header.

Apart from the core (``qfota.httpat``), which runs the request once it is made: a product
short of heap may let it go between requests (``compat.release("httpreq")``; on
MicroPython code is heap), and it is loaded again at the next request's start (about
15 ms on an RP2040, which is why the core keeps it).
"""

from qfota.at import bad_char
from qfota.errors import refuse

URL_MAX = 700  # AT+QHTTPURL=<len>: 1-700
DATA_MAX = 65536  # qfota's bound on a request (headers and body) written after CONNECT
HEADERS_MAX = 16
VALUE_MAX = 1024
_SET_BY_US = ("host", "content-length", "transfer-encoding")
_SECRET = ("authorization", "proxy-authorization")
_METHODS = ("GET", "PUT", "POST")


def _bad(what, value, extra=""):
    bad = bad_char(value, extra)
    if bad:
        raise refuse("HTTP", "%s holds %s" % (what, bad))


def parse_url(url):
    """``(scheme, authority, target)`` of an absolute http(s) URL, or refused (the URL
    itself is not repeated: it may hold a capability)."""
    if not isinstance(url, str) or not url:
        raise refuse("HTTP", "URL is empty")
    _bad("URL", url, " #")
    if len(url) > URL_MAX:
        raise refuse("HTTP", "URL longer than %d bytes (%d)" % (URL_MAX, len(url)))
    i = url.find("://")
    scheme = url[:i].lower() if i > 0 else ""
    if scheme not in ("http", "https"):
        raise refuse("HTTP", "URL must start with http:// or https://")
    rest = url[i + 3 :]
    end = len(rest)
    for ch in "/?":
        k = rest.find(ch)
        if 0 <= k < end:
            end = k
    authority = rest[:end]
    target = rest[end:]
    if "@" in authority:
        raise refuse("HTTP", "URL holds credentials: give an Authorization header instead")
    host = authority
    colon = authority.rfind(":")
    if colon >= 0 and "]" not in authority[colon:]:
        port = authority[colon + 1 :]
        if not port.isdigit() or not 1 <= int(port) <= 65535:
            raise refuse("HTTP", "URL port must be 1-65535")
        host = authority[:colon]
    if not host:
        raise refuse("HTTP", "URL has no server")
    if not target.startswith("/"):
        target = "/" + target
    return scheme, authority, target


def _token(name):
    if not isinstance(name, str) or not 0 < len(name) <= 64:
        return False
    for ch in name:
        if not (ch.isalpha() or ch.isdigit() or ch == "-") or ord(ch) > 126:
            return False
    return True


def build_request(method, url, headers=(), body=None, trace=False):
    """The checked request: ``(needs requestheader 1, raw request, its text for a
    trace with secrets as *** (None unless ``trace``), the secrets)``. Raises ``FotaError`` (REFUSED) before anything
    is sent: a method, URL, header or body that could end a line or add one."""
    if method not in _METHODS:
        raise refuse("HTTP", "method must be GET, PUT or POST")
    _scheme, authority, target = parse_url(url)
    if body is not None and not isinstance(body, (bytes, bytearray)):
        raise refuse("HTTP", "body must be bytes")
    if method == "GET" and body is not None:
        raise refuse("HTTP", "a GET has no body")
    if method != "GET" and body is None:
        body = b""
    if not isinstance(headers, (tuple, list)) or len(headers) > HEADERS_MAX:
        raise refuse("HTTP", "headers must be at most %d (name, value) pairs" % HEADERS_MAX)
    lines = ["%s %s HTTP/1.1" % (method, target), "Host: " + authority]
    shown = list(lines) if trace else []
    secrets = []
    for h in headers:
        if not isinstance(h, tuple) or len(h) != 2 or not _token(h[0]):
            raise refuse("HTTP", "a header name must be letters, digits and '-'")
        name, value = h
        low = name.lower()
        if low in _SET_BY_US:
            raise refuse("HTTP", "header %s is set by the transport" % name)
        if not isinstance(value, str):
            raise refuse("HTTP", "header %s must be text" % name)
        _bad("header " + name, value)
        if len(value) > VALUE_MAX:
            raise refuse("HTTP", "header %s is longer than %d characters" % (name, VALUE_MAX))
        lines.append("%s: %s" % (name, value))
        if low in _SECRET:
            secrets.append(value.encode())
            sp = value.find(" ")  # "TargetToken <token>": the scheme may show
            value = (value[: sp + 1] if sp > 0 else "") + "***"
        if trace:
            shown.append("%s: %s" % (name, value))
    if body is not None:
        lines.append("Content-Length: %d" % len(body))
        if trace:
            shown.append(lines[-1])
    # requestheader 1 where the modem's own request would not do: headers, a PUT, or an
    # empty body (AT+QHTTPPOST takes 1 byte at least)
    raw = needs = bool(headers) or method == "PUT" or body == b""
    shown_text = None  # made only for a trace: a copy of the headers the heap need not hold
    if raw:
        head = ("\r\n".join(lines) + "\r\n\r\n").encode()
        data = head + bytes(body) if body else head
        if trace:
            shown_text = "\\r\\n".join(shown) + "\\r\\n\\r\\n"
            if body:
                shown_text += "<%d body bytes>" % len(body)
    else:
        data = bytes(body) if body else b""
        if trace:
            shown_text = "<%d body bytes>" % len(data)
    if len(data) > DATA_MAX:
        raise refuse("HTTP", "request is %d bytes, above %d" % (len(data), DATA_MAX))
    return needs, data, shown_text, secrets
