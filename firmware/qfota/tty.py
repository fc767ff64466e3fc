"""A serial tty as a qfota port, for the MicroPython unix port (and CPython).

The unix port has no ``machine.UART``, ``os.open`` or ``fcntl``: the tty is opened with
the builtin ``open``, put in raw mode with ``VMIN=0, VTIME=0`` so reads return what is
there, and polled with ``select.poll``. Writes go out only after ``POLLOUT`` and at most
256 bytes at a time, so a blocking descriptor never blocks for long.

    port = TtyPort("/dev/ttyUSB0", 921600, flow_hw=True)
    session = qfota.driver.update(port, "EC200T.bin")
"""

import select
import termios

from qfota.defaults import BAUDS, DEFAULTS

_VMIN = 6
_VTIME = 5
_CFLAG = 2
_CRTSCTS = 0x80000000  # not exported by MicroPython's termios
_WRITE_MAX = 256


class TtyPort:
    def __init__(self, path, baud=DEFAULTS["baud"], flow_hw=True):
        if baud not in BAUDS:
            raise ValueError("baud must be one of %s" % (BAUDS,))
        self.f = open(path, "r+b", buffering=0)
        fd = self.f.fileno()
        termios.setraw(fd)
        attr = termios.tcgetattr(fd)
        cc = attr[6]
        cc[_VMIN] = 0
        cc[_VTIME] = 0
        speed = getattr(termios, "B%d" % baud)
        attr[4] = speed
        attr[5] = speed
        if flow_hw:
            attr[_CFLAG] |= _CRTSCTS
        else:
            attr[_CFLAG] &= ~_CRTSCTS
        termios.tcsetattr(fd, termios.TCSANOW, attr)
        self._pin = select.poll()
        self._pin.register(self.f, select.POLLIN)
        self._pout = select.poll()
        self._pout.register(self.f, select.POLLOUT)
        # ipoll (MicroPython) polls without allocating; CPython has only poll.
        self._ipoll = hasattr(self._pin, "ipoll")
        # The first ipoll of a poll object allocates its result tuple: do it here, not
        # inside a stream that runs under heap_lock.
        self._ready(self._pin, 0)
        self._ready(self._pout, 0)

    def _ready(self, p, ms):
        if self._ipoll:
            for _obj, _ev in p.ipoll(ms):
                return True
            return False
        return bool(p.poll(ms))

    def readinto(self, buf):
        if not self._ready(self._pin, 0):
            return 0
        n = self.f.readinto(buf)
        return n or 0

    def write(self, buf, off, n):
        if not self._ready(self._pout, 0):
            return 0
        if n > _WRITE_MAX:
            n = _WRITE_MAX
        if self._ipoll:
            return self.f.write(buf, off, n)
        return self.f.write(memoryview(buf)[off : off + n])

    def wait(self, ms):
        return self._ready(self._pin, ms)

    def wait_writable(self, ms):
        return self._ready(self._pout, ms)

    def close(self):
        self.f.close()
