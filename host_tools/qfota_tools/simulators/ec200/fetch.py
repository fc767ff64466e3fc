"""Real downloads for the simulator's URL modes, with failures mapped to the note's codes.

``fetch(url)`` returns ``(code, data, detail)``: ``code`` is 0 with the package bytes in
``data``, or an <FTP_err> (Table 2) / <HTTP_err> (Table 3) code with ``data`` None;
``detail`` says what happened in words (never with the password: see ``redact``).
"""

import ftplib
import http.client
import socket
import ssl
import time
from urllib.parse import unquote, urlsplit

from qfota.errors import redact  # noqa: F401 - one redaction for host and firmware

# FTP reply (RFC 959) -> <FTP_err>. Table 2's 614..630 repeat the RFC's reply texts one to
# one, so a server's refusal maps to the code whose meaning is that reply's meaning.
FTP_REPLY = {
    421: 614,  # Service not available, closing control connection
    425: 615,  # Can't open data connection
    426: 616,  # Connection closed; transfer aborted
    450: 617,  # Requested file action not taken (file busy)
    451: 618,  # Requested action aborted: local error in processing
    452: 619,  # Requested action not taken: insufficient system storage
    500: 620,  # Syntax error, command unrecognized
    501: 621,  # Syntax error in parameters or arguments
    502: 622,  # Command not implemented
    503: 623,  # Bad sequence of commands
    504: 624,  # Command not implemented for that parameter
    530: 625,  # Not logged in: wrong user name or password -> "Failed to login FTP"
    532: 626,  # Need account for storing files
    550: 627,  # Requested action not taken: file unavailable (missing file, no access)
    551: 628,  # Requested action aborted: page type unknown
    552: 629,  # Requested file action aborted (exceeded storage allocation)
    553: 630,  # Requested action not taken: file name not allowed
}

# Failures below the FTP dialogue -> <FTP_err>.
FTP_DNS = 604  # name does not resolve: "DNS parse failed"
FTP_REFUSED = 605  # control connection refused / unreachable: "Network error"
FTP_CLOSED = 606  # server closed the control connection: "Control connection closed"
FTP_RESET = 608  # connection reset: "Socket closed by peer"
FTP_TIMEOUT = 609  # no answer in time: "Timeout error"
FTP_BADURL = 610  # URL cannot be parsed (no host, bad port): "Invalid parameter"
FTP_DATA = 615  # data connection cannot be opened: "Failed to open data connection"
FTP_UNKNOWN = 601  # anything else: "FTP unknown error"

# HTTP(S) failures -> <HTTP_err>.
HTTP_BADURL = 711  # URL cannot be parsed: "HTTP(S) URL error"
HTTP_NOT_FOUND = 711  # 404/410: the URL names nothing there: "HTTP(S) URL error"
HTTP_STATUS = 723  # any other status than 200: "HTTP(S) response failed"
HTTP_DNS = 714  # name does not resolve: "HTTP(S) DNS error"
HTTP_REFUSED = 716  # TCP refused: "HTTP(S) socket connection error"
HTTP_TLS = 716  # TLS handshake / certificate refused: part of opening the connection
HTTP_CONNECT_TIMEOUT = 702  # connecting took too long: "HTTP(S) timeout"
HTTP_RESPONSE_TIMEOUT = 728  # no response header in time: "Wait HTTP(S) response timeout"
HTTP_READ_TIMEOUT = 722  # body stopped arriving: "HTTP(S) read timeout"
HTTP_CLOSED = 719  # server closed early (no response, short body): "HTTP(S) socket closed"
HTTP_RESET = 717  # connection reset while reading: "HTTP(S) socket read error"
HTTP_BAD_RESPONSE = 721  # malformed response: "HTTP(S) data decode error"
HTTP_TOO_BIG = 729  # larger than max_bytes: "Allocate memory failed"
HTTP_NETWORK = 710  # other OS-level network failures: "HTTP(S) network error"


def fetch(url, timeout=10.0, cafile=None, max_bytes=64 << 20):
    """Download ``url`` (ftp, http, https). Returns ``(code, data_or_None, detail)``."""
    scheme = url.split(":", 1)[0].lower()
    if scheme == "ftp":
        return fetch_ftp(url, timeout, max_bytes)
    if scheme in ("http", "https"):
        return fetch_http(url, timeout, cafile, max_bytes)
    return HTTP_BADURL, None, "unsupported scheme"


def _parse(url, default_port):
    u = urlsplit(url)
    host = u.hostname
    port = u.port or default_port  # raises ValueError for a bad port
    if not host:
        raise ValueError("no host")
    return u, host, port


def fetch_ftp(url, timeout=10.0, max_bytes=64 << 20):
    try:
        u, host, port = _parse(url, 21)
    except ValueError as exc:
        return FTP_BADURL, None, "bad URL: %s" % exc
    user = unquote(u.username) if u.username else "anonymous"
    password = unquote(u.password) if u.password is not None else "anonymous@"
    path = unquote(u.path.lstrip("/"))
    ftp = ftplib.FTP(timeout=timeout)
    stage = "connect"
    try:
        ftp.connect(host, port)
        stage = "login"
        ftp.login(user, password)
        stage = "retr"
        chunks = []
        size = [0]

        def take(b):
            size[0] += len(b)
            if size[0] > max_bytes:
                raise MemoryError
            chunks.append(b)

        ftp.retrbinary("RETR " + path, take)
        data = b"".join(chunks)
        return 0, data, "%d bytes" % len(data)
    except ftplib.error_perm as exc:
        reply = _reply_code(exc)
        if stage == "login" and reply not in FTP_REPLY:
            reply = 530
        return FTP_REPLY.get(reply, FTP_UNKNOWN), None, "%s: %s" % (stage, exc)
    except ftplib.error_temp as exc:
        return FTP_REPLY.get(_reply_code(exc), FTP_UNKNOWN), None, "%s: %s" % (stage, exc)
    except socket.gaierror as exc:
        return FTP_DNS, None, "DNS: %s" % exc
    except (socket.timeout, TimeoutError):
        return FTP_TIMEOUT, None, "%s: timeout" % stage
    except ConnectionRefusedError:
        return (FTP_DATA if stage == "retr" else FTP_REFUSED), None, "%s: refused" % stage
    except ConnectionResetError:
        return FTP_RESET, None, "%s: connection reset" % stage
    except EOFError:
        return FTP_CLOSED, None, "%s: control connection closed" % stage
    except MemoryError:
        return 619, None, "larger than %d bytes" % max_bytes
    except OSError as exc:
        return (FTP_DATA if stage == "retr" else FTP_REFUSED), None, "%s: %s" % (stage, exc)
    except ftplib.Error as exc:
        return FTP_UNKNOWN, None, "%s: %s" % (stage, exc)
    finally:
        try:
            ftp.close()
        except OSError:
            pass


def _reply_code(exc):
    text = str(exc)
    return int(text[:3]) if text[:3].isdigit() else 0


def fetch_http(url, timeout=10.0, cafile=None, max_bytes=64 << 20):
    try:
        u, host, port = _parse(url, 443 if url[:5].lower() == "https" else 80)
    except ValueError as exc:
        return HTTP_BADURL, None, "bad URL: %s" % exc
    if u.scheme.lower() == "https":
        ctx = ssl.create_default_context(cafile=cafile)
        conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=ctx)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    path = (u.path or "/") + ("?" + u.query if u.query else "")
    stage = "connect"
    try:
        conn.connect()
        stage = "response"
        conn.request("GET", path, headers={"User-Agent": "qfota-sim"})
        resp = conn.getresponse()
        if resp.status != 200:
            code = HTTP_NOT_FOUND if resp.status in (404, 410) else HTTP_STATUS
            return code, None, "HTTP %d %s" % (resp.status, resp.reason)
        stage = "read"
        chunks = []
        size = 0
        start = time.monotonic()
        while True:
            b = resp.read(65536)
            if not b:
                break
            size += len(b)
            if size > max_bytes:
                return HTTP_TOO_BIG, None, "larger than %d bytes" % max_bytes
            chunks.append(b)
        data = b"".join(chunks)
        declared = resp.getheader("Content-Length")
        if declared and declared.isdigit() and int(declared) != len(data):
            return HTTP_CLOSED, None, "read: %d of %s bytes" % (len(data), declared)
        ms = int((time.monotonic() - start) * 1000)
        return 0, data, "%d bytes in %d ms" % (len(data), ms)
    except socket.gaierror as exc:
        return HTTP_DNS, None, "DNS: %s" % exc
    except ssl.SSLError as exc:  # before OSError: SSLError is one
        return HTTP_TLS, None, "TLS: %s" % exc
    except (socket.timeout, TimeoutError):
        code = {"connect": HTTP_CONNECT_TIMEOUT, "response": HTTP_RESPONSE_TIMEOUT}
        return code.get(stage, HTTP_READ_TIMEOUT), None, "%s: timeout" % stage
    except ConnectionRefusedError:
        return HTTP_REFUSED, None, "connect: refused"
    except (http.client.RemoteDisconnected, http.client.IncompleteRead):
        # before ConnectionResetError: RemoteDisconnected is one
        return HTTP_CLOSED, None, "%s: closed by the server" % stage
    except ConnectionResetError:
        return HTTP_RESET, None, "%s: connection reset" % stage
    except http.client.HTTPException as exc:
        return HTTP_BAD_RESPONSE, None, "%s: %r" % (stage, exc)
    except OSError as exc:
        return HTTP_NETWORK, None, "%s: %s" % (stage, exc)
    finally:
        conn.close()
