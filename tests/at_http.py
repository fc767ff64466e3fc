"""Test helpers: a raw AT client for the modem's HTTP commands over a pty, and a small
HTTP server on 127.0.0.1 (Range, POST echo, PUT store) to stand behind the simulator.

The client writes exactly the commands of the contract (see the simulator's module doc)
and reads the answers byte for byte: it is the test's own view of the wire, not the
engine's ``httpat`` module.
"""

import http.server
import os
import re
import select
import threading
import time
import tty
from urllib.parse import urlsplit

from http_rig import Server

FINAL = re.compile(rb"\r\n(OK|ERROR|\+CME ERROR: \d+|CONNECT)\r\n")
READ_END = re.compile(rb"\r\nOK\r\n\r\n\+QHTTPREAD: (\d+)\r\n")


class AtError(AssertionError):
    pass


class AtModem:
    """The host end of the simulator's pty."""

    def __init__(self, path):
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self.fd)
        self.buf = bytearray()

    def close(self):
        os.close(self.fd)

    def send(self, data):
        view = memoryview(data)
        while view:
            select.select([], [self.fd], [], 5)
            n = os.write(self.fd, view)
            view = view[n:]

    def _fill(self, deadline, what):
        left = deadline - time.monotonic()
        r, _, _ = select.select([self.fd], [], [], max(0, left))
        if not r:
            raise AtError("no %s within the bound; last bytes %r" % (what, bytes(self.buf[-300:])))
        self.buf += os.read(self.fd, 65536)

    def expect(self, regex, timeout=5.0):
        """Consume up to the first match of ``regex``; return (match, bytes before it)."""
        deadline = time.monotonic() + timeout
        while True:
            m = regex.search(bytes(self.buf))  # a copy: the match outlives the buffer's bytes
            if m:
                before = bytes(self.buf[: m.start()])
                del self.buf[: m.end()]
                return m, before
            self._fill(deadline, regex.pattern)

    def take(self, n, timeout=10.0):
        deadline = time.monotonic() + timeout
        while len(self.buf) < n:
            self._fill(deadline, "%d bytes" % n)
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def at(self, line, timeout=5.0):
        """Send one AT line; return (final result code, the text before it)."""
        self.send(line.encode() + b"\r")
        m, before = self.expect(FINAL, timeout)
        return m.group(1).decode(), before

    def ok(self, line, timeout=5.0):
        final, before = self.at(line, timeout)
        if final != "OK":
            raise AtError("%s -> %s" % (line, final))
        return before

    def with_data(self, line, data, timeout=5.0):
        """A command with a CONNECT data phase: the final code after the data."""
        final, _ = self.at(line, timeout)
        if final != "CONNECT":
            return final
        self.send(data)
        m, _ = self.expect(FINAL, timeout)
        return m.group(1).decode()

    def urc(self, name, timeout=15.0):
        """The next ``+NAME: ...`` line's numbers."""
        m, _ = self.expect(re.compile(rb"\r\n\+" + name.encode() + rb": ([0-9,]+)\r\n"), timeout)
        return [int(x) for x in m.group(1).split(b",")]

    def setup(self, cid=1):
        """Echo off, the PDP context up, the modem's HTTP on it."""
        self.ok("ATE0")
        self.ok("AT+QIACT=%d" % cid)
        self.ok('AT+QHTTPCFG="contextid",%d' % cid)

    def set_url(self, url):
        final = self.with_data("AT+QHTTPURL=%d,10" % len(url), url.encode())
        if final != "OK":
            raise AtError("QHTTPURL -> %s" % final)

    def read(self, length=None, responseheader=False, timeout=20.0):
        """AT+QHTTPREAD: (head, body, err). With ``length`` the body is taken by count, as an
        MCU does; without, up to the trailer (small bodies only)."""
        final, _ = self.at("AT+QHTTPREAD=30")
        if final != "CONNECT":
            raise AtError("QHTTPREAD -> %s" % final)
        head = b""
        if responseheader:
            m, head = self.expect(re.compile(rb"\r\n\r\n"), timeout)
            head += b"\r\n\r\n"
        if length is None:
            m, body = self.expect(READ_END, timeout)
            return head, body, int(m.group(1))
        body = self.take(length, timeout)
        m, rest = self.expect(READ_END, timeout)
        if rest:
            raise AtError("%d bytes after the body: %r" % (len(rest), rest[:100]))
        return head, body, int(m.group(1))

    def request(self, method, url, headers=(), body=None, rsp_s=10, read=True):
        """One request the way the MCU sends it with requestheader 1: the whole request
        written after CONNECT. Returns (urc numbers, head, body, read err)."""
        self.ok('AT+QHTTPCFG="requestheader",1')
        self.set_url(url)
        u = urlsplit(url)
        target = (u.path or "/") + ("?" + u.query if u.query else "")
        raw = "%s %s HTTP/1.1\r\nHost: %s\r\n" % (method, target, u.netloc)
        for k, v in headers:
            raw += "%s: %s\r\n" % (k, v)
        if body is not None:
            raw += "Content-Length: %d\r\n" % len(body)
        data = (raw + "\r\n").encode() + (body or b"")
        if method == "GET":
            final = self.with_data("AT+QHTTPGET=%d,%d" % (rsp_s, len(data)), data)
            name = "QHTTPGET"
        else:
            final = self.with_data("AT+QHTTPPOST=%d,10,%d" % (len(data), rsp_s), data)
            name = "QHTTPPOST"
        if final != "OK":
            raise AtError("%s -> %s" % (name, final))
        got = self.urc(name, timeout=rsp_s + 10)
        if got[0] != 0 or not read:
            return got, b"", b"", None
        head, rbody, err = self.read(got[2] if len(got) > 2 else None)
        return got, head, rbody, err


# ---- a test HTTP server on 127.0.0.1 ------------------------------------------------------
class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def _send(self, code, body, extra=()):
        self.send_response(code)
        for k, v in extra:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        srv = self.server
        srv.seen.append((self.command, self.path, dict(self.headers)))
        if self.path == "/hang":
            srv.release.wait(30)
            return self._send(200, b"late")
        if self.path == "/short":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"x" * 100)
            self.close_connection = True
            return
        if self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b"hello ", b"chunked ", b"world"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
            return
        data = srv.files.get(self.path.split("?")[0])
        if data is None:
            return self._send(404, b"no such file")
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes="):
            a, _, b = rng[6:].partition("-")
            first = int(a)
            last = min(int(b) if b else len(data) - 1, len(data) - 1)
            part = data[first : last + 1]
            return self._send(
                206, part, [("Content-Range", "bytes %d-%d/%d" % (first, last, len(data)))]
            )
        self._send(200, data, [("Content-Type", "application/octet-stream")])

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n)

    def do_POST(self):
        body = self._body()
        self.server.seen.append((self.command, self.path, dict(self.headers), body))
        self._send(200, b"posted:" + body, [("Content-Type", "text/plain")])

    def do_PUT(self):
        body = self._body()
        self.server.seen.append((self.command, self.path, dict(self.headers), body))
        self.server.files[self.path] = body
        self._send(200, b"stored %d" % len(body))


class WebServer(Server):
    """``http_rig.Server`` with this module's handler; ``files`` maps paths to bytes."""

    def __init__(self, tls=None):
        super().__init__(_Handler, tls)
        self.files = {}
        self.seen = []
        self.release = threading.Event()

    def url(self, path):
        return self.base + path

    def __exit__(self, *exc):
        self.release.set()
        super().__exit__(*exc)
