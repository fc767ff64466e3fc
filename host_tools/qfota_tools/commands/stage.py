"""``qfota stage``: copy a firmware image and its manifest onto a board, verified, resumable.

::

    $ qfota stage out/ec200.bin --device /dev/ttyACM0 --to :/sd/fota \\
          --source-rev EC200UCNAAR02A01M08 --target-rev EC200UCNAAR02A02M08
    staged /sd/fota/ec200.bin: 4194304 bytes in 9.8 s (418 KB/s, via repl), sha256 verified on the device

On the board this leaves ``/sd/fota/ec200.bin`` and its manifest ``/sd/fota/ec200.bin.json``::

    {"file": "ec200.bin", "length": 4194304, "sha256": "<hex>", "md5": "<hex>",
     "source_revision": "...", "target_revision": "..."}

How (mpremote's ``SerialTransport`` is the link; ``--via``):

- ``usb`` (``auto`` on rp2): the receiver takes the board's USB over from the REPL for
  the copy (see ``RECEIVER_USB``): bulk transfers straight into its buffers, instead of
  the one byte per call the REPL's stdin gives. On the emulated Pico (128 KB) 6-7x faster
  than ``mpremote fs cp``, where a copy through stdin cannot pass about 4.5x.
- ``repl`` (every other board): faster than ``mpremote fs cp``, which sends 256-byte
  ``repr()`` literals (about 2.9 bytes on the wire per image byte), one exec each: one
  small receiver runs on the device and reads frames of ``--chunk`` image bytes from
  stdin, binary with each Ctrl-C replaced and its offset listed (about 1.02 bytes per
  byte; a real Ctrl-C still interrupts it), acknowledging each frame once written; the
  host keeps ``WINDOW`` frames in flight (USB CDC holds what the board has not read: no
  device buffer can overrun). Three execs besides the copy: helpers and questions, the
  copy, verify-rename-manifest.
- ``auto`` takes ``repl`` on a board whose ``boot.py`` already runs a runtime USB device
  of its own (``machine.USBDevice().active()``): the receiver would take it over. When
  ``auto`` took ``usb`` and the port does not come back as the data link (within
  ``USB_WAIT``), the receiver gives the USB back to the REPL with nothing written, and the
  copy goes on through the REPL in the same run, resumed from the part file, with one
  line saying so (``notice``). ``--via usb`` fails there instead.
- Resumable: the image goes to ``<name>.part``; a later run hashes the part on the device,
  appends after it when it is a prefix of the image, and starts over otherwise.
- Verified: sha256 of the whole file, read back from the board's storage, on the device;
  only then is the part renamed and the manifest written (the old manifest is removed
  before anything else changes, so a manifest always describes a complete image).
- Refuses before copying (and before touching anything) when ``os.statvfs`` on the board
  reports less room than the copy needs.

From Python::

    from qfota_tools.commands import stage
    from qfota_tools.transport import remote
    t = remote.connect("/dev/pts/5")
    result = stage.stage(t, "fw.bin", "/sd/fota", source_rev="A", target_rev="B")
    remote.close(t)
"""

import hashlib
import json
import os
import sys
import time

import serial
from mpremote.transport import TransportError

from qfota_tools.transport import remote

CHUNK = 8192  # image bytes per frame: a multiple of littlefs's 4096-byte block
WINDOW = 3  # frames in flight before the host waits for an acknowledgement
ACK_TIMEOUT = 30.0  # s: one frame written to flash or SD and acknowledged
MANIFEST_ROOM = 1024  # bytes reserved for the manifest

# Frames: a 10-byte ASCII header, type + body length (5 hex digits) + a count (4 hex digits).
# "D": the count is how many Ctrl-C (0x03) bytes the image piece holds; their offsets follow
# (4 hex digits each), then the piece with each 0x03 sent as 0x00 (the receiver puts them
# back): no Ctrl-C ever reaches the board, so a real Ctrl-C still interrupts the receiver
# (KeyboardInterrupt), and the body needs no decoding pass. "E" (a piece dense in 0x03):
# the body has each ESC (0x1b) sent as ESC ";" and each 0x03 as ESC "#". "A": the host's
# answer to "!" (the receiver failed), after which the receiver raises its error.
# The receiver acknowledges each frame with "." once it is written; the host keeps up to
# WINDOW frames in flight, so the link never idles while the board writes. USB CDC holds
# what the board has not read yet (the OUT endpoint is NAKed): no buffer can overrun.
RECEIVER = """
def _qf_recv(p, n, ch):
    import sys
    from binascii import unhexlify
    rd = sys.stdin.buffer.readinto
    w = sys.stdout.write
    h = bytearray(10)
    hv = memoryview(h)
    b = bytearray(2 * ch)
    m = memoryview(b)
    def get(v, k):
        g = 0
        while g < k:
            r = rd(v[g:k])
            if r == 0:
                raise OSError(5)
            g += r or 0
    e = None
    with open(p, 'ab') as f:
        w('R')
        while n > 0 or e:
            get(hv, 10)
            if h[0] == 65:
                raise e
            k = int(bytes(h[1:6]), 16)
            c = 4 * int(bytes(h[6:]), 16)
            get(m, c + k)
            if e:
                continue
            try:
                if h[0] == 69:
                    d = bytes(m[:k]).replace(b'\\x1b#', b'\\x03').replace(b'\\x1b;', b'\\x1b')
                else:
                    if c:
                        q = unhexlify(m[:c])
                        for i in range(0, len(q), 2):
                            b[c + (q[i] << 8 | q[i + 1])] = 3
                    d = m[c:c + k]
                f.write(d)
                n -= len(d)
                w('.')
            except Exception as x:
                e = x
                w('!')
def _qf_room(p):
    while _qf_size(p) < 0 and p != '/':
        p = p[:p.rfind('/')] or '/'
    return _qf_free(p)
"""
FIN = """
def _qf_fin(p, d, mp, sha, man):
    h = _qf_hash(p)
    if h != sha:
        _qf_rm(p)
    else:
        os.rename(p, d)
        _qf_put(mp, man)
    return h
"""
ABORT = b"A000000000"

# The USB path (``--via usb``; ``auto`` takes it on rp2). The REPL's stdin hands the
# receiver one byte per call of the firmware's ``mp_hal_stdin_rx_chr()``: on an RP2040 that
# alone caps a copy near 120 KB/s. Instead the receiver takes the board's USB over from the
# built-in CDC with a runtime device (``machine.USBDevice``) that has the very same
# descriptors, so the host sees its serial port go and come back as the same device, and
# the bulk OUT endpoint fills the receiver's two buffers ``ch`` bytes per transfer (one
# written to storage while the other fills). "S" on the REPL: switching; "G" on the new
# port: ready; then a 64-byte token of this run (a packet of its own: bytes from any other
# program that opens the port end the receiver before the part file is touched), the raw
# image; "K" (written) or "!<error>" back; then a soft reset brings the built-in CDC and
# its REPL back (the raw REPL: main.py does not run). Every wait is bounded by ``wait``
# ms (no host, or a pause in the data: the receiver stops, as it does at once when the
# host drops DTR by closing the port). Messages stay within one 64-byte packet.
RECEIVER_USB = """
def _qf_usbok():
    import sys, machine
    U = getattr(machine, 'USBDevice', None)
    if not (U and hasattr(U, 'BUILTIN_CDC')):
        return 0
    return 2 if sys.platform == 'rp2' and not U().active() else 1
def _qf_usb(p, n, ch, wait, tok):
    import sys, time, machine
    u = machine.USBDevice()
    B = u.BUILTIN_DEFAULT
    d = B.desc_cfg
    bo = bi = i = 0
    while i < len(d):
        if d[i + 1] == 5 and d[i + 3] & 3 == 2:
            if d[i + 2] & 128:
                bi = d[i + 2]
            else:
                bo = d[i + 2]
        i += d[i]
    bs = (bytearray(ch), bytearray(ch))
    tb = bytearray(64)
    got = []
    st = [0, 0, 0, 0]  # configured (2: token taken), IN done, DTR (1 on, 2 off), submitted
    lc = bytearray(b'\\x00\\xc2\\x01\\x00\\x00\\x00\\x08')
    tot = n
    def sub(j):
        k = min(ch, tot - st[3])
        if k > 0:
            st[3] += k
            u.submit_xfer(bo, memoryview(bs[j])[:k])
        return k
    def ctl(s, r):
        if r[0] & 0x60 != 0x20:
            return False
        if r[1] == 0x22 and s == 1:  # SET_CONTROL_LINE_STATE: DTR off once seen or
            if r[2] & 1:  # once this run's host has spoken: the host closed the port
                st[2] = 1
            elif st[2] or st[0] > 1:
                st[2] = 2
        return lc if r[1] in (0x20, 0x21) else True
    def opn(v):
        if not st[0]:
            st[0] = 1
            u.submit_xfer(bo, tb)
            u.submit_xfer(bi, b'G')
    def xfer(ep, r, k):
        if ep == bo:
            got.append(-1 if r else k)
        else:
            st[1] += 1
    def nxt(t):
        while not got:
            if st[2] == 2 or time.ticks_diff(time.ticks_ms(), t) > wait:
                raise OSError(110)
            machine.idle()
        g = got.pop(0)
        if g < 0:
            raise OSError(5)
        return g
    u.active(False)
    u.builtin_driver = u.BUILTIN_NONE
    u.config(B.desc_dev, d, None, opn, None, ctl, xfer)
    sys.stdout.write('S')
    time.sleep_ms(50)
    try:
        u.active(True)
        if nxt(time.ticks_ms()) != 64 or tb != tok:
            raise OSError(1)
        st[0] = 2
        sub(0)
        j = 0
        k = min(ch, n)
        t = time.ticks_ms()
        with open(p, 'ab') as f:
            while n > 0:
                g = nxt(t)
                st[3] -= k - g
                n -= g
                j ^= 1
                k = sub(j)
                f.write(bs[j ^ 1] if g == ch else memoryview(bs[j ^ 1])[:g])
                t = time.ticks_ms()
        r = b'K\\n'
    except Exception as x:
        r = ('!%s: %s' % (type(x).__name__, x))[:62].encode() + b'\\n'
    if st[0]:
        u.submit_xfer(bi, r)
        t = time.ticks_ms()
        while st[1] < 2 and st[2] != 2 and time.ticks_diff(time.ticks_ms(), t) < 3000:
            machine.idle()
        time.sleep_ms(20)
    machine.soft_reset()
"""
USB_WAIT = 10.0  # s: the port back as the data link; the longest pause in the data
# s: the REPL back after a receiver the host never reached. Its USB_WAIT runs on the
# board's clock from its switch, after the host's began (an emulated board's clock lags
# the host's: 10 s there took up to 20 s of the host's, measured).
LOST_WAIT = 2 * USB_WAIT + 10
VIA = ("auto", "usb", "repl")


def compact(code):
    """Device code with one space per indentation level: fewer bytes over the link."""
    out = []
    for line in code.splitlines():
        body = line.lstrip(" ")
        out.append(" " * ((len(line) - len(body)) // 4) + body)
    return "\n".join(out) + "\n"


DEVICE_CODE = compact(remote.HELPERS + RECEIVER + FIN + RECEIVER_USB)
FIN_CODE = compact(remote.HELPERS + FIN)  # after the USB path's soft reset


def frame(piece):
    """One frame of image bytes (at most 65536) for the receiver; it holds no Ctrl-C."""
    c = piece.count(3)
    if not c:
        return b"D%05x0000" % len(piece) + piece
    if 32 * c > len(piece):
        body = piece.replace(b"\x1b", b"\x1b;").replace(b"\x03", b"\x1b#")
        return b"E%05x0000" % len(body) + body
    at, i = [], piece.find(3)
    while i >= 0:
        at.append(b"%04x" % i)
        i = piece.find(3, i + 1)
    head = b"D%05x%04x" % (len(piece), c)
    return head + b"".join(at) + piece.replace(b"\x03", b"\x00")


class StageError(Exception):
    """Staging failed; the message is one line for the user."""


class NoUsbLink(StageError):
    """The USB path did not come up; the board's REPL is back (raw REPL, no helpers)."""


class Result:
    """What one ``stage()`` call did."""

    def __init__(self, path, length, sha256):
        self.path = path
        self.length = length
        self.sha256 = sha256
        self.resumed_from = 0  # bytes already on the board in the part file
        self.sent = 0  # image bytes sent by this call
        self.up_to_date = False  # image already there: nothing copied
        self.via = "repl"  # how the image went: "repl" (frames) or "usb" (runtime USB)
        self.fell_back = None  # why auto's USB path gave way to the REPL, if it did
        self.seconds = 0.0

    def __repr__(self):
        return "Result(%s, sent=%d, resumed_from=%d, up_to_date=%s)" % (
            self.path,
            self.sent,
            self.resumed_from,
            self.up_to_date,
        )


def manifest(name, data, source_rev=None, target_rev=None):
    """The manifest of an image, as a dict (the order is the file's order)."""
    return {
        "file": name,
        "length": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "md5": hashlib.md5(data).hexdigest(),
        "source_revision": source_rev,
        "target_revision": target_rev,
    }


def device_dir(to):
    """``:/sd/fota``, ``/sd/fota/`` or ``sd/fota`` -> ``/sd/fota``."""
    path = "/" + to.lstrip(":").strip("/")
    return path.rstrip("/") or "/"


def _join(folder, name):
    return folder.rstrip("/") + "/" + name


class _Bar:
    """A progress bar on stderr, drawn only on a terminal."""

    def __init__(self, label, stream=None):
        self.label = label
        self.stream = stream or sys.stderr
        self.on = self.stream.isatty()
        self.t0 = time.monotonic()
        self.start = None

    def __call__(self, done, total):
        if not self.on:
            return
        if self.start is None:
            self.start = done
        rate = (done - self.start) / max(time.monotonic() - self.t0, 1e-6)
        fill = 30 * done // max(total, 1)
        self.stream.write(
            "\r%s %3d%% [%s%s] %.1f/%.1f MB %4.0f KB/s"
            % (
                self.label,
                100 * done // max(total, 1),
                "#" * fill,
                "-" * (30 - fill),
                done / 1e6,
                total / 1e6,
                rate / 1e3,
            )
        )
        self.stream.flush()

    def end(self):
        if self.on and self.start is not None:
            self.stream.write("\n")
            self.stream.flush()


def _expect(t, want):
    """Read one acknowledgement byte; turn anything else into a StageError."""
    got = t.serial.read(1)
    if got == want:
        return
    if not got:
        raise StageError("the board did not answer for %.0f s" % t.serial.timeout)
    if got == b"!":  # a write failed: the receiver drains the frames in flight, then raises
        t.serial.write(ABORT)
        got = t.serial.read(1)
    if got == b"\x04":  # the receiver ended: its traceback follows, then the prompt
        err = t.read_until(1, b"\x04", timeout=5)  # the prompt ">" is the next exec's
        exc = StageError("on the device: " + remote.error_line(err.rstrip(b"\x04")))
        exc.ended = True
        raise exc
    more = t.read_until(1, b"\x04", timeout=1)
    raise StageError("unexpected output from the board: %r" % (got + more)[:200])


def _abort(t):
    """After an interrupted transfer: Ctrl-C the receiver, drain, back at the prompt."""
    try:
        t.serial.write(b"\x03")
        t.read_until(1, b"\x04>", timeout=2, timeout_overall=10)
    except (OSError, TransportError, serial.SerialException):
        pass


def _send(t, part, data, offset, chunk, progress, window=WINDOW, before=""):
    """Copy ``data[offset:]`` to the end of ``part``; ``before``: device code run first."""
    total = len(data)
    t.exec_raw_no_follow(before + "_qf_recv(%r, %d, %d)" % (part, total - offset, chunk))
    ser = t.serial
    saved = ser.timeout
    ser.timeout = ACK_TIMEOUT
    pos = done = offset
    sizes = []  # image bytes of each frame in flight
    try:
        _expect(t, b"R")
        while done < total:
            while pos < total and len(sizes) < window:
                piece = data[pos : pos + chunk]
                ser.write(frame(piece))
                sizes.append(len(piece))
                pos += len(piece)
            _expect(t, b".")
            done += sizes.pop(0)
            if progress:
                progress(done, total)
        out, err = t.follow(timeout=ACK_TIMEOUT)
    except BaseException as exc:
        if not getattr(exc, "ended", False):
            _abort(t)
        raise
    finally:
        ser.timeout = saved
    if err:
        raise StageError("on the device: " + remote.error_line(err))
    return done - offset


def _send_usb(t, part, data, offset, chunk, progress, before=""):
    """``_send`` over the board's USB taken over by the receiver (see RECEIVER_USB)."""
    total = len(data)
    # Whole 64-byte packets in every transfer but the last, on both sides: a transfer
    # that ended mid-packet would leave the endpoint a buffer shorter than the next packet.
    chunk = max(64, chunk // 64 * 64)
    token = os.urandom(32).hex().encode()  # this run's first packet: nothing else is data
    call = "_qf_usb(%r, %d, %d, %d, %r)" % (part, total - offset, chunk, USB_WAIT * 1000, token)
    t.exec_raw_no_follow(before + call)
    t.serial.timeout = ACK_TIMEOUT
    try:
        _expect(t, b"S")
    except BaseException as exc:
        if not getattr(exc, "ended", False):
            _abort(t)
        raise
    if not remote.await_byte(t, b"G", USB_WAIT):
        # Nothing reached the receiver: it gives the USB back to the REPL (a soft reset)
        # after its own USB_WAIT, the part file untouched.
        why = (
            "the board's USB did not come back as the data link within %.0f s (is the REPL "
            "on another port, or forwarded from elsewhere?)" % USB_WAIT
        )
        if not remote.reattach(t, LOST_WAIT):
            raise StageError(
                "%s, nor its REPL within %.0f s after it: nothing copied" % (why, LOST_WAIT)
            )
        raise NoUsbLink(why)
    ser = t.serial
    ser.timeout = ACK_TIMEOUT
    sent = offset
    try:
        ser.write(token)
        while sent < total:
            piece = data[sent : sent + chunk]
            ser.write(piece)
            sent += len(piece)
            if progress:
                progress(sent, total)
        line = ser.readline()
    except (OSError, serial.SerialException) as exc:
        line = b"?" + str(exc).encode()
    except BaseException:
        remote.close(t)  # the host drops DTR: the board gives the USB back to the REPL
        raise
    # The board now gives its USB back to the REPL; talk to it there again.
    if not remote.reattach(t, USB_WAIT + 5):
        raise StageError("the board's REPL did not come back after the copy")
    if line.startswith(b"K"):
        return total - offset
    if line.startswith(b"!"):
        raise StageError("on the device: " + line[1:].decode(errors="replace").strip())
    raise StageError(
        "the board did not confirm the copy (%s); run again to resume"
        % (line[1:].decode(errors="replace").strip() if line else "no answer")
    )


def _prefix(t, part, size, data, slow):
    """``size`` when the board's ``part`` (``size`` bytes, -1: none) begins ``data``
    (hashed on the device), else -1: the part must go."""
    if size > len(data):
        return -1
    if size > 0:
        local = hashlib.sha256(data[:size]).hexdigest()
        if remote.call(t, "_qf_hash(%r, %d)" % (part, size), slow) != local:
            return -1
    return size


def stage(
    t,
    image,
    to="/sd/fota",
    source_rev=None,
    target_rev=None,
    chunk=CHUNK,
    progress=None,
    after_copy=None,
    window=WINDOW,
    via="auto",
    notice=None,
):
    """Stage ``image`` (a local path) into folder ``to`` on the board behind transport ``t``.

    ``progress(done, total)`` is called after each acknowledged frame (each piece written,
    over USB); ``after_copy()`` between the copy and the verification (tests use it).
    ``via``: "repl" (frames through the REPL), "usb" (the board's USB taken over: rp2 and
    other boards with ``machine.USBDevice`` and a built-in USB-CDC) or "auto" (usb on rp2,
    else repl; the REPL when the USB path does not come up). ``notice(line)`` is told when
    auto falls back. Returns a ``Result``.
    """
    t0 = time.monotonic()
    with open(image, "rb") as f:
        data = f.read()
    name = os.path.basename(image)
    folder = device_dir(to)
    dst = _join(folder, name)
    part, man_path = dst + ".part", dst + ".json"
    info = manifest(name, data, source_rev, target_rev)
    man_text = (json.dumps(info, indent=1) + "\n").encode()
    result = Result(dst, len(data), info["sha256"])

    try:
        # One exec defines the helpers and the receiver and asks all we need to know.
        dst_size, part_size, old_man, sd, free, usb = remote.call(
            t,
            "_qf_size(%r), _qf_size(%r), _qf_size(%r), _qf_size('/sd'), _qf_room(%r), "
            "_qf_usbok()" % (dst, part, man_path, folder),
            prelude=DEVICE_CODE,
        )
        if via == "usb" and not usb:
            raise StageError(
                "--via usb: the board has no runtime USB device with a built-in USB-CDC "
                "(machine.USBDevice); use --via repl"
            )
        result.via = "usb" if via == "usb" or (via == "auto" and usb == 2) else "repl"
        if (folder == "/sd" or folder.startswith("/sd/")) and sd < 0:
            raise StageError("the board has no /sd (SD card not mounted?); use --to :/fota")
        slow = 30 + len(data) / 50e3  # s of silence allowed while the device hashes
        if dst_size == len(data) and remote.call(t, "_qf_hash(%r)" % dst, slow) == info["sha256"]:
            result.up_to_date = True
            remote.run(t, "_qf_rm(%r)\n_qf_put(%r, %r)" % (part, man_path, man_text))
        else:
            part_size = _prefix(t, part, part_size, data, slow)
            offset = max(part_size, 0)
            need = len(data) - offset + MANIFEST_ROOM
            reclaim = max(dst_size, 0) + max(old_man, 0)
            if free + reclaim < need:
                raise StageError(
                    "the board lacks room in %s: %d bytes needed, %d free; nothing copied"
                    % (folder, need, free + reclaim)
                )
            # From here on the board changes: first the manifest goes, then the old image.
            before = "_qf_rm(%r)\n_qf_rm(%r)\n_qf_mkdirs(%r)\n" % (man_path, dst, folder)
            if part_size < 0:
                before += "_qf_rm(%r)\n" % part
            result.resumed_from = offset
            if result.via == "usb":
                try:
                    result.sent = _send_usb(t, part, data, offset, chunk, progress, before)
                except NoUsbLink as exc:
                    if via == "usb":
                        raise StageError("%s: nothing copied; use --via repl" % exc) from None
                    # The REPL is back after the receiver's soft reset (its helpers gone):
                    # define them again and go on from what the part file holds now.
                    size = remote.call(t, "_qf_size(%r)" % part, prelude=DEVICE_CODE)
                    part_size = _prefix(t, part, size, data, slow)
                    offset = max(part_size, 0)
                    result.via, result.fell_back, result.resumed_from = "repl", str(exc), offset
                    if notice:
                        notice(
                            "%s; going on through the REPL%s"
                            % (exc, ", resuming at %d" % offset if offset else "")
                        )
                    before = "_qf_rm(%r)\n" % part if part_size < 0 else ""
                    result.sent = _send(t, part, data, offset, chunk, progress, window, before)
            else:
                result.sent = _send(t, part, data, offset, chunk, progress, window, before)
            if after_copy:
                after_copy()
            # Verified (sha256 of the part read back from storage), renamed, manifest written.
            got = remote.call(
                t, "_qf_fin(%r, %r, %r, %r, %r)" % (part, dst, man_path, info["sha256"], man_text),
                slow, prelude=FIN_CODE if result.via == "usb" else "",
            )  # fmt: skip
            if got != info["sha256"]:
                raise StageError(
                    "sha256 mismatch on the device: %s, expected %s (part removed; run again)"
                    % (got, info["sha256"])
                )
    except remote.RemoteError as exc:
        raise StageError(str(exc)) from None
    except (TransportError, serial.SerialException, OSError) as exc:
        raise StageError("link: %s" % exc) from None
    result.seconds = time.monotonic() - t0
    return result


def add_parser(subparsers):
    p = subparsers.add_parser(
        "stage",
        help="copy an image and its manifest onto a board (verified, resumable)",
        description="Write the manifest (length, sha256, md5, revisions) and copy image and "
        "manifest onto the board, hash-verified on the device. An interrupted copy resumes "
        "where it stopped; a board without room is refused before copying.",
        epilog="example: qfota stage fw.bin --device /dev/ttyACM0 --to :/sd/fota "
        "--source-rev R1 --target-rev R2",
    )
    p.add_argument("image", help="the firmware image (delta package) to stage")
    p.add_argument("--device", help="serial port of the board (default: first USB serial)")
    p.add_argument("--to", default=":/sd/fota", help="folder on the board (default :/sd/fota)")
    p.add_argument("--source-rev", help="revision the modem must run before the update (required)")
    p.add_argument("--target-rev", help="revision the modem runs after the update (required)")
    p.add_argument(
        "--chunk",
        type=int,
        default=CHUNK,
        help="bytes per frame, or per USB transfer (rounded down to a multiple of 64) "
        "(default %(default)s)",
    )
    p.add_argument(
        "--via",
        choices=VIA,
        default="auto",
        help="how the image goes: 'usb' takes the board's USB over from its REPL for the "
        "copy (machine.USBDevice; the port goes and comes back), 'repl' sends frames "
        "through the REPL; 'auto' (default): usb on rp2, else repl, and the REPL when the "
        "port does not come back as the data link",
    )
    p.set_defaults(func=run)


def _refusal(args):
    """What is wrong with the command line (one line), or None; checked before connecting."""
    if not os.path.isfile(args.image):
        return "no such file: %s" % args.image
    if os.path.getsize(args.image) == 0:
        return "%s is empty: nothing to stage" % args.image
    if not args.to.startswith(":"):
        return "--to must be a folder on the board, starting with ':' (e.g. :/sd/fota or :/fota)"
    if not args.source_rev or not args.target_rev:
        return (
            "--source-rev and --target-rev are required: the application refuses a manifest "
            "without the revision the modem must run before and after"
        )
    if not 48 <= args.chunk <= 65536:
        return "--chunk must be within 48..65536"
    return None


def _say(bar, line):
    try:
        bar.end()
        print("qfota stage: %s" % line, file=sys.stderr, flush=True)
    except (OSError, ValueError):  # a closed stderr does not cost the copy
        pass


def run(args):
    problem = _refusal(args)
    if problem:
        print("qfota stage: %s" % problem, file=sys.stderr)
        return 2
    try:
        t = remote.connect(args.device)
    except remote.RemoteError as exc:
        print("qfota stage: cannot open the board: %s" % exc, file=sys.stderr)
        return 2
    bar = _Bar("staging %s" % os.path.basename(args.image))
    try:
        res = stage(
            t, args.image, args.to, args.source_rev, args.target_rev, args.chunk,
            progress=bar, via=args.via, notice=lambda line: _say(bar, line),
        )  # fmt: skip
    except (StageError, remote.RemoteError) as exc:
        bar.end()
        print("qfota stage: %s" % exc, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        bar.end()
        print(
            "qfota stage: interrupted; what was copied stays on the board as a .part file "
            "(no manifest, so the application will not use it) and the same command resumes "
            "it; a board copying over USB gives its USB back to the REPL at once, or within "
            "%.0f s" % USB_WAIT,
            file=sys.stderr,
        )
        return 130
    finally:
        remote.close(t)
    bar.end()
    if res.up_to_date:
        print("%s already on the board (sha256 verified); manifest written" % res.path)
        return 0
    how = " (resumed at %d)" % res.resumed_from if res.resumed_from else ""
    print(
        "staged %s: %d bytes%s in %.1f s (%.0f KB/s, via %s), sha256 verified on the device"
        % (
            res.path,
            res.length,
            how,
            res.seconds,
            res.sent / max(res.seconds, 1e-6) / 1e3,
            res.via,
        )
    )
    return 0
