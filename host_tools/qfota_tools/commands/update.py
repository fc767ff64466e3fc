"""``qfota update``: one whole FOTA update of a modem on a serial device.

    qfota update --port /dev/ttyUSB0 --image EC200TCNDAR02A07M16.bin --flow hw
    qfota update --port /dev/ttyUSB0 --url http://10.0.0.2/EC200T.bin --cid 1 --apn cmnet

``--runtime cpython`` runs the engine in this process over pyserial; ``--runtime
micropython`` runs the very same engine (``firmware/qfota``) on the MicroPython unix port
(``qfota.relay``, in a child process that opens the port itself, as a board would) and
reports its events here, with the same reporter and journal.
"""

import errno
import json
import math
import os
import select
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

from qfota import __version__
from qfota.at import EV_STAGE
from qfota.checks import OPTIONS, bad_char, why
from qfota.defaults import (
    BAUDS,
    CHUNK_MAX,
    CHUNK_MIN,
    DEFAULTS,
    IMAGE_MAX,
    PIECE_MAX,
    RATE_MAX,
    TIMEOUT_MAX_MS,
    TIMEOUTS,
)
from qfota.errors import FAILED, INTERRUPTED, REFUSED, FotaError
from qfota.report import Reporter
from qfota.runner import run_options, session_keys
from qfota.urls import check_url
from qfota_tools import build_mpy, tree

FIRMWARE = tree.FIRMWARE  # qfota/ and main.py (a checkout's firmware/, or a wheel's copy)
BOARDS = tree.BOARDS


def micropython_binary():
    """The ``micropython`` beside this Python (the venv's), else the one on PATH."""
    return tree.micropython()


def _compiled():
    """The engine and the unix board compiled by mpy-cross; returns their folders."""
    build_mpy.build()
    board = tree.build_dir() / "mpy-unix-board"
    board.mkdir(parents=True, exist_ok=True)
    build_mpy.compile_file(BOARDS / "unix.py", board / "unix.mpy", "unix.py")
    return [str(board), str(build_mpy.out_dir())]  # board first: build/mpy/unix/ is a folder


# The child imports the board module (so it may come precompiled) instead of running it
# as a script, which would be compiled in the interpreter's own heap; and it collects the
# garbage of each import before the next, which keeps a small heap unfragmented.
_RELAY = """
import gc
for m in ("qfota.compat", "qfota.errors", "qfota.defaults", "qfota.urc", "qfota.lines",
          "qfota.at", "qfota.session", "qfota.driver", "qfota.tty", "qfota.relay"):
    __import__(m)
    gc.collect()
from qfota import relay
relay.main()
"""


def micropython_env(mpy=False):
    """MICROPYPATH for the unix board; ``mpy=True`` puts the engine compiled by mpy-cross
    first (as on an MCU, where compiling the sources would not fit a small heap)."""
    env = dict(os.environ)
    path = [str(FIRMWARE), str(BOARDS), ".frozen"]
    if mpy:
        path[:0] = _compiled()
    env["MICROPYPATH"] = ":".join(path)
    return env


# ---------------------------------------------------------------- validation
# One validation for both runtimes, here in the CPython front, before either starts and
# before the port is opened: a refusal is one line naming the option and the value,
# exit 2, and no byte reaches the modem. The engine checks again (both must hold).

NOTE_RATE_MAX = RATE_MAX
RATE_MIN = 4 * PIECE_MAX + 1  # the driver paces pieces of 32 bytes: more than 4 a second
TIMEOUT_MAX_S = TIMEOUT_MAX_MS // 1000
DEFAULT_MAX_IMAGE = IMAGE_MAX
MICROPYTHON_ONLY = ("heapsize", "mpy", "mem", "lock_heap")
SIGNAL_GRACE_S = 5.0  # micropython runtime: time the child has for its last line after a signal


class Refused(Exception):
    """Bad input, found before anything was opened or sent. ``str()`` is the line."""


def _show(value):
    """``value`` as it goes into the one-line message: printable ASCII as is, anything
    else escaped (a CR or LF in an option must not break the line)."""
    text = str(value)
    for ch in text:
        if not 32 <= ord(ch) <= 126:
            return ascii(text)
    return text


def _refuse(option, value, why):
    if value is None:
        raise Refused(option + ": " + why)
    raise Refused("%s %s: %s" % (option, _show(value), why))


def redact_url(url):
    """``url`` with everything between the user's ``:`` and the last ``@`` as ``***``.

    Stricter than ``qfota.errors.redact`` (whose authority ends at the first ``/``,
    quote or space): used on URLs that have not passed validation yet."""
    i = url.find("://")
    at = url.rfind("@")
    if i < 0 or at < i:
        return url
    colon = url.find(":", i + 3, at)
    if colon < 0:
        return url
    return url[: colon + 1] + "***" + url[at:]


def _timeout_arg(text):
    """``NAME=SECONDS`` -> (``name_ms``, milliseconds); Refused names the problem."""
    name, eq, value = text.partition("=")
    key = name if name.endswith("_ms") else name + "_ms"
    if key not in TIMEOUTS:
        _refuse(
            "--timeout",
            text,
            "unknown name %r (names: %s)" % (name, ", ".join(k[:-3] for k in TIMEOUTS)),
        )
    if not eq:
        _refuse("--timeout", text, "give NAME=SECONDS")
    try:
        secs = float(value)
    except ValueError:
        secs = None
    if secs is None or not math.isfinite(secs):
        _refuse("--timeout", text, "%r is not a number of seconds" % value)
    if secs <= 0:
        _refuse("--timeout", text, "%s must be more than 0 s" % name)
    if secs > TIMEOUT_MAX_S:
        _refuse("--timeout", text, "%s must be at most %d s (24 h)" % (name, TIMEOUT_MAX_S))
    return key, max(1, int(round(secs * 1000)))


def _read_password(args):
    if args.password_env is not None and args.password_file is not None:
        _refuse("--password-env", None, "give --password-env or --password-file, not both")
    if args.password_env is not None:
        name = args.password_env
        if not name or name not in os.environ:
            _refuse("--password-env", name, "no such environment variable")
        return "--password-env", os.environ[name]
    path = args.password_file
    try:
        with open(path, "rb") as f:
            raw = f.read(4096)
    except OSError as e:
        _refuse("--password-file", path, "cannot read it (%s)" % (e.strerror or e))
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        _refuse("--password-file", path, "the password holds a non-ASCII character")
    if text.endswith("\r\n"):
        text = text[:-2]
    elif text.endswith("\n"):
        text = text[:-1]
    return "--password-file", text


def _check_url(args):
    """The URL as the modem will get it (password inserted), or Refused."""
    url = args.url
    shown = redact_url(url)
    bad = bad_char(url)
    if bad:
        _refuse("--url", shown, "holds %s" % bad)
    i = url.find("://")
    at = url.rfind("@")
    userinfo = url[i + 3 : at] if 0 <= i < at else ""
    bad = bad_char(userinfo, extra="/,")
    if bad:  # "/" or "," in the user or password: the modem and redact() would misparse
        _refuse("--url", shown, "the user or password holds %s" % bad)
    if args.password_env is not None or args.password_file is not None:
        option, password = _read_password(args)
        if not url.lower().startswith("ftp://"):
            _refuse(option, None, "a password goes only into an ftp:// URL")
        if at < 0 or not userinfo:
            _refuse(option, None, "the URL names no user (ftp://USER@server/file)")
        if ":" in userinfo:
            _refuse(option, None, "the URL has a password already")
        if not password:
            _refuse(option, None, "the password is empty")
        bad = bad_char(password, extra="/, ")
        if bad:
            _refuse(option, None, "the password holds %s" % bad)
        url = url[:at] + ":" + password + url[at:]
    try:
        check_url(url)
    except FotaError as e:
        rule = (e.detail or "").rsplit(": ", 1)[0]  # "URL <rule>: <the URL, redacted>"
        rule = rule[4:] if rule.startswith("URL ") else rule
        raise Refused("--url %s: %s" % (_show(redact_url(url)), rule)) from None
    return url


def _check_image(args):
    path = args.image
    try:
        st = os.stat(path)
    except OSError:
        _refuse("--image", path, "image not found")
    if not os.path.isfile(path):
        _refuse("--image", path, "not a regular file")
    if st.st_size <= 0:
        _refuse("--image", path, "image is empty")
    if st.st_size > args.max_image_size:
        _refuse(
            "--image",
            path,
            "%d bytes, above --max-image-size %d" % (st.st_size, args.max_image_size),
        )
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError as e:
        _refuse("--image", path, "image not readable (%s)" % (e.strerror or e))


def _given(args, name):
    return getattr(args, name) not in (None, False)


def validate(args):
    """The options dict for ``run_options`` from parsed arguments; raises ``Refused``."""
    if args.runtime == "cpython":
        for name in MICROPYTHON_ONLY:
            if _given(args, name):
                _refuse("--" + name.replace("_", "-"), None, "only with --runtime micropython")
    if args.heapsize is not None:
        h = args.heapsize
        digits = h[:-1] if h[-1:] in ("K", "k", "M", "m") else h
        if not digits.isdigit() or not digits or not 0 < int(digits):
            _refuse("--heapsize", h, "give a size such as 64K or 2M")
    if args.protocol_download:
        _refuse(
            "--protocol-download",
            None,
            'protocol-download file mode ("FILE:<length>",2, answer 010003) is not '
            "supported: its framing is not published (ask Quectel support)",
        )
    if args.max_image_size <= 0:
        _refuse("--max-image-size", args.max_image_size, "must be more than 0 bytes")
    if args.image is not None:
        for name in ("password_env", "password_file"):
            if _given(args, name):
                _refuse("--" + name.replace("_", "-"), None, "applies to --url only")
        _check_image(args)
    else:
        for name in ("rate", "chunk", "rate_above_note_limit", "lock_heap"):
            if _given(args, name):
                _refuse("--" + name.replace("_", "-"), None, "applies to --image only")
    check_options(args, "file" if args.image is not None else "url")
    url = None if args.image is not None else _check_url(args)
    check_stream_options(args)
    timeouts = check_port_options(args)
    check_log(args.log, "update", args.port)
    live = (sys.stdout.isatty() and not args.json) if args.live is None else args.live
    opts = {name: getattr(args, name, None) for name in session_keys()}
    opts.update(
        port=args.port,
        image=args.image,
        url=url,
        baud=args.baud,
        rate=args.rate,
        rate_above_note=args.rate_above_note_limit,
        chunk=args.chunk,
        max_image=args.max_image_size,
        timeouts=timeouts,
        lock_heap=args.lock_heap,
        mem=args.mem,
        live=live,
        verbose=args.verbose,
        json=args.json,
        log=args.log,
    )
    return opts


def check_stream_options(args):
    """``--rate``, ``--rate-above-note-limit``, ``--chunk``: refused by the driver's own
    rules (``qfota.driver.check_stream``), the line naming the option and the value."""
    from qfota.driver import check_stream

    flow_hw = (args.flow or DEFAULTS["flow"]) == "hw"
    if args.rate is not None and flow_hw:
        _refuse("--rate", args.rate, "applies to --flow none only (flow control paces the line)")
    if args.rate_above_note_limit and args.rate is None:
        _refuse("--rate-above-note-limit", None, "only with --flow none and --rate")
    chunk = DEFAULTS["chunk"] if args.chunk is None else args.chunk
    rate = DEFAULTS["rate"] if args.rate is None else args.rate
    try:
        check_stream(flow_hw, chunk, rate, DEFAULTS["piece"], args.rate_above_note_limit)
    except FotaError as e:
        detail = e.detail or ""
        setting = detail.split(" ", 1)[0]  # "chunk must be ...", "rate must be ..."
        if setting == "rate" and rate > NOTE_RATE_MAX and not args.rate_above_note_limit:
            detail += "; above the note's limit only with --rate-above-note-limit"
        _refuse("--" + setting, chunk if setting == "chunk" else rate, detail)


def flag(row):
    """The CLI option of an ``OPTIONS`` row: its own, or ``--`` and its name."""
    return row[1] or "--" + row[0].replace("_", "-")


def check_options(args, mode):
    """The engine's options (``qfota.checks.OPTIONS``) as given on the command line,
    refused by the engine's own rules (``qfota.checks.why``): one line naming the option
    and the value. ``mode``: "file" or "url" (an option of the other mode is refused)."""
    for row in OPTIONS:
        name, _flag, _default, rule, only, _gate = row
        value = getattr(args, name, None)
        if name == "timeouts" or value is None:
            continue
        if only is not None and only != mode:
            _refuse(
                flag(row), None, "applies to --%s only" % ("image" if only == "file" else "url")
            )
        bad = why(rule, value)
        if bad:
            _refuse(flag(row), ascii(value) if rule[0] == "text" else value, bad)


# What the CLI says of the engine's options (qfota.checks.OPTIONS) beyond their rule; an
# option without a line here is described from its rule and its gate (option_help).
HELP = {
    "upgrade_mode": "<upgrade_mode>: 0 reboot before upgrading, 1 at once",
    "download_urcs": "<download_URC_max>: 0 or 5-100",
    "update_urcs": "<update_URC_max>: 0 or 5-100",
    "flow": "hardware flow control (AT+IFC=2,2) or none (paced)",
    "usb": 'the port is the module\'s USB AT port: AT+QCFG="usbifc",2,2',
    "cid": "PDP context id (1-15)",
    "apn": "APN to configure on the context",
    "min_voltage_mv": "refuse below this supply voltage (AT+CBC, mV)",
    "expect_source": "refuse unless the modem runs REV (or --target already: nothing to do)",
    "target": "the revision the image installs: already running it is nothing to do; any "
    "other after the update fails",
}


def option_help(row):
    """The help of an ``OPTIONS`` row: its line in ``HELP``, else from its rule and gate
    (``--min-rssi``: "refuse when AT+CSQ reads less (0-31)")."""
    name, _flag, default, rule, only, gate = row
    text = HELP.get(name)
    if text is None:
        span = "%d-%d" % (rule[1], rule[2]) if rule[0] == "int" else rule[0]
        if gate is not None:
            from qfota.steps import STEPS

            text = "refuse when %s reads less (%s)" % (STEPS[gate[0]][1].decode(), span)
        else:
            text = name.replace("_", " ") + " (%s)" % span
    if only is not None:
        text = ("FILE mode: " if only == "file" else "URL mode: ") + text
    if default is not None and rule[0] != "bool":
        text += " (default %s)" % (default,)
    return text


def add_options(p):
    """The engine's options (``qfota.checks.OPTIONS``) as arguments."""
    for row in OPTIONS:
        name, _flag, _default, rule, _only, _gate = row
        if name == "timeouts":
            continue  # --timeout NAME=SECONDS: add_port_options
        kind = rule[0]
        help = option_help(row)
        opt = flag(row)
        if kind == "bool":
            p.add_argument(opt, dest=name, action="store_true", default=None, help=help)
        elif kind == "one of":
            p.add_argument(opt, dest=name, choices=rule[1:], help=help)
        elif kind == "text":
            p.add_argument(opt, dest=name, metavar=name.upper(), help=help)
        else:
            p.add_argument(opt, dest=name, type=int, metavar="N", help=help)


# ---------------------------------------------------------------- the command
def add_parser(sub):
    p = sub.add_parser(
        "update",
        help="update a modem's firmware (FILE mode from an image, or URL mode)",
        description=__doc__.split("\n\n")[0],
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--image", help="the FOTA package to send (FILE mode)")
    src.add_argument("--url", help="ftp://, http:// or https:// URL the modem fetches itself")
    p.add_argument("--port", required=True, help="serial device of the modem's AT port")
    add_options(p)
    add_port_options(p)
    p.add_argument(
        "--rate",
        type=int,
        help="--flow none: bytes/s, %d-%d (default %d, the note's limit)"
        % (RATE_MIN, NOTE_RATE_MAX, NOTE_RATE_MAX),
    )
    p.add_argument(
        "--rate-above-note-limit",
        action="store_true",
        help="allow --rate above the note's 15000 bytes/s (a NOR-flash module loses bytes)",
    )
    p.add_argument(
        "--chunk",
        type=int,
        help="FILE mode: bytes read from the image at a time, a multiple of 16, %d-%d "
        "(default %d)" % (CHUNK_MIN, CHUNK_MAX, DEFAULTS["chunk"]),
    )
    p.add_argument(
        "--max-image-size",
        type=int,
        default=DEFAULT_MAX_IMAGE,
        metavar="BYTES",
        help="refuse larger images (default %d, 64 MiB)" % DEFAULT_MAX_IMAGE,
    )
    p.add_argument(
        "--password-env",
        metavar="NAME",
        help="URL mode: the FTP password from this environment variable (URL: ftp://USER@...)",
    )
    p.add_argument(
        "--password-file",
        metavar="FILE",
        help="URL mode: the FTP password from this file (its first line)",
    )
    p.add_argument(
        "--protocol-download",
        action="store_true",
        help='ask for "FILE:<length>",2 (refused: its framing is not public)',
    )
    p.add_argument("--heapsize", help="micropython runtime: heap size, e.g. 64K")
    p.add_argument(
        "--lock-heap",
        action="store_true",
        help="micropython runtime: stream under micropython.heap_lock() (proves no allocation)",
    )
    p.add_argument(
        "--mem", action="store_true", help="micropython runtime: print the peak heap at the end"
    )
    p.add_argument(
        "--mpy",
        action="store_true",
        help="micropython runtime: run the engine compiled with mpy-cross",
    )
    p.add_argument(
        "--live",
        action="store_true",
        default=None,
        help="one live progress line (default: when a terminal)",
    )
    p.add_argument(
        "--json", action="store_true", help="one JSON object per line per event, for scripts"
    )
    p.add_argument("--log", metavar="FILE", help="append every line, timestamped, to FILE")
    p.add_argument(
        "-v", "--verbose", action="store_true", help="print every AT line (passwords redacted)"
    )
    p.set_defaults(func=run)


def stdout_line(text="", end="\n"):
    """``print`` for the Reporter, flushed per line (a JSON consumer gets each event as
    it happens). When the reader has gone (``| head -1``: EPIPE) or stdout fails, the
    descriptor is pointed at /dev/null, so nothing later (nor the interpreter's exit)
    fails on it, and the error goes to the Reporter, which stops writing there."""
    try:
        sys.stdout.write(text + end)
        sys.stdout.flush()
    except OSError:
        try:
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, sys.stdout.fileno())
            os.close(null)
        except (OSError, ValueError):
            pass
        raise


# ---------------------------------------------------------------- signals
class _Signals:
    """SIGINT, SIGTERM and SIGHUP while an update runs: remembers the first one and calls
    ``action(signum)``; restores the old handlers on exit."""

    NAMES = ("SIGINT", "SIGTERM", "SIGHUP")

    def __init__(self, action):
        self.action = action
        self.signum = None
        self.count = 0
        self._old = {}

    def _handler(self, signum, frame):
        self.count += 1
        if self.signum is None:
            self.signum = signum
        self.action(signum)

    def __enter__(self):
        for name in self.NAMES:
            s = getattr(signal, name)
            self._old[s] = signal.signal(s, self._handler)
        return self

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)

    def status(self, default):
        """128 + the signal number (130 SIGINT, 143 SIGTERM, 129 SIGHUP), else ``default``."""
        return default if self.signum is None else 128 + self.signum

    @property
    def name(self):
        return signal.Signals(self.signum).name if self.signum else ""


def _raise_interrupt(signum):
    raise KeyboardInterrupt


def _reporter(opts, out=stdout_line):
    return Reporter(out, live=False, json=opts.get("json", False), log=opts.get("log"))


def run_cpython(opts, lock=None, out=stdout_line):
    from qfota_tools.transport.serial_port import SerialPort

    def open_port(flow_hw):
        return SerialPort(opts["port"], opts["baud"], flow_hw, lock=lock)

    with _Signals(_raise_interrupt) as sigs:
        try:
            status = run_options(opts, open_port, out)
        except KeyboardInterrupt:
            # The engine did not turn it into its own line: say it here.
            err = FotaError(
                "INTERRUPTED", None, "stopped by %s" % (sigs.name or "SIGINT"), INTERRUPTED
            )
            status = _reporter(opts, out).result(err=err)
        return sigs.status(status)


def run_micropython(opts, heapsize=None, mpy=False, lock=None, out=stdout_line):
    engine = MicroPythonEngine(opts, heapsize, mpy, lock)
    with _Signals(engine.signal) as sigs:
        try:
            status = run_options(opts, None, out, engine=engine)
        except KeyboardInterrupt:
            # The engine stopped before it could say so itself (at its start).
            err = FotaError(
                "INTERRUPTED", None, "stopped by %s" % (sigs.name or "SIGINT"), INTERRUPTED
            )
            status = _reporter(opts, out).result(err=err)
        return sigs.status(status)


def _pdeathsig():
    """In the child: SIGKILL when the parent dies (even by SIGKILL), so no orphan keeps
    talking to the modem."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # best effort, Linux only
        pass


class MicroPythonEngine:
    """``qfota.driver``'s ``update``/``recover``/``info`` run by the MicroPython interpreter:
    the engine in a child process (``qfota.relay``), its events and its end
    relayed here, where ``run_options`` reports them and keeps the journal exactly as for
    the CPython runtime. ``heap`` (with ``--mem``): the child's live-heap high-water and
    heap size. ``signal(signum)`` forwards one SIGINT to the child; a second kills it."""

    def __init__(self, opts, heapsize=None, mpy=False, lock=None):
        self.opts = opts
        self.heapsize = heapsize
        self.mpy = mpy
        self.lock = lock
        self.heap = None
        self.proc = None
        self.forwarded = None  # monotonic time of the forwarded signal

    def update(self, port, on_event=None, **kwargs):
        return self._call("update", on_event, kwargs)

    def recover(self, port, on_event=None, **kwargs):
        return self._call("recover", on_event, kwargs)

    def info(self, port, on_event=None, **kwargs):
        return self._call("info", on_event, kwargs)

    def signal(self, signum):
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        if self.forwarded is not None:
            proc.kill()  # a second signal: no more waiting
            return
        self.forwarded = time.monotonic()
        try:
            proc.send_signal(signal.SIGINT)
        except ProcessLookupError:
            pass

    def _call(self, name, on_event, kwargs):
        opts = self.opts
        call = {
            "call": name,
            "port": opts["port"],
            "baud": opts["baud"],
            "flow_hw": (kwargs.get("flow") or DEFAULTS["flow"]) == "hw",
            "kwargs": kwargs,
            "mem": bool(opts.get("mem")),
        }
        cmd = [micropython_binary()]
        if self.heapsize:
            cmd += ["-X", "heapsize=%s" % self.heapsize]
        env = micropython_env(self.mpy)
        env["QFOTA_CALL"] = json.dumps(call)  # not argv: see boards/unix.py (long arguments)
        # Its own process group: a Ctrl-C in the terminal reaches only this process,
        # which forwards exactly one SIGINT (two would interrupt the child's last line).
        self.proc = proc = subprocess.Popen(
            cmd + ["-c", _RELAY],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            process_group=0,
            preexec_fn=_pdeathsig,
        )
        if self.lock is not None:
            self.lock.exclusive_when_open(proc.pid, lambda: proc.poll() is None)
        end, other, stage = None, [], None
        try:
            for line in self._lines(proc):
                if line.startswith("E "):
                    ev, a, b = json.loads(line[2:])
                    if ev == EV_STAGE:
                        stage = a
                    if on_event is not None:
                        on_event(ev, a, b)
                elif line.startswith("R "):
                    end = json.loads(line[2:])
                elif line.strip():
                    other = (other + [line.strip()])[-3:]  # a traceback's last lines
        finally:
            if proc.poll() is None:
                proc.kill()
            rc = proc.wait(timeout=10)
        if end is None:
            why = other[-1] if other else "no output"
            raise FotaError(
                stage or "PREFLIGHT",
                None,
                "the MicroPython process ended without a result (exit %d): %s" % (rc, why),
                FAILED,
            )
        self.heap = end.get("heap")
        if "error" in end:
            kind_name, err_stage, code, detail, kind = end["error"]
            if kind_name == "FotaError":
                raise FotaError(err_stage, code, detail, kind)
            if kind_name == "KeyboardInterrupt":
                raise KeyboardInterrupt
            raise type(kind_name, (Exception,), {})(detail)  # reported as an internal error
        return SimpleNamespace(**end["session"])

    def _lines(self, proc):
        """The child's output lines, as they come; kills it when it outlives a forwarded
        signal by ``SIGNAL_GRACE_S``."""
        fd = proc.stdout.fileno()
        pending = b""
        while True:
            if self.forwarded is not None and time.monotonic() - self.forwarded > SIGNAL_GRACE_S:
                proc.kill()
            ready, _w, _x = select.select([fd], [], [], 0.2)
            if not ready:
                continue
            data = os.read(fd, 65536)
            if not data:
                break
            pending += data
            *lines, pending = pending.split(b"\n")
            for line in lines:
                yield line.decode(errors="replace")
        if pending:
            yield pending.decode(errors="replace")


def add_port_options(p):
    """The options every command that talks to the modem shares (update, recover, info)."""
    p.add_argument(
        "--baud",
        type=int,
        default=DEFAULTS["baud"],
        help="line rate, one of %s (default %d)" % (", ".join(map(str, BAUDS)), DEFAULTS["baud"]),
    )
    p.add_argument("--runtime", choices=("cpython", "micropython"), default="cpython")
    p.add_argument(
        "--timeout",
        action="append",
        default=[],
        metavar="NAME=SECONDS",
        help="override a wait (0 < SECONDS <= 86400): %s" % ", ".join(k[:-3] for k in TIMEOUTS),
    )


def check_port_options(args):
    """``--port``, ``--baud``, ``--timeout``: the checks every command shares; the timeouts."""
    if not args.port:
        _refuse("--port", repr(args.port), "give the modem's serial device")
    if args.baud not in BAUDS:
        _refuse(
            "--baud", args.baud, "not a rate the module takes (%s)" % ", ".join(map(str, BAUDS))
        )
    timeouts = {}
    for t in args.timeout:
        k, v = _timeout_arg(t)
        timeouts[k] = v
    return timeouts or None


def check_log(path, command, port):
    """``--log FILE``: refused unless a line can be appended to it and flushed (a full
    disk, ``/dev/full``, takes the open but not the write). The line opens this run's
    part of the log."""
    if path is None:
        return
    t = time.localtime()
    line = "%04d-%02d-%02d %02d:%02d:%02d qfota: " % t[:6]
    line += "qfota %s %s --port %s\n" % (__version__, command, _show(port))
    try:
        with open(path, "a") as f:
            f.write(line)
            f.flush()
    except OSError as e:
        _refuse("--log", path, "cannot write it (%s)" % (e.strerror or e))


def refused(args, why):
    """Report a refusal found before anything was opened: one line, exit 2."""
    log = getattr(args, "log", None)
    if log is not None and why.startswith("--log "):
        log = None  # the log is what was refused
    rep = Reporter(stdout_line, json=bool(getattr(args, "json", False)), log=log)
    return rep.result(err=FotaError("PARAMS", None, why, REFUSED))


def launch(opts, runtime="cpython", heapsize=None, mpy=False):
    """Run validated ``opts`` on ``runtime`` with the port locked; returns the exit status."""
    from qfota.cut import os_error
    from qfota_tools.transport.portlock import PortBusy, PortLock

    try:  # a missing interpreter or compiler (an extra not installed): refused, nothing opened
        if runtime == "micropython":
            micropython_binary()
        if mpy:
            build_mpy.mpy_cross()
    except (OSError, RuntimeError) as e:
        why = "--runtime micropython%s: %s" % (" --mpy" if mpy else "", e)
        return _reporter(opts).result(err=FotaError("PARAMS", None, why, REFUSED))
    # Every problem with --port is found here, before anything is sent, on either
    # runtime: one line, stage PORT, exit 2 (missing, a directory, no permission, not a
    # serial device, busy).
    port = opts["port"]
    try:
        lock = PortLock(port)
    except PortBusy as e:
        return _reporter(opts).result(err=FotaError("PORT", None, e.strerror, REFUSED))
    except OSError as e:
        why = "cannot open %s: %s" % (_show(port), os_error(e))
        return _reporter(opts).result(err=FotaError("PORT", None, why, REFUSED))
    if not os.isatty(lock.fd):
        lock.release()
        why = "%s: not a serial device ([Errno %d] ENOTTY): give the modem's AT port" % (
            _show(port),
            errno.ENOTTY,
        )
        return _reporter(opts).result(err=FotaError("PORT", None, why, REFUSED))
    if lock.cleared is not None:
        rep = _reporter(opts)
        rep.line(
            "cleared the exclusive flag that qfota pid %d left on %s (it is gone)"
            % (lock.cleared, opts["port"])
        )
        rep.close()
    try:
        if runtime == "micropython":
            return run_micropython(opts, heapsize, mpy, lock=lock)
        return run_cpython(opts, lock=lock)
    finally:
        lock.release()


def run(args):
    try:
        opts = validate(args)
    except Refused as e:
        return refused(args, str(e))
    return launch(opts, args.runtime, args.heapsize, args.mpy)
