"""The driver: moves bytes between a port, the package file and a ``Session``, and
delivers the session's events after each call into it returns.

A port is anything with the MicroPython stream calls used here:
``readinto(buf)`` (non-blocking: a count, 0 or None), ``write(buf, off, n)`` (may take
part, or None), ``wait(ms)`` (until readable or ``ms`` passed) and ``wait_writable(ms)``.
``qfota.uart.UartPort`` (boards), ``qfota.tty.TtyPort`` (unix port) and the host tools'
pyserial port provide them.

    from qfota.driver import update
    session = update(port, "/sd/fota/EC200T.bin", upgrade_mode=1, download_urcs=50)
    print(session.revision_before, "->", session.revision_after)

Every byte goes out through ``_write``: one write path with one stall policy (the port
takes nothing for ``stall_ms``: stop, with the stage). The streaming loop allocates
nothing: it reads the package into one buffer with ``readinto`` and writes it with
``write(buf, off, n)`` (a memoryview slice would allocate on MicroPython). With
``lock_heap=True`` it runs under ``micropython.heap_lock()``, unlocked only while the
modem's lines and the session's events are handled, and before any failure is built.
``Driver`` allocates the two buffers once, the package buffer (the largest block) first,
before the port is read, and lets it go once the package is out; ``run`` allocates
nothing per package byte.
"""

import gc
import os

from qfota.compat import heap_lock, heap_unlock, sleep_us, ticks_diff, ticks_ms, ticks_us
from qfota.defaults import CHUNK_MAX, CHUNK_MIN, DEFAULTS, IMAGE_MAX, PIECE_MAX, RATE_MAX
from qfota.errors import FAILED, INTERRUPTED, REFUSED, TIMEOUT, FotaError, refuse
from qfota.session import Session

RX_EVERY_MAX = 65536  # with flow control, read the port for URCs at least this often (bytes)
_RX = 256
# The stream did not run for this long (Ctrl-Z, a blocked output, a starved process):
# look at what the modem said meanwhile before the next byte goes out (``qfota.cut``).
_GAP_MS = 1000


def _mem_free():
    return gc.mem_free() if hasattr(gc, "mem_free") else -1


def image_length(path, limit=IMAGE_MAX):
    """Size of the package at ``path``; refuses a missing, unreadable, empty or too big file."""
    try:
        size = os.stat(path)[6]
    except OSError:
        raise refuse("PARAMS", "image not found: %s" % path) from None
    if size <= 0:
        raise refuse("PARAMS", "image is empty: %s" % path)
    if size > limit:
        raise refuse("PARAMS", "image is %d bytes, above the limit of %d" % (size, limit))
    try:
        with open(path, "rb") as f:
            if len(f.read(1)) != 1:
                raise OSError
    except OSError:
        raise refuse("PARAMS", "image not readable: %s" % path) from None
    return size


def _window(path, offset, length, limit):
    """Bytes to send from ``path``: all of it, or ``length`` bytes from ``offset`` (the
    image inside a wrapper, ``qfota.swu``); refuses a window outside the file."""
    if not offset and length is None:
        return image_length(path, limit)
    size = image_length(path, 0x3FFFFFFF)
    if length is None:
        length = size - offset
    if not isinstance(offset, int) or not isinstance(length, int) or offset < 0 or length <= 0:
        raise refuse("PARAMS", "image window must be a byte offset and a positive length")
    if offset + length > size:
        raise refuse(
            "PARAMS", "image window %d+%d ends past the %d-byte file" % (offset, length, size)
        )
    if length > limit:
        raise refuse("PARAMS", "image is %d bytes, above the limit of %d" % (length, limit))
    return length


class Driver:
    """Runs ``session`` over ``port``; ``image`` is a file object opened ``"rb"`` (FILE mode).

    ``chunk``: bytes read from the file at a time (a multiple of 512 suits SD cards).
    ``rate``, ``piece``: pacing without flow control (bytes/s, bytes per write).
    ``on_event(ev, a, b)``: the session's events, delivered between calls into it.
    """

    def __init__(
        self,
        port,
        session,
        image=None,
        chunk=DEFAULTS["chunk"],
        rate=DEFAULTS["rate"],
        piece=DEFAULTS["piece"],
        lock_heap=False,
        on_event=None,
        rate_above_note=False,
        path=None,
        buf=None,
    ):
        check_stream(session.opt["flow"] == "hw", chunk, rate, piece, rate_above_note)
        self.port = port
        self.session = session
        self.image = image
        self.on_event = on_event
        self.buf = None
        if image is not None:
            # ``buf``: a list holding the buffer ``update`` made first; taken out of it, so
            # nothing else keeps it once the stream lets it go.
            made = buf.pop() if buf else None
            self.buf = made if made is not None and len(made) == chunk else package_buffer(chunk)
            made = None
        self.rx = bytearray(_RX)
        # The package file's (size, mtime) before the stream, checked again before its
        # last bytes go out: a file that changes while it is sent is not sent whole.
        # (After the buffers: the largest block first.)
        self.path = path
        self.stamp = _stamp(path) if path is not None else None
        self.rate = rate
        self.piece = piece
        self.lock_heap = lock_heap
        self.stall_ms = session.opt["timeouts"]["stall_ms"]
        self._locked = False
        self.flight = 0  # package bytes of the chunk being written (not counted yet)
        self._ran = 0  # ticks_ms when the stream last ran (gaps: see _GAP_MS)
        self._gap_err = None  # the failure a gap explains
        # With flow control the port is read for URCs every rx_every package bytes: at
        # least twice per DOWNLOADING URC the modem will print, so at most one line waits
        # in the receive buffer; rarely otherwise (URCs are few), so a fast line stays fast.
        length = session.length or 0
        urcs = session.opt["download_urcs"]
        per_urc = length // (2 * urcs) if urcs else RX_EVERY_MAX
        self.rx_every = max(chunk, min(RX_EVERY_MAX, per_urc))

    # ------------------------------------------------------------ the loop
    def run(self):
        """Drive the session to its end; returns it. Raises ``FotaError``."""
        s = self.session
        try:
            s.start(ticks_ms())
            while True:
                self._deliver()
                if s.done:
                    break
                out = s.take_output()
                if out is not None:
                    self._write(out, 0, len(out))
                    continue
                n = self._poll_rx()
                if s.streaming:
                    self._stream()
                    self.buf = None  # the package is out (or the session ended): free its room
                    continue
                s.poll(ticks_ms())
                if not n and not s.done and not s.has_output:
                    self.port.wait(20)
        except FotaError:
            self._unlock()  # raised from the stream: the session holds it already
        except KeyboardInterrupt:
            self._unlock()
            s.image_sent(self.flight)  # cut inside a chunk: what of it went out counts
            from qfota.cut import advice

            s.abort("interrupted: " + advice(s), INTERRUPTED)
        except OSError as e:
            self._unlock()
            s.image_sent(self.flight)
            from qfota.cut import advice, os_error

            s.abort(
                "the port failed: %s (device unplugged?); %d of %d package bytes sent; %s"
                % (os_error(e), s.sent, s.length or 0, advice(s)),
                FAILED,
            )
        finally:
            self._unlock()
        self._deliver()
        if self._gap_err is not None:
            raise self._gap_err
        if s.error is not None:
            raise s.error
        return s

    def _deliver(self):
        s = self.session
        ev = s.next_event()
        while ev is not None:
            if self.on_event is not None:
                self.on_event(ev[0], ev[1], ev[2])
            ev = s.next_event()

    # The heap is locked only around the per-piece work; handling a received line,
    # delivering events and building an error may allocate and run unlocked.
    def _lock(self):
        if self.lock_heap and not self._locked:
            heap_lock()
            self._locked = True

    def _unlock(self):
        if self._locked:
            heap_unlock()
            self._locked = False

    def _poll_rx(self):
        """Read what the modem said and feed it to the session. Returns the count."""
        n = self.port.readinto(self.rx)
        if n:
            relock = self._locked
            self._unlock()
            self.session.feed(self.rx, 0, n, ticks_ms())
            self._deliver()
            if relock:
                self._lock()
        return n or 0

    # ------------------------------------------------------------ writing
    def _write(self, buf, off, n):
        """All of ``buf[off:off + n]``, through the port: the one write path.

        While the port takes nothing the modem's lines are read (a FILEEND 500 or a
        failure may come) and after ``stall_ms`` without a byte taken it stops. Returns
        False when the session ended while waiting. Allocates nothing while bytes go out.
        """
        port = self.port
        s = self.session
        stalled = False
        since = 0
        while n > 0:
            if s.streaming:
                now = ticks_ms()
                if ticks_diff(now, self._ran) > _GAP_MS:
                    relock = self._locked
                    self._unlock()  # the import and the modem's lines need the heap
                    from qfota.cut import gap  # the stream did not run for a while

                    if not gap(self, now):
                        return False
                    if relock:
                        self._lock()
                self._ran = now
            w = port.write(buf, off, n)
            if w:
                off += w
                n -= w
                if s.streaming:
                    self.flight += w
                stalled = False
                continue
            now = ticks_ms()
            if s.streaming and ticks_diff(now, self._ran) > _GAP_MS:
                continue  # stopped since the loop's top: the gap's path there, not a stall
            if not stalled:
                stalled = True
                since = now
            elif ticks_diff(now, since) > self.stall_ms:
                self._stalled()
            self._poll_rx()
            if s.done:
                return False
            port.wait_writable(5)
        return True

    def _stalled(self):
        self._unlock()  # the error and its text need the heap
        s = self.session
        s.abort(
            "timeout: the port took no byte for %d ms (CTS held); %d of %d package bytes sent"
            % (self.stall_ms, s.sent, s.length or 0),
            TIMEOUT,
        )
        raise s.error

    # ------------------------------------------------------------ the package
    def _stream(self):
        self._ran = ticks_ms()
        self._lock()
        try:
            if self.session.opt["flow"] == "hw":
                self._stream_hw()
            else:
                self._stream_paced()
        finally:
            self._unlock()

    def _read_chunk(self):
        s = self.session
        got = self.image.readinto(self.buf) if self.image is not None else 0
        left = s.length - s.sent
        if not got or got >= left and self.stamp is not None:
            # The end of the file, or its last bytes: before they go out (and the modem
            # checks a whole package) the file must be the one whose first bytes went out.
            self._unlock()
            if not got or _stamp(self.path) != self.stamp:
                from qfota.cut import changed

                changed(self, got)  # raises
            self._lock()
        return got if got < left else left

    def _end_of_slow_path(self):
        """Every ``rx_every`` bytes: the modem's lines, progress, the end. False: stop."""
        s = self.session
        if s.sent >= s.length:
            self._unlock()
            s.image_complete(ticks_ms())
            self._deliver()
            return False
        self._poll_rx()
        if not s.streaming:
            return False  # the session ended the transfer (FILEEND, or a failure)
        self._unlock()
        s.progress()
        self._deliver()
        self._lock()
        return True

    def _stream_hw(self):
        """As fast as the line takes: the modem's CTS (or the pty) pushes back.

        Per chunk the fast path is one ``readinto`` of the file and the writes; the
        modem's lines, progress and the end are on a slow path taken every ``rx_every``
        bytes, so a fast line is not slowed down by bookkeeping.
        """
        s = self.session
        buf = self.buf
        check = s.sent
        while True:
            got = self._read_chunk()
            if not self._write(buf, 0, got):
                return
            s.image_sent(got)
            self.flight = 0
            if s.sent < check and s.sent < s.length:
                continue
            if not self._end_of_slow_path():
                return
            check = s.sent + self.rx_every

    def _stream_paced(self):
        """Pieces of at most ``piece`` bytes, at most ``rate`` bytes in any one second.

        A token bucket refilled at ``rate - 4 * piece`` bytes/s holding at most four pieces:
        any one-second window then carries at most ``rate`` bytes. Tokens are counted in
        byte-microseconds so all arithmetic stays in small integers.
        """
        s = self.session
        buf = self.buf
        piece = self.piece
        fill = self.rate - 4 * piece
        cap = 4 * piece * 1_000_000
        tokens = piece * 1_000_000
        t = ticks_us()
        while True:
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
                        wait = (cost - tokens) // fill
                        sleep_us(wait if wait < 1000 else 1000)
                tokens -= cost
                if not self._write(buf, off, k):
                    return
                s.image_sent(k)
                self.flight = 0
                off += k
            if not self._end_of_slow_path():
                return


def _stamp(path):
    """``(size, mtime)`` of the file at ``path`` (``(-1, -1)``: gone)."""
    try:
        st = os.stat(path)
    except OSError:
        return (-1, -1)
    return (st[6], st[8])


def package_buffer(chunk):
    """The package buffer, the largest block an update needs: made after a collect, and
    by ``update`` before the session's tables come and go (they leave the heap in
    pieces); a ``FotaError`` of stage MEMORY when there is no room for it."""
    gc.collect()
    try:
        return bytearray(chunk)
    except MemoryError:
        raise FotaError(
            "MEMORY",
            None,
            "no room for the %d-byte package buffer (%d bytes free): give a smaller"
            " chunk; nothing was sent" % (chunk, _mem_free()),
            FAILED,
        ) from None


def check_stream(flow_hw, chunk, rate, piece, rate_above_note=False):
    """The driver's settings: refuses what the note or the buffers do not allow."""
    if not isinstance(chunk, int) or not CHUNK_MIN <= chunk <= CHUNK_MAX or chunk % 16:
        raise refuse(
            "PARAMS",
            "chunk must be a multiple of 16 from %d to %d, not %r" % (CHUNK_MIN, CHUNK_MAX, chunk),
        )
    if flow_hw:
        return
    if not isinstance(piece, int) or not 0 < piece <= PIECE_MAX:
        raise refuse("PARAMS", "piece must be 1-%d bytes without flow control" % PIECE_MAX)
    top = 1_000_000 if rate_above_note else RATE_MAX
    if not isinstance(rate, int) or not 4 * piece < rate <= top:
        raise refuse(
            "PARAMS",
            "rate must be %d-%d bytes/s without flow control (the note's limit is %d), not %r"
            % (4 * piece + 1, top, RATE_MAX, rate),
        )
    if chunk < piece:
        raise refuse("PARAMS", "chunk must hold at least one piece")


def update(
    port,
    image=None,
    url=None,
    chunk=DEFAULTS["chunk"],
    rate=DEFAULTS["rate"],
    piece=DEFAULTS["piece"],
    lock_heap=False,
    on_event=None,
    rate_above_note=False,
    max_image=IMAGE_MAX,
    image_offset=0,
    image_length=None,
    **kwargs,
):
    """One whole update over ``port``: FILE mode with ``image`` (a path), or URL mode.

    ``image_offset``, ``image_length``: send only that window of the file (the image
    inside an SWU, ``qfota.swu.find_image``); by default the whole file.

    ``kwargs`` go to ``Session`` (upgrade_mode, download_urcs, update_urcs, flow, usb,
    cid, apn, min_voltage_mv, timeouts, expect_source, target, listen_first, trace).
    Everything is checked before the first byte goes to the modem. ``port`` may be a
    port, or a function that opens one: then it is opened only once the checks passed,
    and closed at the end. Returns the finished ``Session``; raises ``FotaError``.
    """
    if (image is None) == (url is None):
        raise refuse("PARAMS", "give either an image or a URL")
    gc.collect()  # the session and the buffers want contiguous blocks: defragment up front
    buf = []  # the package buffer, first: the session's tables leave the heap in pieces
    if image is not None and isinstance(chunk, int) and CHUNK_MIN <= chunk <= CHUNK_MAX:
        buf.append(package_buffer(chunk))
    if image is not None:
        session = Session(length=_window(image, image_offset, image_length, max_image), **kwargs)
    else:
        session = Session(url=url, **kwargs)
    check_stream(session.opt["flow"] == "hw", chunk, rate, piece, rate_above_note)
    return _drive(
        port,
        session,
        image,
        image_offset,
        chunk=chunk,
        rate=rate,
        piece=piece,
        lock_heap=lock_heap,
        on_event=on_event,
        rate_above_note=rate_above_note,
        buf=buf,
    )


def _drive(port, session, image=None, offset=0, **driver_kw):
    """Run ``session`` over ``port`` (opened here, after every check, when it is a function
    that opens one) with the package file ``image`` from ``offset``; close what was opened
    here. The driver stops reading at the session's length: the window's end."""
    opened = not hasattr(port, "readinto")
    if opened:
        port = open_port(port)
    f = None
    try:
        if image is not None:
            f = open(image, "rb")
            if offset:
                f.seek(offset)
        return Driver(port, session, f, path=image, **driver_kw).run()
    finally:
        if f is not None:
            f.close()
        if opened:
            port.close()


def open_port(opener):
    """``opener()``, with its failure as a ``FotaError`` of stage PORT."""
    try:
        return opener()
    except FotaError:
        raise
    except (OSError, ValueError) as e:
        from qfota.cut import os_error

        text = os_error(e) if isinstance(e, OSError) else str(e)
        # Nothing was sent: a refusal, as the CLI's own check of --port says it.
        raise FotaError("PORT", None, "cannot open the port: %s" % text, REFUSED) from None


def recover(port, on_event=None, **kwargs):
    """After an MCU reset (or a cut run) in the middle of an update: follow the modem
    to its end.

    Listens quietly first (a half-sent FILE transfer must not get "AT" as package data:
    the modem ends it itself with FILEEND 500 once the line is quiet), follows the
    upgrade's URCs (``END``, ``RDY``), then probes with AT and reads the revision.
    ``session.recovered`` holds what the modem reported of the old download, if anything
    (e.g. ``"FILEEND 500"``). Raises ``FotaError``.
    """
    return _drive(port, Session(recover=True, **kwargs), on_event=on_event)


def info(port, on_event=None, **kwargs):
    """Read the modem's state and change nothing: revision, ``AT+QFOTADL=?`` ranges,
    flow-control setting, supply voltage, PDP contexts. Returns the ``Session``
    (``revision_before``, ``supported``, ``flow_setting``, ``voltage_mv``, ``pdp``)."""
    return _drive(port, Session(info=True, **kwargs), on_event=on_event)
