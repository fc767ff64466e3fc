"""``machine.UART`` as a qfota port (rp2, esp32, stm32, ...).

    from machine import UART, Pin
    uart = UART(0, 921600, tx=Pin(0), rx=Pin(1), cts=Pin(2), rts=Pin(3),
                flow=UART.RTS | UART.CTS, txbuf=1024, rxbuf=1024, timeout=0)
    port = UartPort(uart)

``write(buf, off, n)`` is one driver call that may take part of the buffer, or return
None when nothing went out: both are handled by the driver. On esp32, ``write`` blocks
while CTS is held; ``max_write`` keeps each call small so a board's watchdog (fed by
``on_idle``) bounds the wait (FIELD_NOTES).
"""

from qfota.compat import sleep_ms


class UartPort:
    def __init__(self, uart, max_write=0, on_idle=None):
        self.uart = uart
        self.max_write = max_write
        self.on_idle = on_idle

    def readinto(self, buf):
        if not self.uart.any():
            return 0
        return self.uart.readinto(buf) or 0

    def write(self, buf, off, n):
        if self.max_write and n > self.max_write:
            n = self.max_write
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
        sleep_ms(ms if ms < 2 else 1)
        return True

    def close(self):
        pass
