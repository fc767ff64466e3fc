"""Board: pyboard (STM32F405) and other stm32 boards, modem on UART(2) with RTS/CTS; images
on the SD card when one answers, else on the board's own flash.

Deployed as ``/board.py`` (``qfota deploy --board stm32``). ``qfota.app`` uses
``open_port``, ``mount_storage`` and ``JOURNAL_PATH``::

    import board
    port = board.open_port()           # UART(2), RTS/CTS on
    root = board.mount_storage()       # "/sd", or the flash ("/flash" on a pyboard, "" where
                                       # it is mounted at /): the app reads root + "/fota"

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
    /flash/SKIPSD and let ``mount_storage`` mount it.) Builds without ``machine.SDCard``
    (QEMU's netduinoplus2, ``qfota stm32-sim``) keep images on the flash.

Quectel names its pins from the module's (DCE) side: data lines cross, flow-control lines
go straight (MCU RTS -> module RTS, MCU CTS <- module CTS; docs/FIELD.md, "Wiring").

stm32 writes are synchronous, with no TX buffer: with CTS enabled a write waits up to
``timeout`` ms and returns what went out (None for nothing), so every wait is bounded.
``hashlib`` has no md5 on a plain pyboard build: the app then checks sha256 only.
"""

import os

from machine import UART

from qfota.defaults import DEFAULTS
from qfota.uart import UartPort

# What the host needs of this board (read by host_tools/qfota_tools/boards.py with ast:
# qfota deploy, make typings/lint; boards/README.md).
MPY_ARCH = "armv7emsp"  # mpy-cross -march: Cortex-M4F (STM32F4)
# No line numbers: a pyboard's /flash holds about 100 KB, the emulated board's 64 KB, and
# the engine plus a staged image must fit beside each other.
MPY_LINES = False
STUBS = "micropython-stm32-stubs"
PACKAGES = ("qfota-core", "qfota-app")  # the app does FILE mode only: no qfota-url

UART_ID = 2
BAUD = DEFAULTS["baud"]  # the module's default; its bootloader prints at the NV-saved rate
TIMEOUT_MS = 10  # the longest one write may wait for CTS
RXBUF = 2048

STORAGE = "/sd"
# The board's own flash: /flash on a pyboard; "" where the filesystem is mounted at /
# (the app then reads /fota). The journal lives there, beside the images it may hold.
FLASH_ROOT = "/flash" if "flash" in os.listdir("/") else ""
JOURNAL_PATH = FLASH_ROOT + "/qfota_journal.json"


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
    """The storage root: /sd (mounted once, when boot did not: ``/flash/SKIPSD``) when a card
    answers, else the flash (``FLASH_ROOT``)."""
    import machine
    import vfs

    for _fs, path in vfs.mount():
        if path == STORAGE:
            return STORAGE
    sdcard = getattr(machine, "SDCard", None)  # not in every build
    if sdcard is None:
        return FLASH_ROOT
    sd = sdcard()
    if not sd.present():
        return FLASH_ROOT
    vfs.mount(sd, STORAGE)
    return STORAGE
