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


class RemoteError(Exception):
    """A failure on the board or on the link, with a one-line message."""


def find_device():
    """The first USB serial port, as ``mpremote connect auto`` picks it."""
    for port in sorted(serial.tools.list_ports.comports()):
        if port.vid is not None and port.pid is not None:
            return port.device
    raise RemoteError("no board found on a USB serial port; use --device")


def connect(device=None, soft_reset=True):
    """Open ``device`` (auto-detected when None) and enter the raw REPL."""
    device = device or find_device()
    try:
        t = SerialTransport(device, baudrate=115200)
    except TransportError as exc:
        raise RemoteError("%s (is it in use by another program?)" % exc.args[0]) from None
    try:
        t.enter_raw_repl(soft_reset=soft_reset)
    except (TransportError, OSError, serial.SerialException) as exc:
        close(t)
        raise RemoteError("%s: no MicroPython raw REPL (%s)" % (device, exc)) from None
    return t


def close(t):
    """Leave the raw REPL and close the port; never raises."""
    try:
        if t.in_raw_repl:
            t.exit_raw_repl()
        t.close()
    except (OSError, TransportError, serial.SerialException):
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
