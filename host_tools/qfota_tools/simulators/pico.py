"""``qfota pico-sim``: an emulated Raspberry Pi Pico running the real MicroPython rp2 firmware.

Prints two pty paths: the USB-CDC REPL (for ``mpremote``, ``qfota deploy``, ``qfota stage``)
and UART0 (GP0 TX, GP1 RX), then serves until Ctrl-C or SIGTERM. ``--modem`` joins UART0
to the EC200 simulator instead, in this process, through pipes: its flow control holds the
board's UART through the CTS stand-in, so ``flow hw`` really pauses the writer.

The emulator is ``rp2040js`` (npm, pinned in host_tools/pico/package.json) driven by
host_tools/pico/bridge.mjs under Node >= 18; ``make venv`` installs it. It needs the
MicroPython RPI_PICO firmware (``--firmware`` or ``QFOTA_PICO_FIRMWARE``: the official UF2
from https://micropython.org/download/RPI_PICO/) and the RP2040 B1 boot ROM (``--bootrom``
or ``QFOTA_PICO_BOOTROM``: 16 KB, as the rp2040js project carries it in demo/bootrom.ts).
``--flash FILE`` keeps the 2 MB flash (and its filesystem) across runs.
``--miss-reconnects N``: the emulated host misses the next N times the board re-connects
its USB (as a host whose USB does not come back as the data link, for a runtime USB
device such as ``qfota stage``'s receiver); it sees the re-connect after a missed one.
"""

import argparse
import os
import select
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

from qfota_tools import tree

from . import emulated

BRIDGE_DIR = Path(os.environ.get("QFOTA_PICO_BRIDGE") or tree.ROOT / "host_tools" / "pico")
HOW_TO_SUPPLY = (
    "the emulated Pico needs the MicroPython RPI_PICO firmware and the RP2040 B1 boot ROM: "
    "--firmware/--bootrom or QFOTA_PICO_FIRMWARE/QFOTA_PICO_BOOTROM "
    "(the UF2 from https://micropython.org/download/RPI_PICO/, the boot ROM from rp2040js's "
    "demo/bootrom.ts)"
)


class PicoError(emulated.BoardError):
    """The emulator cannot start (missing fixture, Node or bridge): one line for the user."""


def fixtures(firmware=None, bootrom=None):
    """(firmware, bootrom) from the arguments, else the environment; PicoError if missing."""
    fw = firmware or os.environ.get("QFOTA_PICO_FIRMWARE")
    rom = bootrom or os.environ.get("QFOTA_PICO_BOOTROM")
    if not fw or not rom:
        raise PicoError(HOW_TO_SUPPLY)
    for what, p in (("firmware", fw), ("boot ROM", rom)):
        if not os.path.isfile(p):
            raise PicoError("%s not found: %s" % (what, p))
    if os.path.getsize(rom) != 16384:
        raise PicoError("boot ROM must be 16384 bytes: %s" % rom)
    return fw, rom


def bridge_ready():
    """None when Node and the bridge's node_modules are there, else what is missing."""
    if not (BRIDGE_DIR / "bridge.mjs").is_file():
        # A wheel does not carry the bridge: the emulated Pico is a development tool.
        return (
            "no Node bridge at %s: qfota pico-sim runs from a checkout of the repository "
            "(make venv), or set QFOTA_PICO_BRIDGE to a copy of its host_tools/pico" % BRIDGE_DIR
        )
    if not shutil.which("node"):
        return "node (>= 18) is not on PATH"
    if not (BRIDGE_DIR / "node_modules" / "rp2040js").is_dir():
        return "rp2040js is not installed: npm ci --prefix %s (make venv does it)" % BRIDGE_DIR
    return None


class PicoSim(emulated.EmulatedBoard):
    """One emulated Pico; the REPL and UART0 on ptys, or UART0 joined to ``modem``.

    ``modem`` is an ``ec200.model.Modem`` (sans-I/O); inspect it under ``self.lock``.
    ``stop()`` ends the emulator cleanly, ``power_cut()`` kills it (the flash file holds
    whatever the firmware had written at that instant: writes go straight to it).
    """

    def __init__(
        self,
        firmware,
        bootrom,
        flash=None,
        modem=None,
        cts_window=4096,
        node="node",
        log=None,
        tx_baud=None,
        miss_reconnects=0,
    ):
        self.firmware, self.bootrom, self.flash = firmware, bootrom, flash
        self.modem = modem
        self.cts_window = cts_window
        self.tx_baud = tx_baud  # UART0's line: None (7,812,500: the RP2040's fastest), N, "line"
        self.miss_reconnects = miss_reconnects  # USB re-connects the host does not see
        self.node = node
        self.log = log
        self.lock = threading.Lock()
        self.events = []
        self.repl_path = self.uart_path = None
        self.uart_tx = 0  # board -> host bytes over UART0
        self.uart_rx = 0
        self.max_in_flight = 0  # board -> host bytes not yet taken by the modem/pty
        self.held_ms = 0.0  # wall time the modem held (not taking bytes while some waited)
        self._proc = None
        self._thread = None
        self._wlock = threading.Lock()
        self._t0 = time.monotonic()
        self._fds = []
        self._workers = []  # the modem's fetches and HTTP requests (ec200.net)

    # ---- lifecycle ----------------------------------------------------------------------
    def start(self, timeout=20.0):
        missing = bridge_ready()
        if missing:
            raise PicoError(missing)
        cmd = [self.node, str(BRIDGE_DIR / "bridge.mjs")]
        cmd += ["--firmware", self.firmware, "--bootrom", self.bootrom]
        cmd += ["--cts-window", str(self.cts_window)]
        if self.tx_baud:
            cmd += ["--tx-baud", str(self.tx_baud)]
        if self.flash:
            cmd += ["--flash", str(self.flash)]
        if self.miss_reconnects:
            cmd += ["--miss-reconnects", str(int(self.miss_reconnects))]
        self._fds = []
        self._open_user_ends()
        self._proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=str(BRIDGE_DIR)
        )
        self._thread = threading.Thread(target=self._run, name="qfota-pico", daemon=True)
        self._thread.start()
        if not self.wait_event("ready", timeout):
            self.stop()
            raise PicoError("the emulated Pico did not start in %.0f s" % timeout)
        return self.repl_path, self.uart_path

    def wait_event(self, prefix, timeout, start=0):
        """The first event from index ``start`` beginning with ``prefix``; None on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            for e in self.events[start:]:
                if e.startswith(prefix):
                    return e
            if time.monotonic() >= deadline or (self._proc and self._proc.poll() is not None):
                return None
            time.sleep(0.02)

    def stop(self, timeout=5.0):
        """End the emulator (flash file complete) and close the ptys."""
        if self._proc and self._proc.poll() is None:
            try:
                self._send(b"Q", b"")
                self._proc.wait(timeout)
            except (OSError, subprocess.TimeoutExpired):
                self._proc.kill()
                self._proc.wait(timeout)
        if self._thread:
            self._thread.join(timeout)  # it ends at the bridge's EOF, its last events read
        self._close()

    def stats(self):
        """The bridge's last ``stats`` event as a dict of ints (after ``stop()``)."""
        for e in reversed(self.events):
            if e.startswith("stats "):
                return {k: int(v) for k, v in (kv.split("=") for kv in e.split()[1:])}
        return {}

    def line_state(self, dtr):
        """Send the board's USB-CDC the SET_CONTROL_LINE_STATE a host sends when it opens
        (``dtr`` True: DTR and RTS set) or closes the port (the emulated host sends none by
        itself: rp2040js addresses its own to the device, which TinyUSB refuses)."""
        self._send(b"L", bytes([3 if dtr else 0]))

    def power_cut(self):
        """Kill the emulator at once, as pulling the board's power would."""
        if self._proc and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGKILL)
            self._proc.wait(5)
        self._close()

    def _close(self):
        self._end_relay()
        if self._proc and self._proc.stdin:
            try:
                self._proc.stdin.close()
            except OSError:
                pass

    @property
    def running(self):
        return self._proc is not None and self._proc.poll() is None

    # ---- the relay ------------------------------------------------------------------------
    def _send(self, kind, payload):
        with self._wlock:
            stdin = self._proc.stdin
            try:
                stdin.write(kind + struct.pack(">I", len(payload)) + payload)
                stdin.flush()
            except (BrokenPipeError, ValueError):
                # The emulator has ended (stop, power cut) or its pipe is closed: nothing
                # to tell it (stop() waits for its end, bounded); the relay reads on to its
                # EOF for the last events.
                pass

    def _loop(self):
        out = self._proc.stdout
        out_fd = out.fileno()
        os.set_blocking(out_fd, False)
        poller = select.poll()
        poller.register(out_fd, select.POLLIN)
        poller.register(self._repl_m, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        joined = self.modem is not None
        if not joined:
            poller.register(self._uart_m, select.POLLIN)
        buf = bytearray()
        repl_out = bytearray()
        uart_out = bytearray()  # board -> host bytes not yet taken
        held_since = None
        while not self._stopping:
            timeout = 1000
            # board -> modem (or pty), acknowledged as taken: the CTS stand-in's measure
            taken = 0
            if joined:
                taken, got, wait = self._modem_turn(uart_out)
                if got:
                    self._send(b"U", got)
                if wait is not None:
                    timeout = min(timeout, wait)
            elif uart_out:
                try:
                    taken = os.write(self._uart_m, uart_out)
                    del uart_out[:taken]
                except (BlockingIOError, InterruptedError):
                    timeout = min(timeout, 5)
            if taken:
                self._send(b"A", struct.pack(">I", taken))
            if uart_out:  # bytes wait for the modem: its CTS holds them
                held_since = held_since or time.monotonic()
            elif held_since is not None:
                self.held_ms += (time.monotonic() - held_since) * 1000
                held_since = None
            if repl_out:
                try:
                    n = os.write(self._repl_m, repl_out)
                    del repl_out[:n]
                except (BlockingIOError, InterruptedError):
                    timeout = min(timeout, 5)
            for fd, ev in poller.poll(timeout):
                if fd == self._wake_r:
                    try:
                        os.read(fd, 64)
                    except BlockingIOError:
                        pass
                elif fd == out_fd:
                    try:
                        data = os.read(out_fd, 1 << 16)
                    except BlockingIOError:
                        continue
                    if not data:
                        self._stopping = True
                        break
                    buf += data
                    while len(buf) >= 5:
                        (n,) = struct.unpack(">I", buf[1:5])
                        if len(buf) < 5 + n:
                            break
                        kind, payload = buf[0:1], bytes(buf[5 : 5 + n])
                        del buf[: 5 + n]
                        if kind == b"R":
                            repl_out += payload
                        elif kind == b"U":
                            uart_out += payload
                            self.uart_tx += n
                            self.max_in_flight = max(self.max_in_flight, len(uart_out))
                        elif kind == b"E":
                            text = payload.decode("utf-8", "replace")
                            self.events.append(text)
                            if self.log:
                                self.log("* " + text)
                elif ev & select.POLLIN:
                    try:
                        data = os.read(fd, 4096)
                    except (BlockingIOError, OSError):
                        data = b""
                    if data:
                        self._send(b"R" if fd == self._repl_m else b"U", data)
                elif ev & (select.POLLHUP | select.POLLERR):
                    time.sleep(0.01)


# ---- the command ----------------------------------------------------------------------------
def add_parser(subparsers):
    p = subparsers.add_parser(
        "pico-sim",
        help="an emulated Raspberry Pi Pico (real MicroPython rp2 firmware) on two ptys",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--firmware", help="MicroPython RPI_PICO .uf2 (or $QFOTA_PICO_FIRMWARE)")
    p.add_argument("--bootrom", help="RP2040 B1 boot ROM, 16 KB (or $QFOTA_PICO_BOOTROM)")
    p.add_argument("--flash", metavar="FILE", help="keep the 2 MB flash in FILE across runs")
    emulated.add_board_args(p, "UART0", 921600, "--modem: its line rate")
    p.add_argument(
        "--miss-reconnects",
        type=int,
        default=0,
        metavar="N",
        help="the host misses the board's next N USB re-connects (a host whose USB does not "
        "come back as the data link); it sees the one after a missed one",
    )
    p.add_argument("--verbose", "-v", action="store_true", help="log the emulator's events")
    p.set_defaults(func=run)


def run(args):
    try:
        fw, rom = fixtures(args.firmware, args.bootrom)
        emulated.check_image(args)
        if args.miss_reconnects < 0:
            raise PicoError("--miss-reconnects must be 0 or more: %d" % args.miss_reconnects)
    except emulated.BoardError as exc:
        print("qfota pico-sim: %s" % exc, file=sys.stderr)
        return 2
    sim = PicoSim(fw, rom, flash=args.flash, modem=emulated.modem_of(args),
                  log=emulated.log_of(args), miss_reconnects=args.miss_reconnects)  # fmt: skip
    return emulated.serve(sim, args, "qfota pico-sim", "uart0")
