"""HTTP for ``qfota.fleet`` on a host (the gateway agent, tests): CPython ``http.client``.

The interface is the one the device's modem transport (``qfota.httpat``) has::

    t = HttpTransport(timeout=30)
    status, body = t.request("GET", url, (("Authorization", "TargetToken " + tok),))
    status, n = t.request("GET", link, (("Range", "bytes=0-32767"),), sink=f)

``sink`` None: the body is returned (over ``limit`` bytes is a failure). ``sink`` given
(``write(buf, off, n)``): a 2xx body goes there and the count is returned; the body of
any other status is read (bounded) and dropped, so an error page never lands in a
partial download. Every wait is bounded: ``timeout`` per socket operation, ``deadline``
per request. Failures are ``FotaError`` of stage HTTP (kind TIMEOUT when a wait ran
out). The URL and every header are checked before anything is sent (no CR, LF, space
in the URL, quote or control character); the ``Authorization`` value never appears in
a message or a trace.
"""

import http.client
import socket
import time
from urllib.parse import urlsplit

from qfota.ddi import link_ok
from qfota.errors import FAILED, TIMEOUT, FotaError

URL_MAX = 2048
_METHODS = ("GET", "PUT", "POST", "HEAD")
_SECRET = ("authorization", "proxy-authorization")


def _fail(detail, kind=FAILED):
    return FotaError("HTTP", None, detail, kind)


def _check_headers(headers):
    out = {}
    for name, value in headers:
        if not isinstance(name, str) or not name or not all(c.isalnum() or c in "-_" for c in name):
            raise _fail("a header name holds a character a header cannot")
        if not isinstance(value, str) or any(not 32 <= ord(c) <= 126 for c in value):
            raise _fail("the %s header holds a control or non-ASCII character" % name)
        out[name] = value
    return out


class HttpTransport:
    """``request()`` over one ``http.client`` connection per call (a gateway polls
    seldom; a fresh connection each time leaves nothing open between polls)."""

    def __init__(self, timeout=30.0, deadline=600.0, chunk=16384, trace=None):
        self.timeout = timeout
        self.deadline = deadline
        self.chunk = chunk
        self.trace = trace  # trace(text): one line per request and answer, redacted

    def _say(self, text):
        if self.trace is not None:
            try:
                self.trace(text)
            except Exception:  # a log that fails must not cost the update
                pass

    def request(self, method, url, headers=(), body=None, sink=None, limit=4096):
        if method not in _METHODS:
            raise _fail("method %r not supported" % (method,))
        if not link_ok(url, URL_MAX):
            raise _fail("URL refused: not http(s), too long, or holds a space, quote or control")
        hdrs = _check_headers(headers)
        parts = urlsplit(url)
        if not parts.hostname:
            raise _fail("URL has no host")
        try:
            port = parts.port
        except ValueError:
            raise _fail("URL has a bad port") from None
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        shown = ", ".join(
            "%s: %s" % (k, "***" if k.lower() in _SECRET else v) for k, v in hdrs.items()
        )
        self._say("> %s %s%s" % (method, url, " [%s]" % shown if shown else ""))
        end = time.monotonic() + self.deadline
        conn = cls(parts.hostname, port, timeout=self.timeout)
        try:
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            status = resp.status
            if sink is None or not 200 <= status < 300:
                data = self._read_bounded(resp, limit, end)
                self._say("< %d, %d bytes" % (status, len(data)))
                return status, (data if sink is None else 0)
            n = self._read_into(resp, sink, end)
            self._say("< %d, %d bytes" % (status, n))
            return status, n
        except FotaError:
            raise
        except (socket.timeout, TimeoutError):
            raise _fail("%s: no answer within %g s" % (method, self.timeout), TIMEOUT) from None
        except http.client.IncompleteRead as e:
            raise _fail("the server closed after %d bytes" % len(e.partial)) from None
        except (OSError, http.client.HTTPException) as e:
            raise _fail(
                "%s: %s" % (method, e.__class__.__name__ + (": %s" % e if str(e) else ""))
            ) from None
        finally:
            conn.close()

    def _read_bounded(self, resp, limit, end):
        out = bytearray()
        while True:
            self._check_deadline(end)
            part = resp.read(min(self.chunk, limit + 1 - len(out)))
            if not part:
                return bytes(out)
            out += part
            if len(out) > limit:
                raise _fail("response over %d bytes" % limit)

    def _read_into(self, resp, sink, end):
        buf = bytearray(self.chunk)
        n = 0
        expected = resp.length  # None: chunked or close-delimited
        while True:
            self._check_deadline(end)
            k = resp.readinto(buf)
            if not k:
                break
            off = 0
            while off < k:
                w = sink.write(buf, off, k - off)
                if not w:
                    raise _fail("the sink took no byte (storage full?) after %d bytes" % n)
                off += w
            n += k
        if expected is not None and resp.length:
            raise _fail("the server closed after %d bytes" % n)
        return n

    def _check_deadline(self, end):
        if time.monotonic() > end:
            raise _fail("the request took longer than %g s" % self.deadline, TIMEOUT)
