"""One port, one updater: hold a serial device exclusively (Linux/POSIX, CPython).

    lock = PortLock("/dev/ttyUSB0")   # raises PortBusy, or OSError when it cannot open
    ...                               # open the port, run the update
    lock.exclusive()                  # TIOCEXCL: further open()s fail (not for root)
    lock.release()

Before any byte or line setting reaches the device:

1. ``open()`` fails with EBUSY: another program set TIOCEXCL (a non-root user is refused).
2. ``TIOCGEXCL`` says the tty is exclusive: another program holds it (root passes 1),
   unless the owner record says a qfota set it and that process is gone (``kill -9``,
   the OOM killer): the flag outlives its owner while anything else keeps the tty open
   (a pty's other side, the simulator's), so it is cleared (TIOCNXCL) and we go on.
3. ``flock(LOCK_EX | LOCK_NB)`` fails: another qfota (or any flock user, e.g. a
   ``flock``-aware terminal program) holds it.

"Busy" names the qfota that holds the port by its pid. The owner record is a small
file per port beside the port's journal (``$QFOTA_STATE_DIR``): the holder's pid and its
start time (a pid reused by another process is not taken for the owner).

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


def _start_time(pid):
    """Process ``pid``'s start time (clock ticks since boot), or None when it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        try:
            os.kill(pid, 0)  # no /proc: alive or not is all there is
        except ProcessLookupError:
            return None
        except OSError:
            pass  # alive, someone else's
        return -1
    # pid (comm) state ppid ...: comm may hold spaces and parentheses; field 22 is the start
    return int(stat[stat.rindex(")") + 2 :].split()[19])


def owner_path(device):
    """The owner record of ``device``: beside the port's journal."""
    from qfota.runner import port_journal

    return port_journal(device).path[: -len(".json")] + ".owner"


def _owner(path):
    """``(pid, alive)`` from the owner record, or None when there is none."""
    try:
        with open(path) as f:
            pid, start = (int(x) for x in f.read().split()[:2])
    except (OSError, ValueError):
        return None
    now = _start_time(pid)
    return pid, now is not None and (now == -1 or start == -1 or now == start)


class PortLock:
    def __init__(self, device):
        self.device = device
        self.fd = None
        self.cleared = None  # pid of a dead qfota whose exclusive flag was cleared
        self._excl = False
        self._watch = None
        self._stop = threading.Event()
        self._record = owner_path(device)
        owner = _owner(self._record)
        held = "another program holds it exclusively"
        if owner is not None and owner[1]:
            held = "qfota pid %d holds it" % owner[0]
        try:
            fd = os.open(device, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as e:
            if e.errno == errno.EBUSY:
                if owner is not None and not owner[1]:
                    held = (
                        "an exclusive flag left by qfota pid %d, which is gone; only root can "
                        "clear it, or close whatever else keeps the device open" % owner[0]
                    )
                raise _busy(device, held) from None
            raise
        try:
            if self._get_excl(fd):
                if owner is None or owner[1] or not self._can_flock(fd):
                    raise _busy(device, held)
                fcntl.ioctl(fd, TIOCNXCL)  # its owner died without clearing it
                self.cleared = owner[0]
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    if owner is None or not owner[1]:
                        held = "another qfota or program has it locked"
                    raise _busy(device, held) from None
                raise
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        self._write_record()

    @staticmethod
    def _can_flock(fd):
        """Nobody holds the flock (every qfota holds it while it owns the port)."""
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True

    def _write_record(self):
        pid = os.getpid()
        tmp = self._record + ".tmp"
        try:
            with open(tmp, "w") as f:
                f.write("%d %d\n" % (pid, _start_time(pid) or -1))
            os.rename(tmp, self._record)
        except OSError:
            # No state directory, or a full one: a stale flag then reads as another
            # program's (the journal's failure is what the run reports).
            try:
                os.remove(tmp)
            except OSError:
                pass

    def _drop_record(self):
        owner = _owner(self._record)
        if owner is not None and owner[0] == os.getpid():
            try:
                os.remove(self._record)
            except OSError:
                pass

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
        self._drop_record()
        try:
            os.close(self.fd)  # releases the flock
        finally:
            self.fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()
