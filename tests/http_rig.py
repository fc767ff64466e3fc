"""An HTTP(S) server for tests: 127.0.0.1 on a free port, served from a daemon thread
that is joined on the way out.

A client that goes away in the middle of an answer (a test's short read, a bounded
transport giving up, a download cut on purpose) is counted in ``dropped``, not printed
as a traceback from the server's thread; any other error in a handler is kept in
``errors`` (and printed), and fails the test on the way out."""

import functools
import http.server
import sys
import threading


class Quiet(http.server.SimpleHTTPRequestHandler):
    """Files from a directory (``static``), without a log line per request."""

    def log_message(self, *args):
        pass


def static(directory):
    """The handler that serves the files under ``directory``."""
    return functools.partial(Quiet, directory=str(directory))


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, handler, tls=None):
        super().__init__(("127.0.0.1", 0), handler)
        if tls is not None:  # an ssl.SSLContext: https
            self.socket = tls.wrap_socket(self.socket, server_side=True)
        self.scheme = "https" if tls is not None else "http"
        self.port = self.server_address[1]
        self.base = "%s://127.0.0.1:%d" % (self.scheme, self.port)
        self.dropped = 0
        self.errors = []
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def handle_error(self, request, client_address):
        e = sys.exc_info()[1]
        if isinstance(e, ConnectionError):  # broken pipe, reset, aborted: the client left
            self.dropped += 1
            return
        self.errors.append(e)
        super().handle_error(request, client_address)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.shutdown()
        self.server_close()
        self._thread.join(10)
        if exc[0] is None and self.errors:
            raise AssertionError("the test's HTTP server failed: %r" % self.errors)
