"""``qfota stm32-sim``: an emulated STM32F405 (QEMU ``netduinoplus2``) running the real
MicroPython stm32 port.

Prints two pty paths: the REPL (USART1, 115200 baud: ``mpremote``, ``qfota deploy``,
``qfota stage`` through the REPL) and ``machine.UART(2)`` (USART2), then serves until Ctrl-C or
SIGTERM. ``--modem`` joins UART(2) to the EC200 simulator instead, in this process.

QEMU models no CTS/RTS: a board's ``flow=UART.RTS | UART.CTS`` is accepted and never
held, so with ``--modem`` the modem takes every byte at once (``--modem-baud 0``, its
default here); ``flow none`` pacing works as on a board. Its pty backend drops what the
guest writes while nobody has the pty open and stalls the whole emulator while a pty is
open and unread: this process keeps both of QEMU's ptys open and read for as long as the
emulator runs, and hands the user ptys of its own.

It needs ``qemu-system-arm`` (Debian: ``apt-get install qemu-system-arm``; ``make venv``
installs it as root) and a MicroPython stm32 build for the board (``--firmware`` or
``QFOTA_STM32_FIRMWARE``; this repository's CI keeps one in ``../shared/stm32/``). The
filesystem is a 64 KiB LittleFS in RAM at ``/``: it survives a soft reset (Ctrl-D,
``machine.soft_reset()``), not the end of the emulator.
"""

import argparse
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
import tty

from . import emulated

QEMU = "qemu-system-arm"
MACHINE = "netduinoplus2"
HOW_TO_SUPPLY = (
    "the emulated STM32F405 needs a MicroPython stm32 build for QEMU's netduinoplus2: "
    "--firmware or QFOTA_STM32_FIRMWARE (an .elf)"
)
_REDIRECT = re.compile(rb"char device redirected to (\S+) \(label (serial\d)\)")
_KEEP = 1 << 16  # REPL output kept while nobody reads the REPL pty; older bytes dropped


class Stm32Error(emulated.BoardError):
    """The emulator cannot start (missing firmware or QEMU): one line for the user."""


def firmware_path(firmware=None):
    """The firmware from the argument, else ``QFOTA_STM32_FIRMWARE``; Stm32Error if missing."""
    fw = firmware or os.environ.get("QFOTA_STM32_FIRMWARE")
    if not fw:
        raise Stm32Error(HOW_TO_SUPPLY)
    if not os.path.isfile(fw):
        raise Stm32Error("firmware not found: %s" % fw)
    return fw


def qemu_ready(qemu=QEMU):
    """None when ``qemu`` is on PATH, else what is missing."""
    if shutil.which(qemu):
        return None
    return "%s is not on PATH (Debian: apt-get install qemu-system-arm)" % qemu


def _die_with_parent():
    # The emulator must not outlive this process (a test killed, a terminal closed).
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _open_raw(path):
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    tty.setraw(fd)
    return fd


class Stm32Sim(emulated.EmulatedBoard):
    """One emulated STM32F405; the REPL and UART(2) on ptys, or UART(2) joined to ``modem``.

    ``modem`` is an ``ec200.model.Modem`` (sans-I/O); inspect it under ``self.lock``.
    ``arrivals`` lists ``(time.monotonic(), n)`` for every read of the board's UART(2)
    output; with a modem, ``package`` lists ``(time.monotonic(), k)`` whenever the modem's
    count of FILE package bytes taken changed to ``k`` (the pacing as the modem saw it),
    and ``said`` ``(time.monotonic(), bytes)`` for everything the modem sent the board.
    ``uart_tx``/``uart_rx`` count bytes.
    """

    def __init__(self, firmware, modem=None, qemu=QEMU, log=None):
        self.firmware = firmware
        self.modem = modem
        self.qemu = qemu
        self.log = log
        self.lock = threading.Lock()
        self.repl_path = self.uart_path = None
        self.uart_tx = 0  # board -> host bytes over UART(2)
        self.uart_rx = 0
        self.arrivals = []
        self.package = []
        self.said = []
        self._trigger = None  # (package bytes, bytes for the REPL): see type_at()
        self.max_in_flight = 0
        self.qemu_output = b""
        self._proc = None
        self._thread = None
        self._fds = []
        self._t0 = time.monotonic()

    # ---- lifecycle ----------------------------------------------------------------------
    def start(self, timeout=20.0):
        missing = qemu_ready(self.qemu)
        if missing:
            raise Stm32Error(missing)
        cmd = [self.qemu, "-M", MACHINE, "-kernel", self.firmware, "-display", "none"]
        cmd += ["-monitor", "none", "-serial", "pty", "-serial", "pty", "-nodefaults"]
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
        try:
            ptys = self._qemu_ptys(timeout)
            self._q_repl = _open_raw(ptys["serial0"])
            self._q_uart = _open_raw(ptys["serial1"])
            self._fds = [self._q_repl, self._q_uart]
            self._open_user_ends()
        except BaseException:
            self.stop()
            raise
        self._thread = threading.Thread(target=self._run, name="qfota-stm32", daemon=True)
        self._thread.start()
        return self.repl_path, self.uart_path

    def _qemu_ptys(self, timeout):
        """{label: pty} from QEMU's start-up lines, within ``timeout`` s."""
        assert self._proc is not None and self._proc.stdout is not None
        out = self._proc.stdout.fileno()
        os.set_blocking(out, False)
        found = {}
        deadline = time.monotonic() + timeout
        buf = b""
        while len(found) < 2:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Stm32Error("QEMU printed no ptys in %.0f s: %r" % (timeout, buf[-200:]))
            r, _, _ = select.select([out], [], [], min(left, 0.2))
            if not r:
                continue
            data = os.read(out, 4096)
            if not data:
                raise Stm32Error("QEMU ended: %s" % buf.decode("utf-8", "replace").strip())
            buf += data
            for m in _REDIRECT.finditer(buf):
                found[m.group(2).decode()] = m.group(1).decode()
        self.qemu_output = buf
        return found

    def stop(self, timeout=5.0):
        """End the emulator and close every pty."""
        if self._proc and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout)
        self._end_relay(timeout)

    @property
    def running(self):
        return self._proc is not None and self._proc.poll() is None

    def type_at(self, package_bytes, data):
        """Type ``data`` into the board's REPL as soon as the modem has taken
        ``package_bytes`` bytes of a FILE transfer (a Ctrl-C mid-transfer, on time)."""
        with self.lock:
            self._trigger = (package_bytes, bytes(data))

    # ---- the relay ------------------------------------------------------------------------
    def _taken(self, pending):
        # Under the lock, after the modem took package bytes: the pacing as it saw it,
        # and type_at()'s keys once it has taken that many.
        k = self.modem.package_bytes
        if not self.package or self.package[-1][1] != k:
            self.package.append((time.monotonic(), k))
        if self._trigger and k >= self._trigger[0]:
            pending[self._q_repl] += self._trigger[1]
            self._trigger = None

    def _loop(self):
        joined = self.modem is not None
        poller = select.poll()
        for fd in (self._q_repl, self._q_uart, self._repl_m, self._wake_r):
            poller.register(fd, select.POLLIN)
        if not joined:
            poller.register(self._uart_m, select.POLLIN)
        out = self._proc.stdout.fileno()
        poller.register(out, select.POLLIN)
        # Bytes waiting to be written: REPL -> user, user -> REPL, board -> modem or user,
        # modem or user -> board.
        pending = {self._repl_m: bytearray(), self._q_repl: bytearray(), self._q_uart: bytearray()}
        if not joined:
            pending[self._uart_m] = bytearray()
        uart_out = bytearray()  # board -> modem, not yet taken
        route = {self._q_repl: self._repl_m, self._repl_m: self._q_repl}
        route[self._q_uart] = None if joined else self._uart_m
        if not joined:
            route[self._uart_m] = self._q_uart
        while not self._stopping:
            timeout = 1000
            if joined:
                _, got, wait = self._modem_turn(uart_out, lambda: self._taken(pending))
                if got:
                    self.said.append((time.monotonic(), got))
                    pending[self._q_uart] += got
                if wait is not None:
                    timeout = min(timeout, wait)
                if uart_out:
                    timeout = min(timeout, 5)
            for fd, buf in pending.items():
                if buf:
                    try:
                        del buf[: os.write(fd, buf)]
                    except (BlockingIOError, InterruptedError):
                        timeout = min(timeout, 5)
                    except OSError:  # nobody on a user's pty: keep the newest bytes
                        timeout = min(timeout, 20)
                    if len(buf) > _KEEP:
                        del buf[: len(buf) - _KEEP]
            for fd, ev in poller.poll(timeout):
                if fd == self._wake_r:
                    try:
                        os.read(fd, 64)
                    except BlockingIOError:
                        pass
                    continue
                if not ev & select.POLLIN:
                    if ev & (select.POLLHUP | select.POLLERR):
                        if fd == out:
                            poller.unregister(out)
                        time.sleep(0.01)
                    continue
                try:
                    data = os.read(fd, 1 << 16)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if fd == out:
                    if not data:
                        poller.unregister(out)
                    elif self.log:
                        self.log("* qemu: " + data.decode("utf-8", "replace").strip())
                    continue
                if not data:
                    continue
                if fd == self._q_uart:
                    self.uart_tx += len(data)
                    self.arrivals.append((time.monotonic(), len(data)))
                    if joined:
                        uart_out += data
                        self.max_in_flight = max(self.max_in_flight, len(uart_out))
                        continue
                elif not joined and fd == self._uart_m:
                    self.uart_rx += len(data)
                pending[route[fd]] += data


# ---- the command ----------------------------------------------------------------------------
def add_parser(subparsers):
    p = subparsers.add_parser(
        "stm32-sim",
        help="an emulated STM32F405 (QEMU, real MicroPython stm32 firmware) on two ptys",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--firmware", help="MicroPython stm32 .elf for netduinoplus2 (or $QFOTA_STM32_FIRMWARE)"
    )
    emulated.add_board_args(
        p,
        "UART(2)",
        0,
        "--modem: its line rate with flow control on (default 0: no limit, QEMU has no CTS)",
    )
    p.add_argument("--verbose", "-v", action="store_true", help="log QEMU's own output")
    p.set_defaults(func=run)


def run(args):
    try:
        fw = firmware_path(args.firmware)
        emulated.check_image(args)
    except emulated.BoardError as exc:
        print("qfota stm32-sim: %s" % exc, file=sys.stderr)
        return 2
    sim = Stm32Sim(fw, modem=emulated.modem_of(args), log=emulated.log_of(args))
    return emulated.serve(sim, args, "qfota stm32-sim", "uart2")
