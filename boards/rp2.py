"""Board: Raspberry Pi Pico (RP2040/RP2350), modem on UART0 with RTS/CTS, SD card on SPI1.

Deployed as ``/board.py`` (``qfota deploy --board rp2``); needs micropython-lib's SD card
driver: ``mpremote mip install sdcard``. ``qfota.app`` uses ``open_port``,
``mount_storage``, ``JOURNAL_PATH`` and ``reset``::

    import board
    port = board.open_port()           # qfota.uart.UartPort over UART0, RTS/CTS on
    root = board.mount_storage()       # "/sd"

Wiring (the EC200T main UART is 1.8 V logic, the Pico 3.3 V: every signal goes through
a level shifter, e.g. a TXB0104 with VCCA = 1.8 V from the module's VDD_EXT, VCCB = 3V3)::

    Pico            level shifter         EC200T main UART
    GP0  UART0 TX   ->  3.3 V -> 1.8 V ->  RXD   (module input)
    GP1  UART0 RX   <-  1.8 V -> 3.3 V <-  TXD   (module output)
    GP3  UART0 RTS  ->  3.3 V -> 1.8 V ->  CTS   (module input: "MCU may receive")
    GP2  UART0 CTS  <-  1.8 V -> 3.3 V <-  RTS   (module output: "module may receive")
    GND             ---------------------  GND

    SD card (3.3 V): GP10 SCK, GP11 MOSI, GP12 MISO, GP13 CS, 3V3, GND.

The Quectel pin names are from the module's side: the MCU's RTS drives the module's
CTS. rp2 writes return a partial count when CTS holds the line (``timeout=0``), so the
engine's stall timeout bounds every wait; no watchdog is needed.
"""

from machine import UART, Pin

from qfota.uart import UartPort

UART_ID = 0
BAUD = 115200  # the module's default; the bootloader prints at the NV-saved rate
TX, RX, CTS, RTS = 0, 1, 2, 3  # GP numbers: UART0's hardware CTS/RTS pins
TXBUF = 1024
RXBUF = 1024

SPI_ID = 1
SD_SCK, SD_MOSI, SD_MISO, SD_CS = 10, 11, 12, 13
SD_BAUD = 10_000_000

STORAGE = "/sd"
JOURNAL_PATH = "/qfota_journal.json"  # internal flash (LittleFS: rename is atomic)


def open_port(flow_hw=True):
    """UART0 to the modem as a qfota port; RTS/CTS when ``flow_hw``."""
    uart = UART(
        UART_ID,
        BAUD,
        tx=Pin(TX),
        rx=Pin(RX),
        cts=Pin(CTS),
        rts=Pin(RTS),
        flow=(UART.RTS | UART.CTS) if flow_hw else 0,
        txbuf=TXBUF,
        rxbuf=RXBUF,
        timeout=0,
    )
    return UartPort(uart)


def mount_storage():
    """Mount the SD card at /sd (once); OSError when there is none."""
    import vfs

    for _fs, path in vfs.mount():
        if path == STORAGE:
            return STORAGE
    import sdcard  # micropython-lib: mpremote mip install sdcard
    from machine import SPI

    spi = SPI(SPI_ID, sck=Pin(SD_SCK), mosi=Pin(SD_MOSI), miso=Pin(SD_MISO))
    vfs.mount(sdcard.SDCard(spi, Pin(SD_CS, Pin.OUT), baudrate=SD_BAUD), STORAGE)
    return STORAGE


def reset():
    import machine

    machine.reset()
