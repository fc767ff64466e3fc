"""A pyftpdlib FTP server on loopback for a test, in a thread that owns it.

pyftpdlib's ``close_all()`` from another thread closes the IO loop under the thread
still polling it (``OSError: [Errno 9] Bad file descriptor`` in that thread, pytest's
unhandled-thread warning): here the thread serves in short rounds until told to stop,
then closes everything itself, and ``stop()`` waits for it.

    with FtpServer(root, users=[("alice", "pw")], anonymous=False) as port: ...
"""

import logging
import threading


class FtpServer:
    def __init__(self, root, users=(), anonymous=False):
        from pyftpdlib.authorizers import DummyAuthorizer
        from pyftpdlib.handlers import FTPHandler
        from pyftpdlib.servers import FTPServer

        logging.getLogger("pyftpdlib").setLevel(logging.WARNING)
        auth = DummyAuthorizer()
        for user, password in users:
            auth.add_user(user, password, str(root))
        if anonymous:
            auth.add_anonymous(str(root))
        handler = type("H", (FTPHandler,), {"authorizer": auth, "auth_failed_timeout": 0.01})
        self.server = FTPServer(("127.0.0.1", 0), handler)
        self.port = self.server.address[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="test-ftp", daemon=True)
        self._thread.start()

    def _serve(self):
        try:
            while not self._stop.is_set():
                self.server.serve_forever(timeout=0.05, blocking=False, handle_exit=False)
        finally:
            self.server.close_all()

    def stop(self):
        self._stop.set()
        self._thread.join(30)
        assert not self._thread.is_alive(), "the FTP server thread did not stop"

    def __enter__(self):
        return self.port

    def __exit__(self, *exc):
        self.stop()
