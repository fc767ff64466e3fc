"""``qfota board-sim``: a simulated MicroPython board on a pty, for mpremote and the tests.

The MicroPython unix-port interpreter runs behind a pty with a folder of its own as
its filesystem (a ``vfs.VfsPosix(root)`` mounted at ``/``; ``root/sd`` appears as ``/sd``).
It speaks the raw REPL and raw-paste protocols itself; a small proxy in front of it
makes it behave like a board towards ``mpremote``:

- Ctrl-D (soft reset) ends the unix interpreter: the proxy prints ``MPY: soft reboot``,
  starts a fresh interpreter and, when the board was in the raw REPL, puts it back there
  (what ``SerialTransport.enter_raw_repl(soft_reset=True)`` waits for).
- Ctrl-C while code runs becomes SIGINT, so it raises ``KeyboardInterrupt`` as on a
  board (the unix port only reacts to the signal); at the prompt it is passed through.
- The host's ``/dev`` is mounted at ``/dev`` (nothing can be created, removed or renamed
  there), so code on the board can open a tty (the EC200 simulator's pty, a USB-serial
  adapter) as the unix board file does.
- ``boot.py`` runs at every start; ``main.py`` too with ``--run-main`` (friendly mode only,
  as on a board).
- ``--free-bytes N`` makes ``os.statvfs`` report N free bytes: the VFS mounted at ``/`` is a
  small Python class around ``VfsPosix`` whose ``statvfs`` rewrites ``f_bfree``/``f_bavail``.
- The interpreter inherits the simulator's environment: that is where the unix board file
  (``boards/unix.py``, deployed as ``/board.py``) reads its settings, e.g. ``QFOTA_PORT``,
  the modem's tty (``BoardSim(root, env={"QFOTA_PORT": path})``). Its other defaults are
  the board's own: storage ``/sd``, journal ``/qfota_journal.json``.

Command line (prints the device path on the first stdout line, runs until Ctrl-C)::

    $ qfota board-sim --root /tmp/board
    /dev/pts/7
    $ mpremote connect /dev/pts/7 fs ls :

From tests::

    from qfota_tools.simulators.board_sim import BoardSim
    with BoardSim(tmp_path / "board") as dev:
        subprocess.run(["mpremote", "connect", dev, "exec", "print(1)"], check=True)
"""

import errno
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tty

from qfota_tools import tree

RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n"
FRIENDLY_BANNER = b'Type "help()" for more information.\r\n'
SOFT_REBOOT = b"MPY: soft reboot\r\n"
START_TIMEOUT = 10.0  # s: interpreter start, also after a soft reset
MAX_BACKLOG = 256 * 1024  # bytes kept for a client that is not reading


def find_micropython():
    """Path of the MicroPython unix-port interpreter: next to ``sys.executable`` first."""
    return tree.micropython()


def startup_code(root, free_bytes=None, run_main=False):
    """MicroPython source run (``-c``) before the REPL of each interpreter start."""
    # A pure-Python VFS around VfsPosix(root): a subclass of VfsPosix would inherit its C
    # import_stat, which then reads the Python instance as a VfsPosix: imports from /lib fail.
    lines = [
        "import vfs as _vfs, os as _os, sys as _sys",
        "class _BoardVfs:",
        "    def __init__(self, root):",
        "        self.v = _vfs.VfsPosix(root)",
    ]
    for name, args in (
        ("mount", "ro, mkfs"),
        ("umount", ""),
        ("open", "p, mode"),
        ("ilistdir", "p"),
        ("stat", "p"),
        ("mkdir", "p"),
        ("rmdir", "p"),
        ("remove", "p"),
        ("chdir", "p"),
        ("getcwd", ""),
    ):
        lines += [
            "    def %s(self%s):" % (name, ", " + args if args else ""),
            "        return self.v.%s(%s)" % (name, args),
        ]
    lines += [
        "    def rename(self, old, new):",
        "        # VfsPosix (1.29) fails when both paths are absolute: make one relative.",
        "        if old[:1] == '/' and new[:1] == '/':",
        "            import os",
        "            d = os.getcwd().strip('/')",
        "            old = '../' * (d.count('/') + 1 if d else 0) + (old[1:] or '.')",
        "        return self.v.rename(old, new)",
        "    def statvfs(self, p):",
        "        s = self.v.statvfs(p)",
    ]
    if free_bytes is not None:
        lines += [
            "        n = %d // s[0]" % int(free_bytes),
            "        s = s[:3] + (n, n) + s[5:]",
        ]
    lines.append("        return s")
    # The host's ttys as the board's UARTs: /dev, where nothing can be removed or renamed.
    lines += [
        "class _DevVfs(_BoardVfs):",
        "    def _ro(self, *a):",
        "        raise OSError(1)",
        "    mkdir = rmdir = remove = rename = _ro",
        "    def open(self, p, mode):",
        "        self.v.stat(p)  # ENOENT: no new files in the host's /dev",
        "        return self.v.open(p, mode)",
    ]
    lines += [
        "_vfs.umount('/')",
        "_vfs.mount(_BoardVfs(%r), '/')" % os.path.abspath(root),
        "_vfs.mount(_DevVfs('/dev'), '/dev')",
        "_os.chdir('/')",
        "_sys.path[:] = ['', '.frozen', '/lib']",
        "def _run(p):",
        "    try:",
        "        _os.stat(p)",
        "    except OSError:",
        "        return",
        "    try:",
        "        exec(open(p).read(), globals())",
        "    except SystemExit:",  # main.py's exit status on linux: a board just goes on
        "        pass",
        "    except BaseException as e:",
        "        _sys.print_exception(e)",
        "_run('boot.py')",
    ]
    if run_main:
        lines.append("_run('main.py')")
    lines.append("del _BoardVfs, _DevVfs, _run, _vfs, _os, _sys")
    return "\n".join(lines) + "\n"


def _die_with_parent():
    """preexec_fn: SIGKILL this child when its parent dies (Linux), own session."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class _Child:
    """One run of the unix interpreter on its own pty (master side kept here)."""

    def __init__(self, argv, root):
        master, slave = os.openpty()
        tty.setraw(slave)
        self.proc = subprocess.Popen(
            argv,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=root,
            close_fds=True,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        os.close(slave)
        os.set_blocking(master, False)
        self.fd = master

    def executing(self):
        """True while Python code runs: the unix port catches SIGINT only then."""
        try:
            with open("/proc/%d/status" % self.proc.pid) as f:
                for line in f:
                    if line.startswith("SigCgt:"):
                        return bool(int(line.split()[1], 16) & (1 << (signal.SIGINT - 1)))
        except OSError:
            pass
        return False

    def interrupt(self):
        try:
            os.kill(self.proc.pid, signal.SIGINT)
        except ProcessLookupError:
            pass

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class BoardProxy:
    """The pty a client sees, relayed to the interpreter; restarts it on soft reset.

    Runs in the foreground (``serve()``); ``BoardSim`` runs it in a subprocess.
    """

    def __init__(self, root, free_bytes=None, run_main=False, heapsize=None, log=None):
        self.root = os.path.abspath(root)
        os.makedirs(os.path.join(self.root, "sd"), exist_ok=True)
        self.free_bytes = free_bytes
        self.run_main = run_main
        self.heapsize = heapsize
        self.log = log or (lambda msg: None)
        self.micropython = find_micropython()
        self.child = None
        self.raw = False  # the board's REPL mode, from the banners it printed
        self.resets = 0
        self._tail = b""
        self._to_client = bytearray()
        self._to_child = bytearray()
        self._held = bytearray()  # client input held while the board restarts...
        self._hold_until = 0.0  # ... or until an interrupt has been handled
        self._restart = None  # (buffer, deadline, sent_ctrl_a) while restarting
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo before a client configures the port
        os.set_blocking(self.master, False)
        self.device = os.ttyname(self._slave)

    # -- the interpreter --

    def _argv(self, raw):
        argv = [self.micropython]
        if self.heapsize:
            argv += ["-X", "heapsize=%s" % self.heapsize]
        code = startup_code(self.root, self.free_bytes, self.run_main and not raw)
        return argv + ["-i", "-c", code]

    def start(self, timeout=START_TIMEOUT):
        """Start the interpreter and wait for its first prompt."""
        self.child = _Child(self._argv(False), self.root)
        deadline = time.monotonic() + timeout
        seen = b""
        while not seen.endswith(b">>> "):
            left = deadline - time.monotonic()
            if left <= 0 or self.child.proc.poll() is not None:
                raise RuntimeError("board-sim: interpreter did not start: %r" % seen[-200:])
            select.select([self.child.fd], [], [], min(left, 0.1))
            data = self._read(self.child.fd)
            if data:
                seen += data
        self._scan(seen)
        self._to_client += seen
        return self.device

    def _soft_reboot(self):
        self.resets += 1
        self.log("soft reset #%d (%s REPL)" % (self.resets, "raw" if self.raw else "friendly"))
        self.child.close()
        self._to_child.clear()
        self._to_client += SOFT_REBOOT
        self.child = _Child(self._argv(self.raw), self.root)
        if self.raw:
            self._restart = [b"", time.monotonic() + START_TIMEOUT, False]

    def _restarting(self, data):
        """Output of an interpreter started for the raw REPL: hide its banner."""
        buf, deadline, sent = self._restart
        buf += data
        if not sent and b">>> " in buf:
            self._to_child += b"\x01"
            sent = True
        i = buf.find(RAW_BANNER)
        if i >= 0 or time.monotonic() > deadline:
            if i >= 0:
                j = buf.find(b"MicroPython ")
                buf = (buf[:j] if 0 <= j < i else b"") + buf[i:]
            self._restart = None
            self._scan(buf)
            self._to_client += buf
            self._hold_until = 0.0
            held = bytes(self._held)
            self._held.clear()
            self._from_client(held)
        else:
            self._restart = [buf, deadline, sent]

    def _scan(self, data):
        hay = self._tail + data
        i, j = hay.rfind(RAW_BANNER), hay.rfind(FRIENDLY_BANNER)
        if i > j:
            self.raw = True
        elif j > i:
            self.raw = False
        self._tail = hay[-64:]

    # -- relaying --

    @staticmethod
    def _read(fd):
        try:
            return os.read(fd, 65536)
        except BlockingIOError:
            return None
        except OSError as exc:
            if exc.errno == errno.EIO:
                return b""  # pty: the other side is closed
            raise

    def _from_client(self, data):
        if self._restart is not None or self._hold_until:
            self._held += data
            return
        while data:
            part, ctrl_c, data = data.partition(b"\x03")
            self._to_child += part
            if not ctrl_c:
                break
            if not self.child.executing():
                self._to_child += ctrl_c
                continue
            # A board's Ctrl-C: KeyboardInterrupt at once, and what follows (mpremote's
            # "\r\x01") is read by the REPL afterwards, not by the interrupted code.
            self.child.interrupt()
            self._held += data
            self._hold_until = time.monotonic() + 1.0
            break

    def _release(self):
        """Hand held input over once the interrupted code has stopped."""
        if self.child.executing() and time.monotonic() < self._hold_until:
            return
        self._hold_until = 0.0
        held = bytes(self._held)
        self._held.clear()
        self._from_client(held)

    def _flush(self, fd, buf):
        if buf:
            try:
                n = os.write(fd, buf)
            except (BlockingIOError, InterruptedError):
                return
            del buf[:n]

    def serve_once(self, timeout=0.5):
        child = self.child
        rd = [child.fd]
        if len(self._to_child) < 65536:
            rd.append(self.master)
        wr = []
        if self._to_client:
            wr.append(self.master)
        if self._to_child:
            wr.append(child.fd)
        if self._hold_until:
            timeout = 0.005
        r, w, _ = select.select(rd, wr, [], timeout)
        if self.master in r:
            data = self._read(self.master)
            if data:
                self._from_client(data)
        if child.fd in r or child.proc.poll() is not None:
            data = self._read(child.fd)
            while data:  # all of it, when the interpreter has ended
                if self._restart is not None:
                    self._restarting(data)
                else:
                    self._scan(data)
                    self._to_client += data
                data = self._read(child.fd) if child.proc.poll() is not None else None
            if data == b"" or child.proc.poll() is not None:
                self._soft_reboot()
                return
        if self._restart is not None and time.monotonic() > self._restart[1]:
            self._restarting(b"")
        if self._hold_until and self._restart is None:
            self._release()
        if self.master in w:
            self._flush(self.master, self._to_client)
        if child.fd in w:
            self._flush(child.fd, self._to_child)
        if len(self._to_client) > MAX_BACKLOG:  # nobody reads: drop the oldest
            del self._to_client[: len(self._to_client) - MAX_BACKLOG]

    def serve(self):
        while True:
            self.serve_once()

    def close(self):
        if self.child:
            self.child.close()
            self.child = None
        for fd in (self.master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass


class BoardSim:
    """A simulated board in a subprocess (``qfota board-sim``); a context manager.

    >>> with BoardSim("/tmp/board", free_bytes=100_000) as dev:   # doctest: +SKIP
    ...     print(dev)                  # /dev/pts/N, for mpremote connect
    """

    def __init__(
        self,
        root,
        free_bytes=None,
        run_main=False,
        heapsize=None,
        link=None,
        start_timeout=START_TIMEOUT + 5,
        env=None,
    ):
        self.root = os.path.abspath(root)
        self.env = env  # extra environment variables for the board's interpreter
        self.free_bytes = free_bytes
        self.run_main = run_main
        self.heapsize = heapsize
        self.link = link
        self.start_timeout = start_timeout
        self.device = None
        self.log = []  # the simulator's stderr lines (soft resets...)
        self._proc = None
        self._log_thread = None

    def argv(self):
        argv = [sys.executable, "-m", "qfota_tools.cli", "board-sim", "--root", self.root]
        if self.free_bytes is not None:
            argv += ["--free-bytes", str(self.free_bytes)]
        if self.run_main:
            argv.append("--run-main")
        if self.heapsize:
            argv += ["--heapsize", str(self.heapsize)]
        if self.link:
            argv += ["--link", str(self.link)]
        return argv

    def start(self):
        os.makedirs(self.root, exist_ok=True)
        self._proc = subprocess.Popen(
            self.argv(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(os.environ, **self.env) if self.env else None,
            preexec_fn=_die_with_parent,
        )
        self._log_thread = threading.Thread(target=self._drain_stderr, daemon=True)
        self._log_thread.start()
        fd = self._proc.stdout.fileno()
        line = b""
        deadline = time.monotonic() + self.start_timeout
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                self.stop()
                raise RuntimeError("board-sim did not start: %s" % " | ".join(self.log))
            chunk = os.read(fd, 256)
            if not chunk:
                self.stop()
                raise RuntimeError("board-sim exited: %s" % " | ".join(self.log))
            line += chunk
        self.device = line.decode().strip()
        return self.device

    def _drain_stderr(self):
        for raw in self._proc.stderr:
            self.log.append(raw.decode(errors="replace").rstrip())

    @property
    def resets(self):
        """How many soft resets the board went through."""
        return sum(1 for line in self.log if "soft reset #" in line)

    def stop(self, timeout=5.0):
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout)
        if self._log_thread:
            self._log_thread.join(timeout=timeout)
        proc.stdout.close()
        proc.stderr.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def mpremote_argv():
    """The pinned mpremote's command line (next to ``sys.executable`` when installed)."""
    exe = shutil.which("mpremote", path=os.path.dirname(sys.executable))
    return [exe] if exe else [sys.executable, "-m", "mpremote"]


def mpremote(device, *args, timeout=60, check=True):
    """Run the real ``mpremote connect DEVICE ARGS...``; its CompletedProcess (text).

    >>> mpremote(dev, "exec", "import qfota.errors").returncode   # doctest: +SKIP
    0
    """
    proc = subprocess.run(
        [*mpremote_argv(), "connect", device, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise RuntimeError(
            "mpremote %s failed (%d): %s" % (" ".join(args), proc.returncode, proc.stderr)
        )
    return proc


# -- command line --


def _size(text):
    text = text.strip().upper()
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
    return int(text.rstrip("KMG")) * scale


def add_parser(subparsers):
    p = subparsers.add_parser(
        "board-sim",
        help="simulated MicroPython board on a pty (for mpremote and tests)",
        description="Run the MicroPython unix port behind a pty as a simulated board. "
        "Prints the device path on the first line, then runs until Ctrl-C.",
        epilog="example: qfota board-sim --root /tmp/board  &&  "
        "mpremote connect /dev/pts/N fs ls :",
    )
    p.add_argument("--root", help="folder used as the board's filesystem (default: a temp dir)")
    p.add_argument("--link", help="also make a symlink PATH to the device")
    p.add_argument(
        "--free-bytes",
        type=_size,
        metavar="N",
        help="make os.statvfs report N free bytes (suffix K/M/G allowed)",
    )
    p.add_argument("--run-main", action="store_true", help="run /main.py at each start")
    p.add_argument("--heapsize", help="MicroPython heap size, e.g. 256K (default: its own)")
    p.set_defaults(func=run)


def run(args):
    def stop(signum, frame):
        raise KeyboardInterrupt

    def log(msg):
        print("board-sim: " + msg, file=sys.stderr, flush=True)

    signal.signal(signal.SIGTERM, stop)
    tmp = None
    root = args.root
    if not root:
        root = tmp = tempfile.mkdtemp(prefix="qfota-board-")
    proxy = None
    try:
        try:
            proxy = BoardProxy(root, args.free_bytes, args.run_main, args.heapsize, log)
            device = proxy.start()
        except (OSError, RuntimeError) as exc:
            print("qfota board-sim: %s" % exc, file=sys.stderr)
            return 1
        if args.link:
            if os.path.islink(args.link):
                os.unlink(args.link)
            os.symlink(device, args.link)
        print(device, flush=True)
        log("root %s, %s" % (proxy.root, proxy.micropython))
        proxy.serve()
    except KeyboardInterrupt:
        return 0
    finally:
        if proxy:
            proxy.close()
        if args.link and os.path.islink(args.link):
            os.unlink(args.link)
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0
