"""The tests' HTTP server: a client that leaves mid-answer is counted, not a traceback on
the suite's output; a handler that fails otherwise fails its test."""

import http.server
import socket
import struct
import time

import pytest
from http_rig import Server, static


def test_a_client_that_leaves_mid_answer_is_counted_not_printed(tmp_path, capfd):
    (tmp_path / "big.bin").write_bytes(b"\x55" * (8 << 20))  # more than the socket buffers
    with Server(static(tmp_path)) as srv:
        c = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        c.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        assert c.recv(100).startswith(b"HTTP/1.")
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()  # a reset: the server's next write fails
        end = time.monotonic() + 20
        while srv.dropped == 0 and time.monotonic() < end:
            time.sleep(0.05)
        assert srv.dropped == 1
    assert "Traceback" not in capfd.readouterr().err


class _Fails(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        raise ValueError("a bug in the test's handler")


def test_a_handler_that_fails_fails_the_test(capfd):
    with pytest.raises(AssertionError, match="a bug in the test's handler"):
        with Server(_Fails) as srv:
            with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as c:
                c.sendall(b"GET / HTTP/1.0\r\n\r\n")
                c.recv(100)  # the server closes it
    capfd.readouterr()
