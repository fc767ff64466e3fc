"""pyserial as a qfota port, for running the engine on a PC (``--runtime cpython``).

pyserial opens the device non-blocking; reads and writes go straight to its file
descriptor so a write that cannot go out returns 0 instead of raising, as
``machine.UART`` does.

    port = SerialPort("/dev/ttyUSB0", 921600, flow_hw=True)

The port is held exclusively (``portlock.PortLock``: flock, then TIOCEXCL once pyserial
has it open): a second updater gets ``PortBusy`` before any byte or line setting reaches
the device. Pass ``lock=`` a ``PortLock`` taken earlier (``qfota update`` takes it before
anything else, to refuse a busy port with exit 2); the caller then releases it.
"""

import os
import select

import serial

from .portlock import PortLock


class SerialPort:
    def __init__(self, device, baud=115200, flow_hw=True, lock=None):
        self._own_lock = lock is None
        self.lock = PortLock(device) if lock is None else lock
        try:
            self.serial = serial.Serial(device, baud, timeout=0, write_timeout=0, rtscts=flow_hw)
        except (serial.SerialException, ValueError) as exc:
            if self._own_lock:
                self.lock.release()
            raise OSError(str(exc)) from None
        self.lock.exclusive()
        self.fd = self.serial.fileno()

    def readinto(self, buf):
        try:
            data = os.read(self.fd, len(buf))
        except BlockingIOError:
            return 0
        # Any other OSError (EIO: the device was unplugged, the pty's other end closed)
        # goes to the driver, which stops with the stage and the bytes sent. An empty read
        # is no data yet (the tty reads with VMIN=0).
        n = len(data)
        buf[:n] = data
        return n

    def write(self, buf, off, n):
        try:
            return os.write(self.fd, memoryview(buf)[off : off + n])
        except BlockingIOError:
            return 0

    def wait(self, ms):
        r, _, _ = select.select([self.fd], [], [], ms / 1000)
        return bool(r)

    def wait_writable(self, ms):
        _, w, _ = select.select([], [self.fd], [], ms / 1000)
        return bool(w)

    def close(self):
        try:
            self.serial.close()
        finally:
            if self._own_lock:
                self.lock.release()
