"""Serve a ``Modem`` model on a pseudo-terminal, in a background thread.

    sim = PtySimulator(Modem(timing=FAST), link="/tmp/ec200")
    path = sim.start()          # the slave side: open it like a serial port
    ...
    sim.stop()

With hardware flow control on in the model, the loop reads from the pty master only as
many bytes as ``model.room()`` allows, so the kernel's pty buffer fills and the writer
blocks (or gets partial writes), the way a deasserted CTS holds a real UART. With it off,
everything is read at once and the model's receive buffer decides what is lost. Modem ->
host, with flow control on the loop takes from the model only what the pty has taken (a
QHTTPREAD body waits, as RTS holds a modem); without it, output nobody reads is dropped
past 1 MiB. URL-mode downloads (``fetch.fetch``) and the HTTP AT commands' requests
(``net.run``) run in worker threads. The loop sleeps in ``poll`` until the model's next due
time, the next useful amount of room, or I/O: it never spins. ``http_log`` lists the HTTP
AT commands' requests: method, path (no query), bytes up and down, status, err.

The simulator holds its own descriptor of the slave open, so a host may close and reopen
the port (say, a CPython and then a MicroPython process) without the master seeing EIO.
Inspect the model under ``sim.lock`` (or with ``sim.inspect(fn)``).

The loop's thread owns the pty and wake descriptors: it closes them itself as it ends,
so no descriptor is closed under a thread still polling it (EBADF, or worse, a number
reused by another file); ``stop()`` asks it to end and waits for it and for the fetch
workers, each within a bound.
"""

import errno
import os
import select
import threading
import time
import tty

from . import net
from .fetch import redact

_OUT_MAX = 1 << 20  # modem -> host bytes kept while nobody reads; older ones are dropped
_OUT_HOLD = 16 << 10  # with flow control: taken from the model while less is unwritten


class PtySimulator:
    def __init__(self, model, link=None, log=None, fetch_timeout=10.0, cafile=None, fetcher=None):
        self.model = model
        self.link = link
        self.log = log  # callable(str) for every line sent or received, passwords redacted
        self.fetch_timeout = fetch_timeout
        self.cafile = cafile
        self.fetcher = fetcher  # None: fetch.fetch
        self.lock = threading.Lock()
        self.path = None
        self.last_input = None  # time.monotonic() of the last byte from the host
        self.bytes_in = 0
        self.bytes_out = 0
        self.error = None  # an exception that ended the loop, if any
        self._master = self._slave = None
        self._wake_r = self._wake_w = None
        self._thread = None
        self._stopping = False
        self._t0 = time.monotonic()
        self._ncmd = 0
        self._logbuf = bytearray()
        self._workers = []

    # ---- lifecycle ------------------------------------------------------------------
    def start(self):
        self._master, self._slave = os.openpty()
        tty.setraw(self._master)
        tty.setraw(self._slave)
        os.set_blocking(self._master, False)
        self.path = os.ttyname(self._slave)
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        if self.link:
            if os.path.islink(self.link):
                os.unlink(self.link)
            os.symlink(self.path, self.link)
        self._thread = threading.Thread(target=self._run, name="qfota-sim", daemon=True)
        self._thread.start()
        return self.path

    def stop(self, timeout=10.0):
        """End the loop (it closes the pty) and the fetch workers; each wait is bounded
        (a worker by the fetch's own socket timeout)."""
        self._stopping = True
        self._wake()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout)
        else:
            self._close_fds()  # never started, or already ended
        for w in self._workers:
            w.join(self.fetch_timeout + 2)
        self._workers = [w for w in self._workers if w.is_alive()]
        if self.link and os.path.islink(self.link) and os.readlink(self.link) == self.path:
            os.unlink(self.link)

    def _close_fds(self):
        with self.lock:  # _wake() writes to one of them from other threads
            fds = (self._master, self._slave, self._wake_r, self._wake_w)
            self._master = self._slave = self._wake_r = self._wake_w = None
        for fd in fds:
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    @property
    def running(self):
        return self._thread is not None and self._thread.is_alive()

    def now_ms(self):
        return int((time.monotonic() - self._t0) * 1000)

    def inspect(self, fn):
        """Call ``fn(model)`` under the lock and return its result."""
        with self.lock:
            return fn(self.model)

    def wait_for(self, fn, timeout):
        """Poll ``fn(model)`` (under the lock) until true or ``timeout`` s; its last value."""
        deadline = time.monotonic() + timeout
        while True:
            v = self.inspect(fn)
            if v or time.monotonic() >= deadline:
                return v
            time.sleep(0.01)

    def _wake(self):
        with self.lock:
            if self._wake_w is not None:
                try:
                    os.write(self._wake_w, b"!")
                except OSError:
                    pass

    # ---- the loop ---------------------------------------------------------------------
    def _run(self):
        try:
            self._loop()
        except Exception as exc:  # keep it visible to tests and the CLI
            self.error = exc
            raise
        finally:
            self._close_fds()

    def _loop(self):
        m = self.model
        master, wake_r, log = self._master, self._wake_r, self.log
        assert master is not None and wake_r is not None
        poller = select.poll()
        poller.register(wake_r, select.POLLIN)
        poller.register(master, select.POLLIN)
        pending_in = b""  # read from the pty but not yet taken (flow control changed)
        out = bytearray()
        while not self._stopping:
            now = self.now_ms()
            with self.lock:
                if pending_in:
                    pending_in = pending_in[m.write(pending_in, now) :]
                hold = m.flow_hw and len(out) >= _OUT_HOLD  # RTS: the host is not reading
                got = b"" if hold else m.read(now)
                url = m.take_fetch()
                req = m.take_http()
                due = m.next_due_ms(now)
                if hold and due is not None and due <= now:
                    due = None  # only the held output is due: POLLOUT wakes the loop
                room = m.room(now) if not pending_in else 0
                chunk = self._chunk(m)
                room_due = None
                if room < chunk:
                    room_due = m.room_due_ms(now, chunk)
                cmds = m.commands[self._ncmd :] if log else ()
                self._ncmd = len(m.commands)
            for c in cmds:
                if log:
                    log("> " + redact(c))
            if got:
                out += got
                self.bytes_out += len(got)
                self._log_out(got)
                if len(out) > _OUT_MAX:
                    del out[: len(out) - _OUT_MAX]
            if url:
                self._start_fetch(url)
            if req:
                self._start_http(req)
            if out:
                try:
                    n = os.write(master, out)
                    del out[:n]
                except (BlockingIOError, InterruptedError):
                    pass
            # A chunk, or all the room the model will have (its buffer is smaller than a
            # chunk, or the stall fault leaves less): read exactly that room.
            want_in = room > 0 and (room >= chunk or room_due is None or room_due <= now)
            poller.modify(
                master, (select.POLLIN if want_in else 0) | (select.POLLOUT if out else 0)
            )
            wake = [1000]
            if due is not None:
                wake.append(due - now)
            if room_due is not None and not want_in:
                wake.append(room_due - now)
            timeout = max(0, min(wake))
            for fd, ev in poller.poll(timeout):
                if fd == wake_r:
                    try:
                        os.read(wake_r, 4096)
                    except BlockingIOError:
                        pass
                    continue
                if ev & select.POLLIN and want_in:
                    try:
                        data = os.read(master, min(room, 1 << 16))
                    except (BlockingIOError, InterruptedError):
                        data = b""
                    except OSError as exc:  # EIO: no slave open (we hold one, but be safe)
                        if exc.errno != errno.EIO:
                            raise
                        data = b""
                        time.sleep(0.01)
                    if data:
                        self.last_input = time.monotonic()
                        self.bytes_in += len(data)
                        with self.lock:
                            pending_in = data[m.write(data, self.now_ms()) :]
                elif ev & (select.POLLHUP | select.POLLERR):
                    time.sleep(0.01)  # nobody on the slave side: do not spin

    @staticmethod
    def _chunk(m):
        """Smallest read worth waking for with flow control on: ~20 ms of line rate."""
        if not m.flow_hw or m.baud <= 0:
            return 1
        return max(16, min(m.baud // 10 // 50, 4096))

    def _start_fetch(self, url):
        w = net.start_fetch(
            self.model,
            self.lock,
            url,
            self.now_ms,
            self._wake,
            self.log,
            timeout=self.fetch_timeout,
            cafile=self.cafile,
            fetcher=self.fetcher,
        )
        self._workers = [x for x in self._workers if x.is_alive()] + [w]

    @property
    def http_log(self):
        """The HTTP AT commands' requests so far: dicts of method, path (no query), up and
        down (bytes on the network, headers included), status, err."""
        with self.lock:
            return [dict(e) for e in self.model.http_log]

    def _start_http(self, req):
        w = net.start(self.model, self.lock, req, self.now_ms, self._wake, self.log, self.cafile)
        self._workers = [x for x in self._workers if x.is_alive()] + [w]

    def _log_out(self, data):
        if not self.log:
            return
        self._logbuf += data
        while True:
            i = self._logbuf.find(b"\n")
            if i < 0:
                if len(self._logbuf) > 4096:
                    i = len(self._logbuf) - 1
                else:
                    break
            line = bytes(self._logbuf[: i + 1]).strip(b"\r\n")
            del self._logbuf[: i + 1]
            if line:
                text = line.decode("utf-8", "backslashreplace")
                if len(text) > 200:
                    text = text[:200] + "...(%d chars)" % len(text)
                self.log("< " + redact(text))
