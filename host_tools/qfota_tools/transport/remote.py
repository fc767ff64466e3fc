"""The board end of ``qfota stage`` and ``qfota deploy``: mpremote's transport and helpers.

mpremote's Python API (``mpremote.transport_serial.SerialTransport``) is unstable; we pin
mpremote (1.29.0) and keep every use of it in this module and its two callers::

    from qfota_tools.transport import remote
    t = remote.connect("/dev/ttyACM0")      # in the raw REPL, after a soft reset
    remote.run(t, remote.HELPERS)
    print(remote.call(t, "_qf_size('/main.py')"))
    remote.close(t)
"""

import ast
import contextlib
import io
import time

import serial
import serial.tools.list_ports
from mpremote.transport import TransportError
from mpremote.transport_serial import SerialTransport

# Helpers defined on the device once per session; all names start with _qf_.
HELPERS = """
import os
def _qf_size(p):
    try:
        return os.stat(p)[6]
    except OSError:
        return -1
def _qf_hash(p, n=-1):
    import hashlib, binascii
    h = hashlib.sha256()
    b = bytearray(4096)
    m = memoryview(b)
    with open(p, 'rb') as f:
        while n:
            k = f.readinto(b if n < 0 or n >= 4096 else m[:n])
            if not k:
                break
            h.update(b if k == 4096 else m[:k])
            if n > 0:
                n -= k
    return binascii.hexlify(h.digest()).decode()
def _qf_hashes(ps):
    return [_qf_hash(p) if _qf_size(p) >= 0 else None for p in ps]
def _qf_free(p):
    s = os.statvfs(p)
    return (s[1] or s[0]) * s[4]
def _qf_mkdirs(p):
    d = ''
    for x in p.strip('/').split('/'):
        d += '/' + x
        if _qf_size(d) < 0:
            os.mkdir(d)
def _qf_rm(p):
    if _qf_size(p) >= 0:
        os.remove(p)
def _qf_put(p, data):
    with open(p + '.tmp', 'wb') as f:
        f.write(data)
    _qf_rm(p)
    os.rename(p + '.tmp', p)
"""


LINK_TIMEOUT = 10.0  # s: the longest a board may take to answer a read on a port in use
# (mpremote's raw paste waits for each window's ack in one serial read: an emulated board on
# a loaded host takes well over a second)


class RemoteError(Exception):
    """A failure on the board or on the link, with a one-line message."""


def find_device():
    """The first USB serial port, as ``mpremote connect auto`` picks it."""
    for port in sorted(serial.tools.list_ports.comports()):
        if port.vid is not None and port.pid is not None:
            return port.device
    raise RemoteError("no board found on a USB serial port; use --device")


def connect(device=None, soft_reset=True):
    """Open ``device`` (auto-detected when None) and enter the raw REPL: asked twice (a
    board busy re-enumerating its USB may miss the first Ctrl-C), each read bounded by
    LINK_TIMEOUT (mpremote reads a pty without a bound otherwise)."""
    device = device or find_device()
    try:
        t = SerialTransport(device, baudrate=115200, timeout=LINK_TIMEOUT)
    except TransportError as exc:
        raise RemoteError("%s (is it in use by another program?)" % exc.args[0]) from None
    for _ in range(2):
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # mpremote prints what it got
                t.enter_raw_repl(soft_reset=soft_reset)
            return t
        except (TransportError, OSError, serial.SerialException) as exc:
            why = exc
    close(t)
    raise RemoteError("%s: no MicroPython raw REPL (%s)" % (device, why)) from None


def close(t):
    """Leave the raw REPL and close the port; never raises."""
    try:
        if t.in_raw_repl:
            t.exit_raw_repl()
        t.close()
    except (OSError, TransportError, serial.SerialException):
        pass


BANNER = b"raw REPL; CTRL-B to exit\r\n"


def _open(device):
    # A short timeout while polling for the board to come back (see _reopen).
    return serial.serial_for_url(
        device, baudrate=115200, interCharTimeout=1, exclusive=True, timeout=0.2
    )


def await_byte(t, want, timeout):
    """Close ``t``'s port and open it again until the board sends ``want`` on it.

    For a board that takes its USB over from the REPL (``qfota stage``'s USB path): the
    port goes away and comes back as the same device. Bytes before ``want`` are dropped;
    a port that fails to open or to read is opened again. False after ``timeout`` s.
    """

    def sees_want(deadline):
        while time.monotonic() < deadline:
            if t.serial.read(1) == want:
                return True
        return False

    return _reopen(t, timeout, sees_want)


def reattach(t, timeout):
    """Open ``t``'s port again and enter the raw REPL (no soft reset), retrying until
    ``timeout`` s. False if the REPL never answered."""

    def in_raw_repl(deadline):
        left = max(1.0, deadline - time.monotonic())
        with contextlib.redirect_stdout(io.StringIO()):  # mpremote prints what it got
            t.enter_raw_repl(soft_reset=False, timeout_overall=min(3.0, left))
        # The board's own banner (after its soft reset) may come besides the one asked
        # for: let it all arrive, drop it, and ask once more.
        _quiet(t.serial, 0.1, deadline)
        t.serial.write(b"\x01")
        return t.read_until(1, BANNER, timeout_overall=3).endswith(BANNER)

    return _reopen(t, timeout, in_raw_repl)


def _reopen(t, timeout, ready):
    """Open ``t``'s port afresh (closing it first) until ``ready(deadline)`` is true of the
    board behind it, retrying a port that fails to open or to answer; False after
    ``timeout`` s."""
    deadline = time.monotonic() + timeout
    _drop(t)
    while time.monotonic() < deadline:
        try:
            t.serial = _open(t.device_name)
        except (OSError, serial.SerialException):
            time.sleep(0.05)
            continue
        try:
            if ready(deadline):
                t.serial.timeout = LINK_TIMEOUT  # in use again: reads wait for the board
                return True
        except (OSError, TransportError, serial.SerialException):
            pass
        _drop(t)
        time.sleep(0.05)
    return False


def _quiet(ser, quiet, deadline):
    """Drop input until none has come for ``quiet`` s, or until ``deadline``
    (``time.monotonic()``): a board that never stops talking does not hold us."""
    while time.monotonic() < deadline:
        time.sleep(quiet)
        n = ser.in_waiting
        if not n:
            return
        ser.read(n)


def _drop(t):
    t.in_raw_repl = False
    _close(t.serial)


def _close(ser):
    try:
        ser.close()
    except (OSError, serial.SerialException):
        pass


def error_line(err):
    """The last line of a device traceback (``OSError: [Errno 28] ENOSPC``)."""
    lines = [x.strip() for x in err.decode(errors="replace").splitlines() if x.strip()]
    return lines[-1] if lines else "device error"


def run(t, code, timeout=10):
    """Execute ``code`` on the device; its output, or RemoteError with the device's error.

    ``timeout`` bounds the silence between two characters of output (None: no bound).
    """
    try:
        out, err = t.exec_raw(code, timeout=timeout)
    except TransportError as exc:
        raise RemoteError("link: %s" % exc) from None
    if err:
        raise RemoteError("on the device: " + error_line(err))
    return out.decode(errors="replace")


def call(t, expr, timeout=10, prelude=""):
    """Evaluate a Python literal-valued expression on the device (``prelude``: code run
    first, in the same exec)."""
    text = run(t, "%sprint(repr((%s)))" % (prelude, expr), timeout).strip()
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise RemoteError("unexpected answer from the device: %r" % text[:200]) from None
