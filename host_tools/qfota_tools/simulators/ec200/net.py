"""The network side of the simulated modem's HTTP(S) AT commands: real HTTP on a socket.

The model (``model.Modem``) builds the whole request (``requestheader`` 0: its own GET or
POST; 1: the host's bytes as written after CONNECT) and hands it out with ``take_http()``;
a driver thread calls ``run(model, lock, req, now_ms, wake)``, which sends it to the host
named by the URL and feeds the answer back with ``model.http_done``. Failures map to the
note's <HTTP_err> codes (Table 3, as ``fetch.py`` maps them for URL mode).

Everything is bounded: the whole exchange (connection, request, header, body) by
``<rsp_s>`` (a body cut by it ends in 722, read timeout), the header block by 16 KiB and the
body by ``req["max"]`` (729). The model's own bound comes 2 s later, as a backstop.
``up``/``down`` count the bytes sent and received on the socket (request and answer, headers
included): the cellular data a request costs, without TCP/IP overhead.
"""

import socket
import ssl
import threading
import time
from urllib.parse import urlsplit

from . import fetch as F
from .fetch import redact

_HEAD_MAX = 16 << 10
_NO_BODY = (204, 304)


class _Closed(Exception):
    """The server closed the connection (or reset it) before the answer was complete."""


class _Conn:
    """A socket with a receive buffer and a byte count."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()
        self.down = 0
        self.eof = False

    def fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout
        self.sock.settimeout(left)
        b = self.sock.recv(65536)
        if not b:
            self.eof = True
            raise _Closed
        self.down += len(b)
        self.buf += b

    def take(self, n):
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def line(self, deadline, limit=1024):
        while b"\r\n" not in self.buf:
            if len(self.buf) > limit:
                raise ValueError("line too long")
            self.fill(deadline)
        i = self.buf.find(b"\r\n")
        return self.take(i + 2)


def perform(req, cafile=None):
    """Send ``req["data"]`` to the URL's host; return the result dict ``http_done`` takes."""
    rsp_s = req["rsp_s"]
    try:
        u = urlsplit(req["url"])
        host = u.hostname
        port = u.port or (443 if u.scheme.lower() == "https" else 80)
        if not host:
            raise ValueError("no host")
    except ValueError:
        return {"err": F.HTTP_BADURL, "detail": "bad URL"}
    deadline = time.monotonic() + rsp_s
    conn = None
    stage = "connect"
    try:
        sock = socket.create_connection((host, port), timeout=rsp_s)
        if u.scheme.lower() == "https":
            ctx = ssl.create_default_context(cafile=cafile)
            sock = ctx.wrap_socket(sock, server_hostname=host)
        conn = _Conn(sock)
        stage = "send"
        sock.settimeout(max(0.001, deadline - time.monotonic()))
        sock.sendall(req["data"])
        stage = "response"
        return _response(conn, req, deadline)
    except socket.gaierror:
        return {"err": F.HTTP_DNS, "detail": "DNS"}
    except ssl.SSLError as exc:
        return {"err": F.HTTP_TLS, "detail": "TLS: %s" % exc}
    except (socket.timeout, TimeoutError):
        code = F.HTTP_CONNECT_TIMEOUT if stage == "connect" else F.HTTP_RESPONSE_TIMEOUT
        return _counted(conn, req, {"err": code, "detail": "%s: timeout" % stage})
    except ConnectionRefusedError:
        return {"err": F.HTTP_REFUSED, "detail": "connect: refused"}
    except (_Closed, ConnectionResetError, BrokenPipeError):
        code = 718 if stage == "send" else F.HTTP_CLOSED  # socket write error / closed
        return _counted(conn, req, {"err": code, "detail": "%s: closed by the server" % stage})
    except ValueError as exc:
        return _counted(conn, req, {"err": F.HTTP_BAD_RESPONSE, "detail": str(exc)})
    except OSError as exc:
        return _counted(conn, req, {"err": F.HTTP_NETWORK, "detail": "%s: %s" % (stage, exc)})
    finally:
        if conn is not None:
            conn.sock.close()


def _counted(conn, req, res):
    if conn is not None:
        res["up"] = len(req["data"])
        res["down"] = conn.down
    return res


def _response(conn, req, deadline):
    # The status line and headers, within <rsp_s>; a 1xx answer is skipped.
    while True:
        head = bytearray()
        while True:
            line = conn.line(deadline)
            head += line
            if len(head) > _HEAD_MAX:
                raise ValueError("response header over %d bytes" % _HEAD_MAX)
            if line == b"\r\n":
                break
        parts = bytes(head).split(b"\r\n", 1)[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
            raise ValueError("not an HTTP response")
        status = int(parts[1])
        if status >= 200:
            break
    fields = {}
    for raw in bytes(head).split(b"\r\n")[1:]:
        if b":" in raw:
            k, v = raw.split(b":", 1)
            fields[k.strip().lower()] = v.strip()
    res = {"err": 0, "status": status, "head": bytes(head), "body_err": 0}
    length = fields.get(b"content-length")
    chunked = b"chunked" in fields.get(b"transfer-encoding", b"").lower()
    if req["method"] == "HEAD" or status in _NO_BODY:
        res["length"] = int(length) if length and length.isdigit() else 0
        res["body"] = b""
        return _counted(conn, req, res)
    limit = req["max"]
    body = bytearray()
    try:
        if chunked:
            res["length"] = None
            while True:
                size = conn.line(deadline).split(b";")[0].strip()
                n = int(size, 16)
                if n == 0:
                    break
                if len(body) + n > limit:
                    res["body_err"] = 729  # allocate memory failed
                    break
                while len(conn.buf) < n + 2:
                    conn.fill(deadline)
                body += conn.take(n)
                conn.take(2)
        elif length is not None:
            if not length.isdigit():
                raise ValueError("bad Content-Length")
            want = int(length)
            res["length"] = want
            if want > limit:
                res["body_err"] = 729
                want = 0
            while len(conn.buf) < want:
                conn.fill(deadline)
            body += conn.take(want)
        else:  # close-delimited
            res["length"] = None
            while len(conn.buf) <= limit:
                conn.fill(deadline)
            res["body_err"] = 729
    except _Closed:
        if length is not None or chunked:
            res["body_err"] = F.HTTP_CLOSED  # the server closed before the end
        body += conn.take(len(conn.buf))
    except (socket.timeout, TimeoutError):
        res["body_err"] = F.HTTP_READ_TIMEOUT
        body += conn.take(len(conn.buf))
    except ConnectionResetError:
        res["body_err"] = F.HTTP_RESET
    except ValueError:  # a bad chunk size
        res["body_err"] = F.HTTP_BAD_RESPONSE
    res["body"] = bytes(body[:limit])
    return _counted(conn, req, res)


def start_fetch(
    model, lock, url, now_ms, wake=None, log=None, timeout=10.0, cafile=None, fetcher=None
):
    """URL modes (AT+QFOTADL=<url>): ``fetch.fetch`` (or ``fetcher``, same signature) in a
    new daemon thread, its result to ``model.fetch_done``; returns the thread."""
    if log:
        log("* fetch " + redact(url))
    w = threading.Thread(
        target=_run_fetch,
        args=(model, lock, url, now_ms, wake, log, timeout, cafile, fetcher or F.fetch),
        name="qfota-sim-fetch",
        daemon=True,
    )
    w.start()
    return w


def _run_fetch(model, lock, url, now_ms, wake, log, timeout, cafile, fetcher):
    try:
        code, data, detail = fetcher(url, timeout=timeout, cafile=cafile)
    except Exception as exc:  # a fetcher bug must not hang the model
        code, data, detail = 701 if url[:4].lower() == "http" else 601, None, repr(exc)
    if log:
        log("* fetch result %d: %s" % (code, redact(detail)))
    with lock:
        model.fetch_done(code, data, now_ms())
    if wake:
        wake()


def start(model, lock, req, now_ms, wake=None, log=None, cafile=None):
    """Run ``req`` in a new daemon thread (``run``); returns the thread."""
    w = threading.Thread(
        target=run,
        args=(model, lock, req, now_ms, wake, log, cafile),
        name="qfota-sim-http",
        daemon=True,
    )
    w.start()
    return w


def run(model, lock, req, now_ms, wake=None, log=None, cafile=None):
    """Worker-thread body: perform ``req`` and give the model the result."""
    try:
        res = perform(req, cafile=cafile)
    except Exception as exc:  # a driver bug must not hang the model: it says 701
        res = {"err": 701, "detail": repr(exc)}
    if log:
        log(
            "* http %s %s: err %d, status %s, up %d, down %d%s"
            % (
                req["method"],
                req["path"],
                res["err"],
                res.get("status"),
                res.get("up", 0),
                res.get("down", 0),
                (", " + res["detail"]) if res.get("detail") else "",
            )
        )
    with lock:
        model.http_done(req["id"], res, now_ms())
    if wake:
        wake()
