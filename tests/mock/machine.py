"""A fake ``machine`` module for tests, on CPython and on the MicroPython unix port.

No such package exists on PyPI. Only ``UART`` (and ``Pin``) are faked; the modem behind
the UART is a *peer*: any object with ``write(data, now_ms) -> int`` and
``read(now_ms) -> bytes`` (the EC200 simulator's model, or ``ScriptedModem``)::

    uart = machine.UART(1, 115200, peer=ScriptedModem({...}))
    uart = machine.UART(1, 115200, peer=m, max_write=7, none_every=3)  # partial writes, None

``machine.UART.default_peer`` is used by code that builds the UART itself.
"""

import time

try:
    _ticks = time.ticks_ms
except AttributeError:  # CPython

    def _ticks():
        return int(time.monotonic() * 1000)


class Pin:
    OUT = 1
    IN = 0

    def __init__(self, id, mode=-1, value=None):
        self.id = id
        self._v = value or 0

    def value(self, v=None):
        if v is None:
            return self._v
        self._v = v


class UART:
    RTS = 1
    CTS = 2
    default_peer = None

    def __init__(self, id=0, baudrate=115200, peer=None, max_write=0, none_every=0, **kw):
        self.id = id
        self.peer = peer if peer is not None else UART.default_peer
        self.max_write = max_write  # accept at most this many bytes per write (0: all)
        self.none_every = none_every  # every Nth write takes nothing and returns None
        self.writes = 0
        self.written = 0
        self._rx = b""
        self.init(baudrate, **kw)

    def init(self, baudrate=115200, flow=0, timeout=0, **kw):
        self.baudrate = baudrate
        self.flow = flow
        self.timeout = timeout
        self.kw = kw

    def deinit(self):
        pass

    def _pull(self):
        more = self.peer.read(_ticks())
        if more:
            self._rx += more

    def any(self):
        self._pull()
        return len(self._rx)

    def readinto(self, buf, nbytes=None):
        self._pull()
        n = len(buf) if nbytes is None else nbytes
        if n > len(self._rx):
            n = len(self._rx)
        if not n:
            return None
        buf[:n] = self._rx[:n]
        self._rx = self._rx[n:]
        return n

    def read(self, n=-1):
        self._pull()
        if not self._rx:
            return None
        n = len(self._rx) if n < 0 else n
        out = self._rx[:n]
        self._rx = self._rx[n:]
        return out

    def write(self, buf, off=0, n=-1):
        self.writes += 1
        if self.none_every and self.writes % self.none_every == 0:
            return None
        if n < 0:
            n = len(buf) - off
        if self.max_write and n > self.max_write:
            n = self.max_write
        took = self.peer.write(bytes(buf[off : off + n]), _ticks())
        self.written += took
        if took == 0:
            return None  # as machine.UART does when nothing went out before the timeout
        return took

    def flush(self):
        pass

    def txdone(self):
        return True
