"""The modem transport: HTTP requests through the modem's own HTTP(S) AT commands
(``qfota.httpat``), over a qfota port (``UartPort``, ``TtyPort``, the host tools' port:
``readinto(buf)``, ``write(buf, off, n)``, ``wait(ms)``, ``wait_writable(ms)``).

    t = ModemTransport(port, cid=1)
    status, body = t.request("GET", "http://10.0.0.2:8080/api", (("Authorization", auth),))
    status, n = t.request("GET", url, (("Range", "bytes=0-32767"),), sink=f)

``request(method, url, headers=(), body=None, sink=None, limit=4096) -> (status, result)``:
``sink`` None: the body as bytes, refused over ``limit``; ``sink`` (``write(buf, off, n)``,
MicroPython stream style): the body goes there and ``result`` is the count written, only
for a 2xx answer (another status writes nothing: the caller sees the status). Raises
``qfota.errors.FotaError``: the modem's ``<err>`` (701-730) as ``code`` (kind MODEM), TIMEOUT
when a wait ran out, FAILED otherwise, REFUSED for bad input (nothing was sent).

The body goes from the receive buffer to the sink with ``write(buf, off, n)``: no copy, no
per-byte work, nothing allocated (``lock_heap=True`` runs it under ``heap_lock``). The last
``httpat.HOLD`` bytes are written only once the modem's ``+QHTTPREAD: 0`` confirmed them:
after a failure the sink holds only body bytes (a download resumes from its size).
Every byte goes out through ``_write``: one write path, bounded by ``stall_ms``.
"""

from qfota.compat import heap_lock, heap_unlock, ticks_diff, ticks_ms
from qfota.errors import FAILED, INTERRUPTED, TIMEOUT, FotaError
from qfota.httpat import HOLD, HttpAt

RX = 1024  # bytes of the receive buffer: the body goes to the sink in pieces of this


class _Bytes:
    """The body of a known length, gathered for ``sink=None`` (at most ``limit`` bytes)."""

    def __init__(self, n):
        self.buf = bytearray(n)
        self.n = 0

    def write(self, buf, off, n):
        self.buf[self.n : self.n + n] = buf[off : off + n]
        self.n += n
        return n


class ModemTransport:
    """``cid``, ``apn``, ``timeouts`` (``httpat.TIMEOUTS`` by name), ``trace`` (EV_TX/EV_RX
    events, Authorization redacted), ``sslctxid`` (https) go to ``httpat.HttpAt``; ``on_event(ev, a, b)`` gets
    its events between calls into it; ``rx``: the receive buffer's size (``self.rx``, which
    a caller may replace between requests)."""

    def __init__(
        self,
        port,
        cid=1,
        apn=None,
        timeouts=None,
        trace=False,
        on_event=None,
        rx=RX,
        lock_heap=False,
        sslctxid=None,
    ):
        self.core = HttpAt(cid, apn, timeouts, trace, sslctxid)
        self.port = port
        self.on_event = on_event
        self.rx = bytearray(rx)
        self.lock_heap = lock_heap
        self.stall_ms = self.core.timeouts["stall_ms"]
        self._locked = False
        self._sink = None
        self._into = None
        self._failed = None  # the sink's failure: the body is read on, and dropped
        self._left = self._end = 0
        self.written = 0

    def forget(self):
        """After the modem rebooted (an update): set its context and settings up afresh."""
        self.core.forget()

    def request(self, method, url, headers=(), body=None, sink=None, limit=4096):
        core = self.core
        core.begin(ticks_ms(), method, url, headers, body, limit, sink is not None)
        self._sink = sink
        self._into = None
        self._failed = None
        self.written = 0
        try:
            self._run()
        except KeyboardInterrupt:
            self._unlock()
            core.abort("interrupted", INTERRUPTED)
        except OSError as e:
            self._unlock()
            core.abort("the port failed: %s (device unplugged?)" % (e,), FAILED)
        except BaseException:  # from on_event or the sink's caller: the next request may run
            self._unlock()
            core.abort("stopped by the caller", FAILED)
            raise
        finally:
            self._unlock()
        self._deliver()
        if core.error is not None:
            raise core.error
        if self._failed is not None:
            raise FotaError("HTTPREAD", None, "the sink failed: %s" % (self._failed,), FAILED)
        if core.body is not None:  # a body without a length, gathered by the core
            if sink is None:
                return core.status, core.body
            self._put(core.body, 0, len(core.body))
        elif core.tail_n and not core.body_left:
            self._put(core.tail, 0, core.tail_n)  # confirmed by +QHTTPREAD: 0
        if self._failed is not None:
            raise FotaError("HTTPREAD", None, "the sink failed: %s" % (self._failed,), FAILED)
        if sink is not None:
            return core.status, self.written
        return core.status, bytes(self._into.buf) if self._into is not None else b""

    # ------------------------------------------------------------ the loop
    def _run(self):
        core = self.core
        port = self.port
        while True:
            self._deliver()
            if core.done:
                return
            out = core.take_output()
            if out is not None:
                self._write(out)
                continue
            n = port.readinto(self.rx)
            if n:
                self._take(0, n)
                continue
            core.poll(ticks_ms())
            if not core.done and not core.has_output:
                port.wait(20)

    def _deliver(self):
        core = self.core
        ev = core.next_event()
        while ev is not None:
            if self.on_event is not None:
                self.on_event(ev[0], ev[1], ev[2])
            ev = core.next_event()

    def _take(self, i, n):
        """``rx[i:n]``: lines to the core, body bytes to the sink."""
        core = self.core
        while not core.done:
            if core.body_left:
                if self._sink is None and self._into is None:
                    self._into = _Bytes(core.length)  # at most limit: checked by the core
                if i < n:
                    i += self._body(i, n - i)
                    continue
                self._read_body()
                i = self._left
                n = self._end
                if i >= n:
                    return  # the body is over, or something is due: the main loop polls
                continue
            if i >= n:
                return
            i += core.feed(self.rx, i, n, ticks_ms())
            self._deliver()

    def _read_body(self):
        """Read the body straight into the sink until it is all there or the core has
        something to check; ``rx[_left:_end]`` is left over for the core (attributes, not
        a tuple: nothing is allocated while the heap is locked)."""
        core = self.core
        port = self.port
        rx = self.rx
        self._left = self._end = 0
        self._lock()
        try:
            while core.body_left and not core.done:
                n = port.readinto(rx)
                if not n:
                    if core.body_due(ticks_ms()):
                        return
                    port.wait(5)
                    continue
                k = self._body(0, n)
                if k < n:
                    self._left = k
                    self._end = n
                    return
        finally:
            self._unlock()

    def _body(self, off, avail):
        """Up to ``avail`` body bytes at ``rx[off:]``; returns how many. The bytes leaving
        the core's held-back tail go to the sink first, then the block's own."""
        core = self.core
        k = core.body_left
        if avail < k:
            k = avail
        t = core.tail_n
        out = t + k - HOLD
        if out > 0:
            a = t if t < out else out
            if a:
                self._put(core.tail, 0, a)
            if out > a:
                self._put(self.rx, off, out - a)
        core.body_taken(self.rx, off, k, ticks_ms())
        return k

    def _put(self, buf, off, n):
        if self._failed is not None:
            return
        sink = self._sink if self._sink is not None else self._into
        if sink is None:
            return
        try:
            while n > 0:
                w = sink.write(buf, off, n)
                if not w:
                    self._failed = "it took no bytes"
                    return
                off += w
                n -= w
                self.written += w
        except Exception as e:  # a full or failing flash: read the body on, report after
            self._failed = e

    # ------------------------------------------------------------ writing
    def _write(self, buf):
        """All of ``buf`` through the port: the one write path. While the port takes
        nothing the modem's lines are read; ``stall_ms`` without a byte taken stops."""
        core = self.core
        port = self.port
        off = 0
        n = len(buf)
        since = None
        while n > 0:
            w = port.write(buf, off, n)
            if w:
                off += w
                n -= w
                since = None
                continue
            now = ticks_ms()
            if since is None:
                since = now
            elif ticks_diff(now, since) > self.stall_ms:
                core.abort("timeout: the port took no byte for %d ms" % self.stall_ms, TIMEOUT)
                return
            m = port.readinto(self.rx)
            if m:
                self._take(0, m)
            if core.done:
                return
            port.wait_writable(5)

    def _lock(self):
        if self.lock_heap and not self._locked:
            heap_lock()
            self._locked = True

    def _unlock(self):
        if self._locked:
            heap_unlock()
            self._locked = False
