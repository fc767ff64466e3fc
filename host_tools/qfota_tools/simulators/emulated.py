"""What the emulated boards (``qfota pico-sim``, ``qfota stm32-sim``) share: the relay's
lifecycle, their ptys, the EC200 model a board's UART may be joined to (``--modem``), and
serving until Ctrl-C or SIGTERM."""

import os
import signal
import sys
import threading
import time
import tty


class BoardError(Exception):
    """The emulator cannot start (a missing firmware, emulator or bridge): one line for
    the user."""


def raw_pty():
    """(master, slave, path) of a new pty, both ends raw, the master non-blocking."""
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    os.set_blocking(master, False)
    return master, slave, os.ttyname(slave)


class EmulatedBoard:
    """The relay thread's lifecycle and the joined modem's turn; each board has its own
    ``start``, ``stop``, ``_loop`` and ``running``, and sets ``_t0``, ``_thread``,
    ``_proc``, ``_fds``, ``lock``, ``modem``, ``log`` and ``uart_rx``. A failure of the
    relay is kept in ``error`` (for tests and the command), unless it came while
    stopping."""

    error = None
    _stopping = False
    _workers = ()  # the modem's fetches and HTTP requests, in threads

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def now_ms(self):
        return int((time.monotonic() - self._t0) * 1000)

    _FETCH_S = 10.0  # a URL fetch's socket timeout (``qfota sim --fetch-timeout``'s default)

    def _modem_turn(self, uart_out, taken_hook=None):
        """One turn of the joined modem: it takes what it can of ``uart_out`` (the board's
        bytes for it; what it took is removed), says what it has to say, and hands its
        network side (a URL mode's fetch, an HTTP AT command's request) to a worker, as
        ``qfota sim`` does. ``taken_hook()`` runs under the lock after a write. Returns
        (bytes taken, what it said, ms until it wants a turn again or None)."""
        m = self.modem
        with self.lock:
            now = self.now_ms()
            taken = m.write(bytes(uart_out), now) if uart_out else 0
            del uart_out[:taken]
            if taken_hook and taken:
                taken_hook()
            got = m.read(now)
            url = m.take_fetch()
            req = m.take_http()
            due = m.next_due_ms(now)
            room_due = m.room_due_ms(now, 256) if uart_out else None
        if got:
            self.uart_rx += len(got)
        if url or req:
            self._net(url, req)
        dues = [max(1, d - now) for d in (due, room_due) if d is not None]
        if uart_out and room_due is None:
            dues.append(20)  # held, no room due (a stall): look again soon
        return taken, got, min(dues) if dues else None

    def _net(self, url, req):
        from .ec200 import net

        ws = [x for x in self._workers if x.is_alive()]
        if url:
            ws.append(net.start_fetch(self.modem, self.lock, url, self.now_ms, self._wake,
                                      self.log, timeout=self._FETCH_S))  # fmt: skip
        if req:
            ws.append(net.start(self.modem, self.lock, req, self.now_ms, self._wake, self.log))
        self._workers = ws

    def _wake(self):
        if not self._fds:  # closed: the number may be another file's now
            return
        try:
            os.write(self._wake_w, b"!")
        except OSError:
            pass

    def _open_user_ends(self):
        """The user's ptys (the REPL's, and the UART's unless a modem takes it) and the
        relay's wake pipe, added to ``_fds``."""
        self._repl_m, self._repl_s, self.repl_path = raw_pty()
        self._fds += [self._repl_m, self._repl_s]
        if self.modem is None:
            self._uart_m, self._uart_s, self.uart_path = raw_pty()
            self._fds += [self._uart_m, self._uart_s]
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._fds += [self._wake_r, self._wake_w]

    def _end_relay(self, timeout=5.0):
        """Wake the relay thread and wait for it, then close every descriptor it polled
        (never under a thread still polling them) and the emulator's output pipe."""
        self._stopping = True
        if self._thread:
            try:
                os.write(self._wake_w, b"!")
            except OSError:
                pass
            self._thread.join(timeout)
            self._thread = None
        for w in self._workers:  # each bounded by its own socket timeout; before the
            w.join(self._FETCH_S + 2)  # close: a worker wakes the relay through _wake_w
        self._workers = [w for w in self._workers if w.is_alive()]
        for fd in self._fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds = []
        if self._proc and self._proc.stdout:
            self._proc.stdout.close()

    def _run(self):
        try:
            self._loop()
        except Exception as exc:
            if not self._stopping:
                self.error = exc
                raise


# ---- the commands -----------------------------------------------------------------------------
def add_board_args(p, uart, modem_baud, modem_baud_help):
    """The options both boards' commands take after their firmware's: the links, and the
    EC200 model on the board's ``uart`` (``--modem`` and what it takes)."""
    from .ec200.cli import add_package_args

    p.add_argument("--link-repl", metavar="PATH", help="also make PATH a symlink to the REPL pty")
    p.add_argument(
        "--link-uart", metavar="PATH", help="also make PATH a symlink to the %s pty" % uart
    )
    p.add_argument(
        "--modem",
        action="store_true",
        help="join %s to the EC200 simulator (no %s pty); sim options below apply" % (uart, uart),
    )
    add_package_args(p, when="--modem: ")
    p.add_argument("--modem-baud", type=int, default=modem_baud, help=modem_baud_help)
    p.add_argument("--fast", action="store_true", help="--modem: tens of ms for every delay")


def check_image(args):
    """BoardError when ``--image`` names no file."""
    if args.image and not os.path.isfile(args.image):
        raise BoardError("--image: no such file: %s" % args.image)


def modem_of(args):
    """The EC200 model ``--modem`` asks for, else None."""
    if not args.modem:
        return None
    from .ec200.cli import md5_of
    from .ec200.model import FAST, Modem

    return Modem(
        revision=args.revision,
        new_revision=args.new_revision,
        expect_md5=md5_of(args.image) if args.image else None,
        baud=args.modem_baud,
        timing=FAST if args.fast else None,
    )


def log_of(args):
    """The ``--verbose`` log: each line to stderr, else None."""
    return (lambda s: print(s, file=sys.stderr, flush=True)) if args.verbose else None


def _link(path, target):
    if os.path.islink(path):
        os.unlink(path)
    os.symlink(target, path)


def serve(sim, args, prog, uart):
    """Start ``sim``, print its two ptys (``repl:``, ``<uart>:``), make the links, then
    serve until Ctrl-C or SIGTERM, saying when the modem's revision changes; the exit
    status (2: it could not start, 1: the emulator ended by itself)."""
    try:
        repl, uart_path = sim.start()
    except BoardError as exc:
        print("%s: %s" % (prog, exc), file=sys.stderr)
        return 2
    modem = sim.modem
    if args.link_repl:
        _link(args.link_repl, repl)
    if args.link_uart and uart_path:
        _link(args.link_uart, uart_path)
    print("repl: %s" % repl)
    print("%s: %s" % (uart, uart_path or "joined to the EC200 simulator"), flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    last = None
    try:
        while not stop.wait(0.5):
            if not sim.running:
                print("%s: the emulator ended" % prog, file=sys.stderr)
                return 1
            if modem is not None:
                with sim.lock:
                    state = (modem.revision, modem.updates_completed)
                if state != last:
                    print("modem: revision %s, updates %d" % state, flush=True)
                    last = state
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
    return 0
