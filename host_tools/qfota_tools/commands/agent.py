"""``qfota agent``: a gateway that keeps every modem on its USB up to date from a DDI
server (hawkBit, gooseBit), the way the device's own server mode does it.

    qfota agent --config /etc/qfota/agent.json [--json]
    qfota agent status --config /etc/qfota/agent.json [--json]

One DDI client, two runtimes: each modem is served by ``qfota.fleet.Fleet`` (the client
the device runs) over the host transport (``transport/http_host.py``) and the driver
over the modem's USB AT port, in a thread of its own (``Worker``). The modem names
itself: its controller id is ``id_prefix`` + its IMEI (``AT+CGSN``), so a modem moved to
another port or gateway stays the same device. A worker holds its port's lock
(``portlock``) for as long as it serves it: one updater per port.

Per modem, ``state_dir/<id>/action.json`` is Fleet's journal (an agent restarted in the
middle of an update follows the modem to its end and reports that action once; a failed
action is never run again by itself) and ``download_dir/<id>/`` holds its downloads.
``state_dir/status.json`` (temp + rename) is what ``qfota agent status`` shows.

The config is a JSON object; everything in it is checked before any port is opened (exit
2, one line naming the key). Keys (``server``, ``state_dir`` and ``ports`` required)::

    server          http(s)://host[:port] of the DDI server
    tenant          "DEFAULT"
    ports           ["/dev/ttyUSB2", ...] or a glob "/dev/serial/by-id/*-if02*"
                    (expanded at start and every ``rescan_s``)
    tokens          {"ec200-<IMEI>": "<TargetToken>"}      never printed
    token_dir       a folder with one file per controller id holding its token
    id_prefix       "ec200-"
    poll            {"min_s": 10, "max_s": 86400}  bounds of the server's sleep
    download_dir    default: state_dir
    state_dir       journals and status.json
    url_mode        false: true lets the modem fetch a plain link itself ...
    download_auth   true:  ... only when the server's links need no token (false)
    usb             true: the USB AT port (AT+QCFG="usbifc",2,2), false: the UART (AT+IFC)
    baud, flow      115200, "hw" | "none"
    timeouts        {"fileend": 30, ...}  the driver's waits in seconds (qfota update --timeout)
    http_timeout_s  30  per socket operation
    rescan_s        10  how often a port glob is expanded again

Stop: SIGTERM or SIGINT. Workers between requests stop at once; a modem inside a
transfer or upgrade is left as ``qfota update`` leaves it (each one said: what it is
doing; the next agent start, or ``qfota recover``, follows it). Exit 143 / 130.
"""

import glob
import json
import math
import os
import select
import signal
import sys
import termios
import threading
import time
from types import SimpleNamespace

from qfota.ddi import id_ok, link_ok
from qfota.defaults import BAUDS, TIMEOUT_MAX_MS, TIMEOUTS
from qfota.errors import FotaError, redact

ID_PREFIX = "ec200-"
BACKOFF_MIN_S = 1.0  # a port that cannot be opened (unplugged, busy) is tried again ...
BACKOFF_MAX_S = 60.0  # ... doubling up to this
NAP_MAX_S = 5.0  # a worker looks at its port at least this often between polls
STOP_GRACE_S = 3.0  # time workers in a request have to end it after a stop
TOKEN_MAX = 256
STATUS = "status.json"
PORT = "port"  # state_dir/<id>/port: where the modem was last served

_KEYS = (
    "server",
    "tenant",
    "ports",
    "tokens",
    "token_dir",
    "id_prefix",
    "poll",
    "download_dir",
    "state_dir",
    "url_mode",
    "download_auth",
    "usb",
    "baud",
    "flow",
    "timeouts",
    "http_timeout_s",
    "rescan_s",
)


class Refused(Exception):
    """A config refused before anything was opened: the key and the problem."""


def _bad(key, why):
    raise Refused("%s: %s" % (key, why))


def _number(cfg, key, default, lo, hi, within=None):
    v = cfg.get(key, default)
    name = key if within is None else "%s.%s" % (within, key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        _bad(name, "must be a number of seconds")
    if not lo <= v <= hi:
        _bad(name, "must be %g-%g, not %g" % (lo, hi, v))
    return float(v)


def _flag(cfg, key, default):
    v = cfg.get(key, default)
    if not isinstance(v, bool):
        _bad(key, "must be true or false")
    return v


def _folder(cfg, key, default=None):
    v = cfg.get(key, default)
    if not isinstance(v, str) or not v or "\x00" in v:
        _bad(key, "give a folder")
    return v


def load_config(path):
    """The checked config of file ``path`` as a ``SimpleNamespace``; raises ``Refused``."""
    try:
        with open(path) as f:
            cfg = json.load(f)
    except OSError as e:
        raise Refused("cannot read it (%s)" % (e.strerror or e)) from None
    except ValueError as e:
        raise Refused("not JSON (%s)" % e) from None
    if not isinstance(cfg, dict):
        raise Refused("must be a JSON object")
    for k in cfg:
        if k not in _KEYS:
            _bad(k, "unknown key (keys: %s)" % ", ".join(_KEYS))
    c = SimpleNamespace()
    server = cfg.get("server")
    if not isinstance(server, str) or not link_ok(server.rstrip("/"), 256):
        _bad("server", "give http(s)://host[:port] (no space, quote or control character)")
    if server.rstrip("/").count("/") != 2:
        _bad("server", "give http(s)://host[:port] without a path")
    c.server = server.rstrip("/")
    c.tenant = cfg.get("tenant", "DEFAULT")
    if not isinstance(c.tenant, str) or not id_ok(c.tenant, "-_."):
        _bad("tenant", "letters, digits, '-', '_', '.' only")
    c.id_prefix = cfg.get("id_prefix", ID_PREFIX)
    if not isinstance(c.id_prefix, str) or (c.id_prefix and not id_ok(c.id_prefix, "-_.")):
        _bad("id_prefix", "letters, digits, '-', '_', '.' only")
    ports = cfg.get("ports")
    if isinstance(ports, str):
        ports = [ports]
    if not isinstance(ports, list) or not ports:
        _bad("ports", "give a list of serial devices or a glob")
    for p in ports:
        if not isinstance(p, str) or not p.startswith("/") or "\x00" in p:
            _bad("ports", "%s: give an absolute device path or glob" % ascii(p))
    c.ports = ports
    c.tokens = cfg.get("tokens") or {}
    if not isinstance(c.tokens, dict):
        _bad("tokens", "give an object {controller id: token}")
    for cid, tok in c.tokens.items():
        _check_token("tokens", cid, tok)
    c.token_dir = cfg.get("token_dir")
    if c.token_dir is not None:
        _folder(cfg, "token_dir")
        if not os.path.isdir(c.token_dir):
            _bad("token_dir", "%s: no such folder" % c.token_dir)
    poll = cfg.get("poll") or {}
    if not isinstance(poll, dict) or any(k not in ("min_s", "max_s") for k in poll):
        _bad("poll", 'give {"min_s": S, "max_s": S}')
    c.sleep_min_ms = int(_number(poll, "min_s", 10, 0.1, 86400, "poll") * 1000)
    c.sleep_max_ms = int(_number(poll, "max_s", 86400, 0.1, 86400, "poll") * 1000)
    if c.sleep_min_ms > c.sleep_max_ms:
        _bad("poll", "min_s is more than max_s")
    c.state_dir = _folder(cfg, "state_dir")
    c.download_dir = _folder(cfg, "download_dir", c.state_dir)
    for key in ("state_dir", "download_dir"):
        d = getattr(c, key)
        parent = os.path.dirname(os.path.abspath(d))
        if not os.path.isdir(d) and not os.path.isdir(parent):
            _bad(key, "%s: neither it nor its parent folder exists" % d)
    c.url_mode = _flag(cfg, "url_mode", False)
    c.download_auth = _flag(cfg, "download_auth", True)
    c.usb = _flag(cfg, "usb", False)
    c.baud = cfg.get("baud", 115200)
    if c.baud not in BAUDS or isinstance(c.baud, bool):
        _bad(
            "baud", "%s is not a rate the module takes (%s)" % (c.baud, ", ".join(map(str, BAUDS)))
        )
    c.flow = cfg.get("flow", "hw")
    if c.flow not in ("hw", "none"):
        _bad("flow", 'must be "hw" or "none"')
    t = cfg.get("timeouts") or {}
    if not isinstance(t, dict):
        _bad("timeouts", 'give {"NAME": SECONDS}')
    c.timeouts = {}
    for name in t:
        key = name if str(name).endswith("_ms") else "%s_ms" % name
        if key not in TIMEOUTS:
            _bad(
                "timeouts",
                "unknown name %s (names: %s)" % (ascii(name), ", ".join(k[:-3] for k in TIMEOUTS)),
            )
        c.timeouts[key] = int(_number(t, name, 0, 0.001, TIMEOUT_MAX_MS / 1000, "timeouts") * 1000)
    c.http_timeout_s = _number(cfg, "http_timeout_s", 30, 0.1, 600)
    c.rescan_s = _number(cfg, "rescan_s", 10, 0.1, 86400)
    return c


def _check_token(key, cid, tok):
    # The token is never repeated in a message: only where it is and what is wrong.
    if not isinstance(cid, str) or not id_ok(cid, "-_."):
        _bad(key, "%s is not a controller id (letters, digits, '-', '_', '.')" % ascii(cid))
    if not isinstance(tok, str) or not 0 < len(tok) <= TOKEN_MAX:
        _bad(key, "the token of %s must be 1-%d characters" % (cid, TOKEN_MAX))
    for ch in tok:
        if not 33 <= ord(ch) <= 126 or ch in "\"'":
            _bad(key, "the token of %s holds a space, quote or control character" % cid)


class NoToken(Exception):
    pass


def token_for(cfg, cid):
    """The TargetToken of controller ``cid`` (None when the config names none at all:
    a server without device authentication). Raises ``NoToken`` (its text names the
    place, never the token)."""
    if cid in cfg.tokens:
        return cfg.tokens[cid]
    if cfg.token_dir is None:
        if cfg.tokens:
            raise NoToken("no token for %s in the config's tokens" % cid)
        return None
    path = os.path.join(cfg.token_dir, cid)
    try:
        with open(path) as f:
            tok = f.read().strip()
    except OSError as e:
        raise NoToken("no token file %s (%s)" % (path, e.strerror or e)) from None
    try:
        _check_token("token_dir", cid, tok)
    except Refused as e:
        raise NoToken(str(e)) from None
    return tok


# ---------------------------------------------------------------- one modem
class _Port:
    """The worker's port as the driver opens it for a run: pyserial under the lock the
    worker holds (TIOCEXCL is lifted when the run closes it, so the next run can open)."""

    def __init__(self, device, baud, flow_hw, lock):
        from qfota_tools.transport.serial_port import SerialPort

        self.sp = SerialPort(device, baud, flow_hw, lock=lock)
        self.lock = lock
        self.readinto = self.sp.readinto
        self.write = self.sp.write
        self.wait = self.sp.wait
        self.wait_writable = self.sp.wait_writable

    def close(self):
        try:
            self.sp.close()
        finally:
            _unexclusive(self.lock)


def _unexclusive(lock):
    """TIOCNXCL on a port the worker still holds by its flock: TIOCEXCL is the tty's, it
    would outlive this process while anything else holds the device open."""
    import fcntl

    from qfota_tools.transport.portlock import TIOCNXCL

    if lock._excl and lock.fd is not None:
        try:
            fcntl.ioctl(lock.fd, TIOCNXCL)
        except OSError:
            pass
        lock._excl = False


class Worker(threading.Thread):
    """Serves the modem on one port: opens it, reads its IMEI and revision, runs Fleet
    until a stop or until the port goes; then tries it again with a bounded backoff."""

    def __init__(self, agent, port):
        super().__init__(name="qfota-agent " + port, daemon=True)
        self.agent = agent
        self.cfg = agent.cfg
        self.port = port
        self.cid = None
        self.fleet = None
        self.busy = False  # inside Fleet (a request or a run on the modem)
        self.lock = None  # the port's PortLock while served
        self.stage = None  # the driver's stage while it runs
        self.sent = 0
        self.length = 0
        self.row = {"port": port, "id": None, "revision": None, "action": None}
        self.row.update(stage=None, result=None, event=None, text=None)

    # ---- what happened
    def say(self, event, text):
        self.row["event"] = event
        self.row["text"] = text
        self.agent.emit(self, event, text)

    def _fleet_event(self, name, text):
        f = self.fleet
        if f is not None:
            self.row["action"] = f.journal.data.get("id")
            if f.revision:
                self.row["revision"] = f.revision
        if name == "result":
            self.row["result"] = text
            self.stage = None
            self.row["stage"] = None
        self.say(name, text)

    def _driver_event(self, ev, a, b):
        from qfota.at import EV_REVISION, EV_SENT, EV_STAGE

        if ev == EV_STAGE:
            self.stage = a
            self.row["stage"] = a
            self.say("stage", a)
        elif ev == EV_SENT:
            self.sent, self.length = a, b
        elif ev == EV_REVISION and a == "after":
            self.row["revision"] = b

    # ---- the loop
    def run(self):
        stop = self.agent.stop
        backoff = BACKOFF_MIN_S
        while not stop.is_set():
            try:
                served = self._serve()
            except Exception as e:  # a bug must cost this modem only, and say so
                self.say("failed", "agent error: %s: %s" % (e.__class__.__name__, redact(str(e))))
                served = False
            finally:
                self.busy = False
            if stop.is_set():
                break
            backoff = BACKOFF_MIN_S if served else min(backoff * 2, BACKOFF_MAX_S)
            self.say("retry", "the port again in %g s" % backoff)
            stop.wait(backoff)

    def _serve(self):
        """One spell of serving the port; True when the modem was served (reset backoff)."""
        from qfota_tools.transport.portlock import PortBusy, PortLock

        try:
            lock = PortLock(self.port)
        except PortBusy as e:
            self.say("failed", "PORT: %s" % e.strerror)
            return False
        except OSError as e:
            self.say("failed", "PORT: cannot open %s: %s" % (self.port, e.strerror or e))
            return False
        self.lock = lock
        try:
            return self._serve_locked(lock)
        finally:
            self.agent.release(self)
            self.lock = None
            lock.release()

    def _serve_locked(self, lock):
        from qfota import driver, fleet
        from qfota.journal import Journal
        from qfota_tools.transport.http_host import HttpTransport

        cfg = self.cfg
        flow_hw = cfg.flow == "hw"

        def opener():
            return _Port(self.port, cfg.baud, flow_hw, lock)

        self.busy = True
        try:
            pending = self._pending()
            if pending is not None:
                # An agent stopped inside this port's transfer or upgrade: an AT now would
                # be package data. Recovery listens first and follows the modem to its end;
                # Fleet reports that action once it knows the modem's name.
                self.say(
                    "resume", "%s: action %s was under way on this port: following it" % pending
                )
                driver.recover(opener, usb=cfg.usb, timeouts=cfg.timeouts or None)
            s = driver.info(opener, usb=cfg.usb, timeouts=cfg.timeouts or None)
        except FotaError as e:
            self.say("failed", "reading the modem: %s" % e)
            return False
        finally:
            self.busy = False
        if not s.imei:
            self.say("failed", "INFO: no IMEI in the answer to AT+CGSN: the modem cannot be named")
            return False
        cid = cfg.id_prefix + s.imei
        self.row["revision"] = s.revision_before
        other = self.agent.claim(self, cid)
        if other is not None:
            self.say("failed", "%s is already served on %s (the same IMEI)" % (cid, other))
            return False
        self.cid = cid
        self.row["id"] = cid
        self.say("modem", "%s, revision %s" % (cid, s.revision_before))
        try:
            token = token_for(cfg, cid)
        except NoToken as e:
            self.say("failed", "DDI: %s" % e)
            return False
        state = os.path.join(cfg.state_dir, cid)
        folder = os.path.join(cfg.download_dir, cid)
        os.makedirs(state, exist_ok=True)
        os.makedirs(folder, exist_ok=True)
        _write(os.path.join(state, PORT), self.port)
        updater = fleet.DriverUpdater(
            opener,
            on_event=self._driver_event,
            timeouts=cfg.timeouts or None,
            usb=cfg.usb,
            flow=cfg.flow,
        )
        f = fleet.Fleet(
            HttpTransport(timeout=cfg.http_timeout_s),
            updater,
            cfg.server,
            cfg.tenant,
            cid,
            token=token,
            folder=folder,
            url_mode=cfg.url_mode,
            download_auth=cfg.download_auth,
            on_event=self._fleet_event,
            sleep_min=cfg.sleep_min_ms,
            sleep_max=cfg.sleep_max_ms,
        )
        # The journal beside the status, the downloads in their own folder.
        f.journal = Journal(os.path.join(state, "action.json"))
        f.revision = s.revision_before  # read just now: start() need not ask again
        self.fleet = f
        self.row["action"] = f.journal.load().get("id")
        stop = self.agent.stop
        self.busy = True
        try:
            f.start()
        finally:
            self.busy = False
        while not stop.is_set():
            if self._gone(lock):
                self.say("failed", "PORT: %s is gone (unplugged?): stopped serving it" % self.port)
                return True
            self.busy = True
            try:
                wait_ms = f.step()
            finally:
                self.busy = False
                self.stage = None
            stop.wait(min(max(wait_ms, 0) / 1000, NAP_MAX_S))
        return True

    def _pending(self):
        """(id, action) of a modem last served on this port whose journal says it was
        inside an update, or None."""
        from qfota import fleet

        try:
            names = os.listdir(self.cfg.state_dir)
        except OSError:
            return None
        for cid in names:
            d = os.path.join(self.cfg.state_dir, cid)
            try:
                with open(os.path.join(d, PORT)) as f:
                    if f.read() != self.port:
                        continue
                with open(os.path.join(d, "action.json")) as f:
                    rec = json.load(f)
            except (OSError, ValueError):
                continue
            if isinstance(rec, dict) and rec.get("state") == fleet.UPDATE:
                return cid, rec.get("id")
        return None

    def _gone(self, lock):
        if not os.path.exists(self.port):
            return True
        p = select.poll()
        p.register(lock.fd, select.POLLHUP | select.POLLERR)
        return bool(p.poll(0))

    def left(self):
        """What this worker leaves behind when the agent stops while it is busy."""
        from qfota import fleet
        from qfota.cut import advice

        f = self.fleet
        rec = f.journal.data if f is not None else {}
        st = rec.get("state")
        aid = rec.get("id")
        if st == fleet.UPDATE:
            s = SimpleNamespace(
                stage=self.stage, result=None, recover=False, sent=self.sent, length=self.length
            )
            return "action %s: %s; the next agent start follows it to its end and reports it" % (
                aid,
                advice(s).replace("`qfota recover`", "`qfota recover --port %s`" % self.port),
            )
        said = {
            fleet.DOWNLOAD: "downloading; the part on disk is resumed at the next start",
            fleet.DOWNLOADED: "downloaded and checked, waiting for the server to allow the"
            " update; the next start polls for it",
            fleet.DUE: "downloaded and checked, the update not begun (nothing sent to the"
            " modem); the next start runs it",
            fleet.REPORT: "ended; the server had not taken its result: the next start posts it",
        }.get(st)
        if said is not None:
            return "action %s: %s" % (aid, said)
        if self.stage is not None:
            return "reading the modem (%s): nothing was sent that changes it" % self.stage
        return "in a request to the server: nothing under way on the modem"


# ---------------------------------------------------------------- the agent
class Agent:
    def __init__(self, cfg, out=None, json_lines=False):
        self.cfg = cfg
        self.out = out or _print
        self.json = json_lines
        self.stop = threading.Event()
        self.workers = {}  # port -> Worker
        self._ids = {}  # controller id -> port
        self._lock = threading.Lock()
        self._out_failed = False
        self._status_failed = False

    # ---- modems
    def claim(self, worker, cid):
        with self._lock:
            port = self._ids.get(cid)
            if port is not None and port != worker.port:
                return port
            self._ids[cid] = worker.port
            return None

    def release(self, worker):
        with self._lock:
            if worker.cid is not None and self._ids.get(worker.cid) == worker.port:
                del self._ids[worker.cid]
        worker.cid = None

    def ports(self):
        found = []
        for p in self.cfg.ports:
            if any(ch in p for ch in "*?["):
                found += sorted(glob.glob(p))
            else:
                found.append(p)
        return found

    def scan(self):
        for p in self.ports():
            if p not in self.workers:
                w = Worker(self, p)
                with self._lock:
                    self.workers[p] = w
                self.emit(w, "port", "serving %s" % p)
                w.start()

    # ---- the operator's side
    def emit(self, worker, event, text):
        """One line per modem and event; a failing output or status file is reported
        once and the modems go on."""
        modem = worker.row["id"] if worker is not None else None
        port = worker.port if worker is not None else None
        text = redact(text)
        if self.json:
            line = json.dumps({"modem": modem, "port": port, "event": event, "text": text})
        else:
            line = "qfota agent: %s: %s: %s" % (modem or port or "agent", event, text)
        with self._lock:
            if not self._out_failed:
                try:
                    self.out(line)
                except Exception as e:
                    self._out_failed = True
                    _say_once(
                        "qfota agent: output stopped (%s): the modems go on; `qfota agent "
                        "status` shows them" % (e.__class__.__name__,)
                    )
            self._write_status()

    def _write_status(self):
        rows = [dict(w.row) for _p, w in sorted(self.workers.items())]
        doc = {"pid": os.getpid(), "time": time.time(), "modems": rows}
        path = os.path.join(self.cfg.state_dir, STATUS)
        try:
            tmp = path + ".tmp"
            with open(tmp, "w") as f:
                json.dump(doc, f)
            os.replace(tmp, path)
        except OSError as e:
            if not self._status_failed:
                self._status_failed = True
                try:
                    self.out("qfota agent: status file %s: %s" % (path, e.strerror or e))
                except Exception:
                    pass

    # ---- the loop
    def run(self):
        """Serve until ``stop`` is set; returns the workers still busy."""
        os.makedirs(self.cfg.state_dir, exist_ok=True)
        self.scan()
        globbed = any(any(ch in p for ch in "*?[") for p in self.cfg.ports)
        while not self.stop.wait(self.cfg.rescan_s if globbed else 3600):
            self.scan()
        return self.finish()

    def finish(self):
        end = time.monotonic() + STOP_GRACE_S
        for w in self.workers.values():
            w.join(max(0.0, end - time.monotonic()))
        busy = [w for w in self.workers.values() if w.is_alive()]
        for w in busy:
            self.emit(w, "stopped", w.left())
            lock = w.lock
            if lock is not None:
                # What the tty still holds for the modem is dropped: the transfer stops
                # here, and the modem's quiet window starts now, not when a backlog ends.
                try:
                    termios.tcflush(lock.fd, termios.TCOFLUSH)
                except (OSError, termios.error):
                    pass
                _unexclusive(lock)  # the next agent or qfota recover may open the port
        self.emit(None, "stopped", "%d modem(s) left busy" % len(busy))
        return busy


def _write(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _say_once(text):
    try:
        print(text, file=sys.stderr, flush=True)
    except Exception:
        pass


def _print(line):
    print(line, flush=True)


# ---------------------------------------------------------------- the command
def _refuse(args, why):
    line = "qfota agent: config %s: %s" % (args.config, why)
    if args.json:
        line = json.dumps({"event": "refused", "text": line})
    print(line, file=sys.stdout if args.json else sys.stderr)
    return 2


def run(args):
    try:
        cfg = load_config(args.config)
    except Refused as e:
        return _refuse(args, str(e))
    if args.action == "status" or args.status:
        return status(cfg, args.json)
    agent = Agent(cfg, json_lines=args.json)
    got = []

    def on_signal(signum, frame):
        got.append(signum)
        agent.stop.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        busy = agent.run()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    code = 128 + got[0] if got else 0
    if busy or agent._out_failed:
        # Threads inside a run on a modem cannot be interrupted: leave as qfota update
        # does (the port closes with the process; the modem ends what it started). A
        # broken stdout is not flushed again at exit (it was said once).
        for f in (sys.stdout, sys.stderr):
            try:
                f.flush()
            except Exception:
                pass
        os._exit(code)
    return code


def status(cfg, as_json=False):
    path = os.path.join(cfg.state_dir, STATUS)
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        print("qfota agent: no status in %s (%s)" % (path, getattr(e, "strerror", None) or e))
        return 1
    if as_json:
        print(json.dumps(doc))
        return 0
    age = time.time() - doc.get("time", 0)
    pid = doc.get("pid")
    try:
        os.kill(int(pid), 0)
        alive = "running"
    except (OSError, TypeError, ValueError) as e:
        alive = "running (as another user)" if isinstance(e, PermissionError) else "not running"
    print("agent pid %s (%s), status written %.0f s ago" % (pid, alive, age))
    for r in doc.get("modems", ()):
        print(
            "%s  %s  rev %s  action %s  stage %s  last result: %s  (%s: %s)"
            % (
                r.get("port"),
                r.get("id") or "-",
                r.get("revision") or "-",
                r.get("action") or "-",
                r.get("stage") or "-",
                r.get("result") or "-",
                r.get("event"),
                r.get("text"),
            )
        )
    return 0


def add_parser(sub):
    p = sub.add_parser(
        "agent",
        help="keep every modem on this host's ports up to date from a DDI server (hawkBit, "
        "gooseBit)",
        description="One DDI controller per modem, named by its IMEI (AT+CGSN): polls, "
        "downloads with Range resume and hash check, updates over the AT port, reports. "
        "'status' prints what the running agent last wrote. See the module's text for the "
        "config's keys.",
    )
    p.add_argument("action", nargs="?", choices=("run", "status"), default="run")
    p.add_argument("--config", required=True, metavar="FILE", help="the agent's JSON config")
    p.add_argument("--status", action="store_true", help="same as the 'status' action")
    p.add_argument("--json", action="store_true", help="one JSON object per modem and event")
    p.set_defaults(func=run)
