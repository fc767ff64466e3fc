"""The URL-mode fetcher against real servers on 127.0.0.1, and its code mapping."""

import ftplib
import shutil
import socket
import ssl
import subprocess
import threading

import pytest
from http_rig import Server, static

from qfota_tools.simulators.ec200 import fetch as fetch_mod
from qfota_tools.simulators.ec200.fetch import fetch, redact

# pyftpdlib imports asyncore/asynchat, deprecated in 3.11
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

PACKAGE = bytes(range(256)) * 300  # 76800 bytes


@pytest.fixture
def www(tmp_path):
    (tmp_path / "fw.bin").write_bytes(PACKAGE)
    with Server(static(tmp_path)) as srv:
        yield srv.base


@pytest.fixture
def ftp(tmp_path):
    from ftp_server import FtpServer

    (tmp_path / "fw.bin").write_bytes(PACKAGE)
    with FtpServer(tmp_path, users=[("alice", "s3cr:t@x")], anonymous=True) as port:
        yield "127.0.0.1:%d" % port


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port  # nobody listens there now: connecting is refused


@pytest.fixture
def silent():
    """A server that accepts TCP (backlog) and never says a word."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(4)
    yield s.getsockname()[1]
    s.close()


def _raw_http(reply, then_close):
    """A one-shot server that answers with ``reply`` and then closes or stalls."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    done = threading.Event()

    def serve():
        c, _ = s.accept()
        c.recv(4096)
        c.sendall(reply)
        if not then_close:
            done.wait(5)
        c.close()
        s.close()

    threading.Thread(target=serve, daemon=True).start()
    return s.getsockname()[1], done


# ---- HTTP ---------------------------------------------------------------------------


def test_http_ok(www):
    code, data, detail = fetch(www + "/fw.bin")
    assert (code, data) == (0, PACKAGE) and "76800 bytes" in detail


@pytest.mark.parametrize("path, code", [("/missing.bin", 711), ("/", 0)])
def test_http_missing_file_is_a_url_error(www, path, code):
    got = fetch(www + path)
    assert got[0] == code


def test_http_other_status_is_response_failed():
    port, _ = _raw_http(b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n", True)
    code, data, detail = fetch("http://127.0.0.1:%d/fw.bin" % port, timeout=2)
    assert (code, data) == (723, None) and "503" in detail


def test_http_refused():
    assert fetch("http://127.0.0.1:%d/fw.bin" % _free_port(), timeout=2)[0] == 716


def test_http_dns_failure(monkeypatch):
    def no_dns(*args, **kw):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    assert fetch("http://fota.example.invalid/fw.bin")[0] == 714
    assert fetch("ftp://fota.example.invalid/fw.bin")[0] == 604


def test_http_no_response_times_out(silent):
    code, _, detail = fetch("http://127.0.0.1:%d/fw.bin" % silent, timeout=0.3)
    assert code == 728 and "timeout" in detail


def test_http_body_stalls_read_timeout():
    port, done = _raw_http(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789", False)
    assert fetch("http://127.0.0.1:%d/fw.bin" % port, timeout=0.3)[0] == 722
    done.set()


def test_http_body_cut_short_is_socket_closed():
    port, _ = _raw_http(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789", True)
    assert fetch("http://127.0.0.1:%d/fw.bin" % port, timeout=2)[0] == 719


def test_http_bad_urls():
    assert fetch("http:///fw.bin")[0] == 711
    assert fetch("http://127.0.0.1:99999/fw.bin")[0] == 711
    assert fetch("gopher://x/y")[0] == 711


@pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl to make a certificate")
def test_https_self_signed(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    (tmp_path / "fw.bin").write_bytes(PACKAGE)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert), str(key))
    with Server(static(tmp_path), tls=ctx) as srv:
        url = srv.base + "/fw.bin"
        code, data, detail = fetch(url, timeout=3)
        assert code == 716 and data is None and "CERTIFICATE_VERIFY_FAILED" in detail
        assert fetch(url, timeout=3, cafile=str(cert))[:2] == (0, PACKAGE)


def test_http_too_big(www):
    assert fetch(www + "/fw.bin", max_bytes=1000)[0] == 729


# ---- FTP ----------------------------------------------------------------------------


def test_ftp_user_password(ftp):
    # the password holds ':' and '@', percent-encoded in the URL
    code, data, _ = fetch("ftp://alice:s3cr%3At%40x@" + ftp + "/fw.bin")
    assert (code, data) == (0, PACKAGE)


def test_ftp_anonymous(ftp):
    assert fetch("ftp://" + ftp + "/fw.bin")[:2] == (0, PACKAGE)


def test_ftp_wrong_password(ftp):
    code, data, detail = fetch("ftp://alice:nope@" + ftp + "/fw.bin")
    assert (code, data) == (625, None) and detail.startswith("login: 530")


def test_ftp_missing_file(ftp):
    code, _, detail = fetch("ftp://alice:s3cr%3At%40x@" + ftp + "/nothere.bin")
    assert code == 627 and detail.startswith("retr: 550")


def test_ftp_refused():
    assert fetch("ftp://u:p@127.0.0.1:%d/fw.bin" % _free_port(), timeout=2)[0] == 605


def test_ftp_no_greeting_times_out(silent):
    assert fetch("ftp://127.0.0.1:%d/fw.bin" % silent, timeout=0.3)[0] == 609


def test_ftp_default_port_and_credentials(monkeypatch):
    seen = {}

    def connect(self, host, port):
        seen["addr"] = (host, port)
        raise ConnectionRefusedError

    monkeypatch.setattr(ftplib.FTP, "connect", connect)
    assert fetch("ftp://u:p@fota.example.com/fw.bin")[0] == 605
    assert seen["addr"] == ("fota.example.com", 21)


def test_ftp_reply_table_follows_the_note():
    from qfota.errors import meaning

    assert fetch_mod.FTP_REPLY[530] == 625 and meaning(625) == "Failed to login FTP"
    assert meaning(fetch_mod.FTP_REPLY[550]) == "Requested action not taken"
    assert meaning(fetch_mod.FTP_REPLY[421]).startswith("Service not available")


# ---- redaction ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, want",
    [
        (
            'AT+QFOTADL="ftp://bob:hunter2@1.2.3.4:21/a.bin",1',
            'AT+QFOTADL="ftp://bob:***@1.2.3.4:21/a.bin",1',
        ),
        ("ftp://bob:p@ss@host/a.bin", "ftp://bob:***@host/a.bin"),
        ("FTP://bob:x@h/f and http://u:v@h2/", "FTP://bob:***@h/f and http://u:***@h2/"),
        ("ftp://anon@host/a.bin", "ftp://anon@host/a.bin"),
        ("http://host:8080/a.bin", "http://host:8080/a.bin"),
        # A comma is no end of the password (the engine accepts one in an FTP URL).
        ('AT+QFOTADL="ftp://u:p,w@h/x.bin",1,0,100', 'AT+QFOTADL="ftp://u:***@h/x.bin",1,0,100'),
        ("see ftp://host/a.bin, mail x@y", "see ftp://host/a.bin, mail x@y"),
    ],
)
def test_redact(text, want):
    assert redact(text) == want
