"""Board: pyboard (STM32F405) and other stm32 boards, modem on UART(2) with RTS/CTS.

Deployed as ``/board.py`` (``qfota deploy --board stm32``). ``qfota.app`` uses
``open_port``, ``mount_storage`` and ``JOURNAL_PATH``::

    import board
    port = board.open_port()           # UART(2), RTS/CTS on
    root = board.mount_storage()       # "/sd", the card slot

Only UART(2) and UART(3) have RTS/CTS on the pyboard, on fixed pins (UART(3): TX Y9,
RX Y10, RTS Y7, CTS Y6: set ``UART_ID = 3``).

Wiring (the EC200T main UART is 1.8 V logic, the pyboard 3.3 V: every signal goes
through a level shifter, e.g. a TXB0104 with VCCA = 1.8 V from the module's VDD_EXT)::

    pyboard           level shifter         EC200T main UART
    X3 (PA2) TX       ->  3.3 V -> 1.8 V ->  RXD   (module input)
    X4 (PA3) RX       <-  1.8 V -> 3.3 V <-  TXD   (module output)
    X2 (PA1) RTS      ->  3.3 V -> 1.8 V ->  RTS   (module input: "MCU may receive")
    X1 (PA0) CTS      <-  1.8 V -> 3.3 V <-  CTS   (module output: "module may receive")
    GND               ---------------------  GND

    SD card: the pyboard's own slot, mounted at /sd at boot when a card is in. (The board
    then also runs /sd/main.py, not /flash/main.py: deploy to the card, or create
    /flash/SKIPSD and let ``mount_storage`` mount it.)

Quectel names its pins from the module's (DCE) side: data lines cross, flow-control lines
go straight (MCU RTS -> module RTS, MCU CTS <- module CTS; docs/FIELD.md, "Wiring").

stm32 writes are synchronous, with no TX buffer: with CTS enabled a write waits up to
``timeout`` ms and returns what went out (None for nothing), so every wait is bounded.
``hashlib`` has no md5 on a plain pyboard build: the app then checks sha256 only.
"""

from machine import UART

from qfota.defaults import DEFAULTS
from qfota.uart import UartPort

UART_ID = 2
BAUD = DEFAULTS["baud"]  # the module's default; its bootloader prints at the NV-saved rate
TIMEOUT_MS = 10  # the longest one write may wait for CTS
RXBUF = 2048

STORAGE = "/sd"
JOURNAL_PATH = "/flash/qfota_journal.json"  # internal flash, not the card


def open_port(flow_hw=True):
    """UART(UART_ID) to the modem as a qfota port; RTS/CTS when ``flow_hw``."""
    uart = UART(
        UART_ID,
        BAUD,
        flow=(UART.RTS | UART.CTS) if flow_hw else 0,
        timeout=TIMEOUT_MS,
        rxbuf=RXBUF,
    )
    return UartPort(uart)


def mount_storage():
    """/sd, mounting the card when boot did not (``/flash/SKIPSD``); OSError without one."""
    import vfs
    from machine import SDCard

    for _fs, path in vfs.mount():
        if path == STORAGE:
            return STORAGE
    sd = SDCard()
    if not sd.present():
        raise OSError("no SD card in the slot")
    vfs.mount(sd, STORAGE)
    return STORAGE
