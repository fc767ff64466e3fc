"""One port, one updater: hold a serial device exclusively (Linux/POSIX, CPython).

    lock = PortLock("/dev/ttyUSB0")   # raises PortBusy, or OSError when it cannot open
    ...                               # open the port, run the update
    lock.exclusive()                  # TIOCEXCL: further open()s fail (not for root)
    lock.release()

Three checks, in this order, before any byte or line setting reaches the device:

1. ``open()`` fails with EBUSY: another program set TIOCEXCL (a non-root user is refused).
2. ``TIOCGEXCL`` says the tty is exclusive: another program holds it (root passes 1).
3. ``flock(LOCK_EX | LOCK_NB)`` fails: another qfota (or any flock user, e.g. a
   ``flock``-aware terminal program) holds it.

The lock is held by a descriptor of our own, so it works for a port opened later by
pyserial in this process, and for the MicroPython child of ``--runtime micropython``
(which has no fcntl/ioctl): the parent holds it for the child's lifetime and sets
TIOCEXCL only once the child has the device open (``exclusive_when_open(pid)``), so a
non-root child is not locked out of its own port.
"""

import errno
import fcntl
import os
import struct
import threading
import time

TIOCEXCL = 0x540C
TIOCNXCL = 0x540D
TIOCGEXCL = 0x80045440  # _IOR('T', 0x40, int)


class PortBusy(OSError):
    """The port is held by another program or another qfota."""


def _busy(device, why):
    return PortBusy(errno.EBUSY, "port busy: %s (%s)" % (device, why))


class PortLock:
    def __init__(self, device):
        self.device = device
        self.fd = None
        self._excl = False
        self._watch = None
        self._stop = threading.Event()
        try:
            fd = os.open(device, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as e:
            if e.errno == errno.EBUSY:
                raise _busy(device, "another program holds it exclusively") from None
            raise
        try:
            if self._get_excl(fd):
                raise _busy(device, "another program holds it exclusively")
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise _busy(device, "another qfota or program has it locked") from None
                raise
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd

    @staticmethod
    def _get_excl(fd):
        try:
            buf = fcntl.ioctl(fd, TIOCGEXCL, struct.pack("i", 0))
        except OSError:  # not a tty, or a kernel without TIOCGEXCL: the flock still holds
            return False
        return struct.unpack("i", buf)[0] != 0

    def exclusive(self):
        """TIOCEXCL: from now on open() of the device fails with EBUSY (except for root)."""
        if self.fd is None or self._excl:
            return
        try:
            fcntl.ioctl(self.fd, TIOCEXCL)
            self._excl = True
        except OSError:
            pass  # not a tty: the flock is all there is

    def exclusive_when_open(self, pid, is_running, poll_s=0.02):
        """Set TIOCEXCL once process ``pid`` has the device open (seen in /proc/PID/fd),
        in a background thread that ends with the process (``is_running()`` false)."""
        real = os.path.realpath(self.device)

        def has_it():
            try:
                for name in os.listdir("/proc/%d/fd" % pid):
                    try:
                        if os.readlink("/proc/%d/fd/%s" % (pid, name)) == real:
                            return True
                    except OSError:
                        pass
            except OSError:
                pass
            return False

        def watch():
            while not self._stop.is_set() and is_running():
                if has_it():
                    self.exclusive()
                    return
                time.sleep(poll_s)

        self._watch = threading.Thread(target=watch, name="qfota-portlock", daemon=True)
        self._watch.start()

    def release(self):
        self._stop.set()
        if self._watch is not None:
            self._watch.join(1.0)
        if self.fd is None:
            return
        if self._excl:
            try:
                fcntl.ioctl(self.fd, TIOCNXCL)
            except OSError:
                pass
            self._excl = False
        try:
            os.close(self.fd)  # releases the flock
        finally:
            self.fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()
