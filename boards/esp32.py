"""Board: ESP32 (DevKitC / WROOM-32), modem on UART2 with RTS/CTS, SD card in SPI mode.

Deployed as ``/board.py`` (``qfota deploy --board esp32``). ``qfota.app`` uses
``open_port``, ``mount_storage`` and ``JOURNAL_PATH``::

    import board
    port = board.open_port()           # UART2, RTS/CTS on, writes that never block
    root = board.mount_storage()       # "/sd"

Wiring (the EC200T main UART is 1.8 V logic, the ESP32 3.3 V: every signal goes through
a level shifter, e.g. a TXB0104 with VCCA = 1.8 V from the module's VDD_EXT, VCCB = 3V3)::

    ESP32            level shifter         EC200T main UART
    GPIO17 U2 TX     ->  3.3 V -> 1.8 V ->  RXD   (module input)
    GPIO16 U2 RX     <-  1.8 V -> 3.3 V <-  TXD   (module output)
    GPIO27 U2 RTS    ->  3.3 V -> 1.8 V ->  RTS   (module input: "MCU may receive")
    GPIO26 U2 CTS    <-  1.8 V -> 3.3 V <-  CTS   (module output: "module may receive")
    GND              ---------------------  GND

    SD card (3.3 V, machine.SDCard slot 2 = SPI): GPIO18 SCK, GPIO23 MOSI, GPIO19 MISO,
    GPIO5 CS, 3V3, GND.

Quectel names its pins from the module's (DCE) side: data lines cross, flow-control lines
go straight (MCU RTS -> module RTS, MCU CTS <- module CTS; docs/FIELD.md, "Wiring").

The trap (docs/FIELD.md, "UART per port"): an esp32 ``UART.write`` blocks until all its
bytes are in the TX ring buffer, ignores ``timeout``, and blocks forever while the modem
holds CTS.
``TxGatePort`` therefore writes only when ``txdone()`` says the ring buffer is empty,
and at most a quarter of it: such a write only copies into the buffer and returns at
once. While CTS is held nothing is written, the driver sees 0 bytes taken, and its
``stall_ms`` deadline ends the update with a stated error instead of a hang. (A
``machine.WDT`` cannot be stopped once started on esp32, so it would keep resetting the
board after the update: the deadline is the guard here.)
"""

from machine import UART, Pin

from qfota.defaults import DEFAULTS
from qfota.uart import UartPort

# What the host needs of this board (read by host_tools/qfota_tools/boards.py with ast:
# qfota deploy, make typings/lint; boards/README.md).
MPY_ARCH = "xtensawin"  # mpy-cross -march: Xtensa LX6 (ESP32)
MPY_LINES = True  # .mpy keep source line numbers (4 MB of flash: room for them)
STUBS = "micropython-esp32-stubs"
PACKAGES = ("qfota-core", "qfota-url", "qfota-http", "qfota-app", "qfota-fleet")

UART_ID = 2
BAUD = DEFAULTS["baud"]  # the module's default; its bootloader prints at the NV-saved rate
TX, RX, RTS, CTS = 17, 16, 27, 26  # any GPIOs (the GPIO matrix); these avoid the SD pins
TXBUF = 2048  # the ESP-IDF ring buffer: 0 or more than the 128-byte FIFO
RXBUF = 2048
WRITE_MAX = TXBUF // 4  # one write fits an empty ring buffer with room for its headers

SD_SLOT = 2
SD_SCK, SD_MOSI, SD_MISO, SD_CS = 18, 23, 19, 5

STORAGE = "/sd"
JOURNAL_PATH = "/qfota_journal.json"  # internal flash (LittleFS: rename is atomic)


class TxGatePort(UartPort):
    """A ``UartPort`` whose ``write`` cannot block: it writes only into an idle transmitter."""

    def write(self, buf, off, n):
        if not self.uart.txdone():
            return 0
        if n > WRITE_MAX:
            n = WRITE_MAX
        return self.uart.write(buf, off, n) or 0


def open_port(flow_hw=True):
    """UART2 to the modem as a qfota port; RTS/CTS when ``flow_hw``."""
    uart = UART(
        UART_ID,
        BAUD,
        tx=Pin(TX),
        rx=Pin(RX),
        rts=Pin(RTS),
        cts=Pin(CTS),
        flow=(UART.RTS | UART.CTS) if flow_hw else 0,
        txbuf=TXBUF,
        rxbuf=RXBUF,
        timeout=0,
    )
    return TxGatePort(uart)


def mount_storage():
    """Mount the SD card at /sd (once); OSError when there is none."""
    import vfs
    from machine import SDCard

    for _fs, path in vfs.mount():
        if path == STORAGE:
            return STORAGE
    sd = SDCard(slot=SD_SLOT, sck=Pin(SD_SCK), mosi=Pin(SD_MOSI), miso=Pin(SD_MISO), cs=Pin(SD_CS))
    vfs.mount(sd, STORAGE)
    return STORAGE
