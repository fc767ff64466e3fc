"""Board: Raspberry Pi Pico (RP2040/RP2350), modem on UART0 with RTS/CTS; images on an SD
card on SPI1 when one answers, else on the internal flash.

Deployed as ``/board.py`` (``qfota deploy --board rp2``). An SD card needs micropython-lib's
driver (``mpremote mip install sdcard``); without the driver or a card, images live in
``/fota`` on the internal flash (``qfota stage IMG --to :/fota ...``): a Pico has 1.4 MB of
LittleFS, boards with 4-16 MB of flash (Pico 2, many RP2040 boards) much more.
``qfota.app`` uses ``open_port``, ``mount_storage`` and ``JOURNAL_PATH``::

    import board
    port = board.open_port()           # qfota.uart.UartPort over UART0, RTS/CTS on
    root = board.mount_storage()       # "/sd", or "" (internal flash): the app reads root + "/fota"

Wiring (the EC200T main UART is 1.8 V logic, the Pico 3.3 V: every signal goes through
a level shifter, e.g. a TXB0104 with VCCA = 1.8 V from the module's VDD_EXT, VCCB = 3V3)::

    Pico            level shifter         EC200T main UART
    GP0  UART0 TX   ->  3.3 V -> 1.8 V ->  RXD   (module input)
    GP1  UART0 RX   <-  1.8 V -> 3.3 V <-  TXD   (module output)
    GP3  UART0 RTS  ->  3.3 V -> 1.8 V ->  RTS   (module input: "MCU may receive")
    GP2  UART0 CTS  <-  1.8 V -> 3.3 V <-  CTS   (module output: "module may receive")
    GND             ---------------------  GND

    SD card (3.3 V, optional): GP10 SCK, GP11 MOSI, GP12 MISO, GP13 CS, 3V3, GND.

Quectel names its pins from the module's (DCE) side, as RS-232 does: its RTS is an input
and its CTS an output. So the data lines cross and the flow-control lines go straight:
MCU RTS -> module RTS, MCU CTS <- module CTS (docs/FIELD.md, "Wiring"). rp2 writes return
a partial count when CTS holds the line (``timeout=0``), so the engine's stall timeout
bounds every wait; no watchdog is needed.
"""

from machine import UART, Pin

from qfota.defaults import DEFAULTS
from qfota.uart import UartPort

# What the host needs of this board (read by host_tools/qfota_tools/boards.py with ast:
# qfota deploy, make typings/lint; boards/README.md).
MPY_ARCH = "armv6m"  # mpy-cross -march: Cortex-M0+ (RP2040; an RP2350 runs armv6m code too)
MPY_LINES = True  # .mpy keep source line numbers (2 MB of flash: room for them)
STUBS = "micropython-rp2-stubs"
PACKAGES = ("qfota-core", "qfota-url", "qfota-http", "qfota-app", "qfota-fleet")

UART_ID = 0
BAUD = DEFAULTS["baud"]  # the module's default; its bootloader prints at the NV-saved rate
TX, RX, CTS, RTS = 0, 1, 2, 3  # GP numbers: UART0's hardware CTS/RTS pins
TXBUF = 8192  # two chunks: UartPort gives the UART only what fits (bench/pico_bench.py)
RXBUF = 1024

SPI_ID = 1
SD_SCK, SD_MOSI, SD_MISO, SD_CS = 10, 11, 12, 13
SD_BAUD = 10_000_000

STORAGE = "/sd"
FLASH_ROOT = ""  # the internal flash's LittleFS is mounted at /: the app reads /fota
JOURNAL_PATH = "/qfota_journal.json"  # internal flash (LittleFS: rename is atomic)

# The app's settings for this board (qfota.app.defaults(), under /qfota.cfg's): 264 KB of
# RAM leave room for a package buffer of one littlefs block (qfota's default is 1024).
SETTINGS = {"chunk": 4096}


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
    return UartPort(uart, txbuf=TXBUF, baud=BAUD)


def mount_storage():
    """The storage root: the SD card at /sd (mounted once) when one answers, else the
    internal flash (``""``: the app then reads ``/fota``)."""
    import vfs

    for _fs, path in vfs.mount():
        if path == STORAGE:
            return STORAGE
    try:
        import sdcard  # micropython-lib: mpremote mip install sdcard
    except ImportError:
        return FLASH_ROOT
    from machine import SPI

    try:
        spi = SPI(SPI_ID, sck=Pin(SD_SCK), mosi=Pin(SD_MOSI), miso=Pin(SD_MISO))
        vfs.mount(sdcard.SDCard(spi, Pin(SD_CS, Pin.OUT), baudrate=SD_BAUD), STORAGE)
    except OSError:  # no card in the slot, or it does not answer
        return FLASH_ROOT
    return STORAGE
