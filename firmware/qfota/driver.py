"""The driver: moves bytes between a port, the package file and a ``Session``.

A port is anything with the MicroPython stream calls used here:
``readinto(buf)`` (non-blocking: a count, 0 or None), ``write(buf, off, n)`` (may take
part, or None), ``wait(ms)`` (until readable or ``ms`` passed) and ``wait_writable(ms)``.
``qfota.uart.UartPort`` (boards), ``qfota.tty.TtyPort`` (unix port) and the host tools'
pyserial port provide them.

    from qfota.driver import update
    session = update(port, "/sd/fota/EC200T.bin", upgrade_mode=1, download_urcs=50)
    print(session.revision_before, "->", session.revision_after)

The streaming loop allocates nothing per piece: it reads the package into one buffer
with ``readinto`` and writes it with ``write(buf, off, n)`` (a memoryview slice would
allocate on MicroPython). With ``lock_heap=True`` it runs under
``micropython.heap_lock()``, unlocked only while a received line is handled.
"""

import gc
import os

from qfota.compat import heap_lock, heap_unlock, sleep_us, ticks_diff, ticks_ms, ticks_us
from qfota.errors import TIMEOUT, FotaError
from qfota.session import EV_SENT, FLOW_HW, FLOW_NONE, Session

RX_EVERY_MAX = 65536  # with flow control, read the port for URCs at least this often (bytes)
PIECE_MAX = 32  # the note: without flow control, pieces of at most 32 bytes
RATE_MAX = 15000  # ... and at most 15 KB/s (NOR flash parts)


def image_length(path):
    """Size of the package at ``path``; refuses a missing, unreadable or empty file."""
    try:
        size = os.stat(path)[6]
    except OSError:
        raise FotaError("PARAMS", None, "image not found: %s" % path) from None
    if size <= 0:
        raise FotaError("PARAMS", None, "image is empty: %s" % path)
    try:
        with open(path, "rb") as f:
            if len(f.read(1)) != 1:
                raise OSError
    except OSError:
        raise FotaError("PARAMS", None, "image not readable: %s" % path) from None
    return size


class Driver:
    """Runs a ``Session`` over ``port``; ``image`` is a file object opened ``"rb"`` (FILE mode).

    ``chunk``: bytes read from the file at a time (a multiple of 512 suits SD cards).
    ``rate``, ``piece``: pacing without flow control (bytes/s, bytes per write).
    """

    def __init__(
        self, port, session, image=None, chunk=1024, rate=RATE_MAX, piece=PIECE_MAX, lock_heap=False
    ):
        if session.flow == FLOW_NONE:
            if not 0 < piece <= PIECE_MAX:
                raise FotaError(
                    "PARAMS", None, "piece must be 1-%d bytes without flow control" % PIECE_MAX
                )
            if not 0 < rate <= 1_000_000:
                raise FotaError("PARAMS", None, "rate must be 1-1000000 bytes/s")
            if rate <= 4 * piece:
                raise FotaError("PARAMS", None, "rate must be above %d bytes/s" % (4 * piece))
        if chunk < piece or chunk % 16:
            raise FotaError("PARAMS", None, "chunk must be a multiple of 16 and at least one piece")
        self.port = port
        self.session = session
        self.image = image
        self.buf = bytearray(chunk)
        self.rx = bytearray(256)
        self.rate = rate
        self.piece = piece
        self.lock_heap = lock_heap
        self._locked = False
        self._started = False
        self._t0 = 0  # when the first package byte went out
        self._stall_at = -1  # package offset where the port last took nothing
        self._stall_since = 0
        self.stall_ms = session.timeouts["stall_ms"]
        self.report_every = max(chunk, (session.length or 0) // 100)
        # With flow control the port is read for URCs every rx_every package bytes: at
        # least twice per DOWNLOADING URC the modem will print, so at most one line waits
        # in the receive buffer; rarely otherwise (URCs are few), so a fast sink stays fast.
        per_urc = (
            (session.length or 0) // (2 * session.download_urcs)
            if session.download_urcs
            else RX_EVERY_MAX
        )
        self.rx_every = max(chunk, min(RX_EVERY_MAX, per_urc))

    def run(self):
        """Drive the session to its end; returns it. Raises ``FotaError``."""
        s = self.session
        port = self.port
        rx = self.rx
        s.start(ticks_ms())
        while not s.done:
            out = s.take_output()
            if out is not None:
                self._write_all(out)
            n = port.readinto(rx)
            if n:
                s.feed(rx, 0, n, ticks_ms())
            if s.streaming:
                self._stream()
                continue
            s.poll(ticks_ms())
            if not n and not s.done and not s.has_output:
                port.wait(20)
        return s

    # ------------------------------------------------------------ writing
    def _write_all(self, data):
        """A command line, whole, within ``stall_ms``."""
        off = 0
        n = len(data)
        port = self.port
        last = ticks_ms()
        while off < n:
            w = port.write(data, off, n - off)
            now = ticks_ms()
            if w:
                off += w
                last = now
            elif ticks_diff(now, last) > self.stall_ms:
                raise FotaError(
                    self.session.stage,
                    None,
                    "timeout: the port took no byte for %d ms" % self.stall_ms,
                    TIMEOUT,
                )
            else:
                port.wait_writable(10)

    # The heap is locked only around the per-piece work; handling a received line or
    # reporting progress may allocate and runs unlocked.
    def _lock(self):
        if self.lock_heap and not self._locked:
            heap_lock()
            self._locked = True

    def _unlock(self):
        if self._locked:
            heap_unlock()
            self._locked = False

    def _fail(self, detail, kind=None):
        self._unlock()  # the exception itself needs the heap
        raise FotaError("STREAM", None, detail, kind)

    def _complete(self):
        self._unlock()
        s = self.session
        s.stream_ms = ticks_diff(ticks_ms(), self._t0)  # _stream set _t0
        s.image_complete(ticks_ms())
        self._lock()

    def _poll_rx(self):
        # Incoming URCs are read between pieces so the receive side never overflows.
        n = self.port.readinto(self.rx)
        if n:
            self._feed_rx(n)

    def _feed_rx(self, n):
        self._unlock()
        self.session.feed(self.rx, 0, n, ticks_ms())
        self._lock()

    def _report(self):
        s = self.session
        if s.on_event is not None:
            self._unlock()
            s.on_event(EV_SENT, s.sent, s.length)
            self._lock()

    def _stream(self):
        if not self._started:
            self._started = True
            self._t0 = ticks_ms()
        self._lock()
        try:
            if self.session.flow == FLOW_HW:
                self._stream_hw()
            else:
                self._stream_paced()
        finally:
            self._unlock()

    def _read_chunk(self):
        s = self.session
        want = s.length - s.sent
        f = self.image
        if f is None:
            self._fail("no image to send")
            return 0
        got = f.readinto(self.buf)
        if not got:
            self._fail("image ended at %d of %d bytes" % (s.sent, s.length))
        return got if got < want else want

    def _stream_hw(self):
        """As fast as the line takes: the modem's CTS (or the pty) pushes back.

        Per chunk the fast path is one ``readinto`` of the file, ``write`` calls and one
        comparison; URC reads, progress and the end are on a slow path taken every
        ``rx_every`` bytes, so a fast sink is not slowed down by bookkeeping.
        """
        s = self.session
        port = self.port
        buf = self.buf
        f = self.image
        if f is None:
            self._fail("no image to send")
            return
        length = s.length
        sent = s.sent
        last_full = length - len(buf)  # up to here a whole chunk cannot pass the end
        next_report = sent + self.report_every
        check = sent  # the slow path's next turn
        self._stall_at = -1
        while True:
            got = f.readinto(buf)
            if not got:
                self._fail("image ended at %d of %d bytes" % (sent, length))
            if sent > last_full and got > length - sent:
                got = length - sent
            off = 0
            while off < got:
                w = port.write(buf, off, got - off)
                if w:
                    off += w
                else:
                    self._write_wait(sent + off)
            sent += got
            if sent < check:
                continue
            s.sent = sent
            if sent >= length:
                self._complete()
                return
            self._poll_rx()
            if not s.streaming:
                return  # the session ended the transfer (it raises on errors)
            if sent >= next_report:
                next_report = sent + self.report_every
                self._report()
            check = sent + self.rx_every
            if check > length:
                check = length

    def _write_wait(self, at):
        """The port took nothing: wait a little, read URCs, and give up after ``stall_ms``."""
        now = ticks_ms()
        if at != self._stall_at:
            self._stall_at = at
            self._stall_since = now
        elif ticks_diff(now, self._stall_since) > self.stall_ms:
            self.session.sent = at
            self._fail(
                "timeout: the modem took no byte for %d ms (CTS held)" % self.stall_ms, TIMEOUT
            )
        self.session.sent = at
        self._poll_rx()
        if not self.session.streaming:
            return
        self.port.wait_writable(5)

    def _stream_paced(self):
        """Pieces of at most ``piece`` bytes, at most ``rate`` bytes in any one second.

        A token bucket refilled at ``rate - 4 * piece`` bytes/s holding at most four pieces:
        any one-second window then carries at most ``rate`` bytes. Tokens are counted in
        byte-microseconds so all arithmetic stays in small integers.
        """
        s = self.session
        port = self.port
        buf = self.buf
        piece = self.piece
        fill = self.rate - 4 * piece
        cap = 4 * piece * 1_000_000
        stall = self.stall_ms
        tokens = piece * 1_000_000
        t = ticks_us()
        next_report = s.sent + self.report_every
        while s.streaming:
            got = self._read_chunk()
            off = 0
            while off < got:
                k = got - off
                if k > piece:
                    k = piece
                cost = k * 1_000_000
                while tokens < cost:
                    now = ticks_us()
                    dt = ticks_diff(now, t)
                    t = now
                    if dt > 20_000:
                        dt = 20_000  # keeps the product a small int; the bucket is full anyway
                    tokens += dt * fill
                    if tokens > cap:
                        tokens = cap
                    if tokens < cost:
                        self._poll_rx()
                        if not s.streaming:
                            return
                        wait = (cost - tokens) // fill
                        sleep_us(wait if wait < 1000 else 1000)
                tokens -= cost
                sent = 0
                last = ticks_ms()
                while sent < k:
                    w = port.write(buf, off + sent, k - sent)
                    if w:
                        sent += w
                        last = ticks_ms()
                        if s.image_sent(w):
                            self._complete()
                    elif ticks_diff(ticks_ms(), last) > stall:
                        self._fail("timeout: the port took no byte for %d ms" % stall, TIMEOUT)
                    else:
                        port.wait_writable(1)
                off += k
            self._poll_rx()
            if not s.streaming:
                return
            if s.sent >= next_report:
                next_report = s.sent + self.report_every
                self._report()


def _os_error(e):
    """``[Errno 25] ENOTTY`` on both interpreters (MicroPython prints only the number)."""
    import errno

    code = e.args[0] if e.args else None
    if isinstance(code, int):
        name = errno.errorcode.get(code)
        return "[Errno %d] %s" % (code, name) if name else "[Errno %d]" % code
    return str(e)


def update(
    port,
    image=None,
    url=None,
    chunk=1024,
    rate=RATE_MAX,
    piece=PIECE_MAX,
    lock_heap=False,
    **kwargs,
):
    """One whole update over ``port``: FILE mode with ``image`` (a path), or URL mode.

    ``kwargs`` go to ``Session`` (upgrade_mode, download_urcs, update_urcs, flow, usb,
    cid, apn, min_voltage_mv, timeouts, on_event). Everything is checked before the
    first byte goes to the modem. ``port`` may be a port, or a function that opens one:
    then it is opened only once the checks passed, and closed at the end.
    Returns the finished ``Session``; raises ``FotaError``.
    """
    if (image is None) == (url is None):
        raise FotaError("PARAMS", None, "give either an image or a URL")
    gc.collect()  # the session and the buffers want contiguous blocks: defragment up front
    if image is not None:
        session = Session(length=image_length(image), **kwargs)
    else:
        session = Session(url=url, **kwargs)
    driver = Driver(None, session, None, chunk, rate, piece, lock_heap)
    opened = not hasattr(port, "readinto")
    if opened:
        try:
            port = port()
        except (OSError, ValueError) as e:
            raise FotaError("PORT", None, "cannot open the port: %s" % _os_error(e)) from None
    driver.port = port
    try:
        if image is None:
            return driver.run()
        with open(image, "rb") as f:
            driver.image = f
            return driver.run()
    finally:
        if opened:
            port.close()


def recover(port, **kwargs):
    """After an MCU reset in the middle of an update: follow the modem to its end.

    Listens for the upgrade's URCs (``END``, ``RDY``) and, after a quiet window (a
    half-sent FILE transfer must not get "AT" as package data), probes with AT; ends
    with the revision read. ``session.recovered`` holds what the modem reported of the
    old download, if anything (e.g. ``"FILEEND 500"``). Raises ``FotaError``.
    """
    session = Session(recover=True, **kwargs)
    return Driver(port, session).run()
