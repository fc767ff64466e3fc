"""``machine.UART`` as a qfota port (rp2, esp32, stm32, ...).

    from machine import UART, Pin
    uart = UART(0, 921600, tx=Pin(0), rx=Pin(1), cts=Pin(2), rts=Pin(3),
                flow=UART.RTS | UART.CTS, txbuf=1024, rxbuf=1024, timeout=0)
    port = UartPort(uart)

``write(buf, off, n)`` is one driver call that may take part of the buffer, or return
None when nothing went out: both are handled by the driver. On esp32, ``write`` blocks
while CTS is held; ``max_write`` keeps each call small so a board's watchdog (fed by
``on_idle``) bounds the wait (docs/FIELD.md, "UART per port").

``txbuf``: the UART's transmit buffer size, to give only what it has room for. When the
ring buffer is full, rp2's ``UART.write`` (even with ``timeout=0``) spins byte by byte
until a millisecond passes, and goes on byte by byte, with a lock and a clock read per
byte, while the line drains: at 921,600 baud that took 60% of an RP2040 in a whole
update. With ``txbuf`` set, a write takes at most the room left since the UART was last
seen idle (``txdone()``), so each call copies into the ring buffer and returns; when
there is no room the driver sleeps (``wait_writable``) while the interrupt drains it.
``baud`` (with ``txbuf``): the line rate, so that sleep lasts until the buffer should be
nearly empty (then 1 ms steps until ``txdone()``) instead of waking every millisecond:
at 921,600 baud that took 8% of an RP2040 (bench/pico_bench.py). When CTS holds the
line the estimate runs out early and the steps are 1 ms, as without ``baud``.
"""

from qfota.compat import sleep_ms, ticks_diff, ticks_ms


class UartPort:
    def __init__(self, uart, max_write=0, on_idle=None, txbuf=0, baud=0):
        self.uart = uart
        self.max_write = max_write
        self.on_idle = on_idle
        self.txbuf = txbuf
        self.baud = baud
        self._queued = 0  # bytes written since the UART was last seen idle (txbuf set)
        self._since = 0  # ticks_ms of the first of them

    def readinto(self, buf):
        if not self.uart.any():
            return 0
        return self.uart.readinto(buf) or 0

    def write(self, buf, off, n):
        if self.max_write and n > self.max_write:
            n = self.max_write
        if self.txbuf:
            if self._queued and self.uart.txdone():
                self._queued = 0
            room = self.txbuf - self._queued
            if room <= 0:
                return 0
            if n > room:
                n = room
            if not self._queued:
                self._since = ticks_ms()
            w = self.uart.write(buf, off, n) or 0
            self._queued += w
            return w
        return self.uart.write(buf, off, n) or 0

    def wait(self, ms):
        # UARTs have no poll on every port: sleep in 1 ms steps while nothing arrives.
        while ms > 0:
            if self.uart.any():
                return True
            if self.on_idle is not None:
                self.on_idle()
            sleep_ms(1)
            ms -= 1
        return bool(self.uart.any())

    def wait_writable(self, ms):
        if self.on_idle is not None:
            self.on_idle()
        step = 1
        if self.baud and self._queued:
            # ms until the queued bytes are out at the line rate (10 bits a byte), less one
            left = self._queued * 10000 // self.baud - ticks_diff(ticks_ms(), self._since) - 1
            if left > step:
                step = left
        sleep_ms(step if step < ms else ms)
        return True

    def close(self):
        pass
