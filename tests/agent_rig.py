"""``qfota agent`` as the operator runs it (a process of its own, ``--json``) in front of
simulated modems on ptys (``PtySimulator``, FAST timing) and gooseBit on 127.0.0.1.

    with Modems([dict(seed=1), dict(seed=2, faults=("end-504",))]) as mods:
        with AgentProc(tmp_path, config) as ag:
            ag.wait(lambda lines: ..., 120)     # on the JSON lines read so far
            ag.stop(signal.SIGTERM)             # -> exit status
"""

import hashlib
import json
import signal
import subprocess
import sys
import threading
import time

from qfota_tools.simulators.ec200 import model as sim_model
from qfota_tools.simulators.ec200.pty_sim import PtySimulator

A07 = "EC200TCNDAR02A07M16_01.001.01.001"
A08 = "EC200TCNDAR02A08M16_01.001.01.001"
PREFIX = "ec200-"


def cid(seed):
    return PREFIX + sim_model.imei_of(seed)


class Modems:
    """Simulated modems on ptys, one per dict of ``Modem`` arguments (``image``: the
    bytes the modem must receive, checked by md5)."""

    def __init__(self, specs, image):
        self.specs = specs
        self.md5 = hashlib.md5(image).hexdigest()
        self.models = []
        self.sims = []

    def __enter__(self):
        try:
            for spec in self.specs:
                kw = dict(
                    revision=A07,
                    new_revision=A08,
                    expect_md5=self.md5,
                    baud=921_600,
                    timing=sim_model.FAST,
                )
                kw.update(spec)
                m = sim_model.Modem(**kw)
                sim = PtySimulator(m)
                sim.start()
                self.models.append(m)
                self.sims.append(sim)
        except BaseException:
            self.__exit__()
            raise
        return self

    @property
    def paths(self):
        return [s.path for s in self.sims]

    def __exit__(self, *exc):
        for s in self.sims:
            s.stop()


class AgentProc:
    """``python -m qfota_tools.cli agent --config FILE --json``; its stdout read by a thread
    into ``lines`` (JSON objects) and ``raw``."""

    def __init__(self, tmp_path, config, name="agent"):
        self.cfg_path = tmp_path / ("%s.json" % name)
        self.cfg_path.write_text(json.dumps(config))
        self.err_path = tmp_path / ("%s.err" % name)
        self.lines = []
        self.raw = []
        self.proc = None
        self._cond = threading.Condition()
        self._reader = None

    def __enter__(self):
        err = open(self.err_path, "wb")
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "qfota_tools.cli", "agent"]
                + ["--config", str(self.cfg_path), "--json"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
            )
        finally:
            err.close()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self):
        for line in self.proc.stdout:
            with self._cond:
                self.raw.append(line)
                try:
                    self.lines.append(json.loads(line))
                except ValueError:
                    self.lines.append({"event": "not-json", "text": line})
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait(self, cond, timeout):
        """Until ``cond(lines)`` is true; fails with the output so far after ``timeout``."""
        end = time.monotonic() + timeout
        with self._cond:
            while not cond(self.lines):
                left = end - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(
                        "agent: condition not met in %g s; rc %s; output:\n%s\nstderr:\n%s"
                        % (timeout, self.proc.poll(), "".join(self.raw)[-6000:], self.stderr())
                    )
                self._cond.wait(min(left, 1.0))

    def events(self, modem=None, event=None):
        with self._cond:
            return [
                d
                for d in self.lines
                if (modem is None or d.get("modem") == modem)
                and (event is None or d.get("event") == event)
            ]

    def stderr(self):
        try:
            return self.err_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, sig=signal.SIGTERM, timeout=60):
        """Send ``sig``; the exit status."""
        self.proc.send_signal(sig)
        rc = self.proc.wait(timeout)
        self._reader.join(10)
        return rc

    def __exit__(self, *exc):
        p = self.proc
        if p is not None and p.poll() is None:
            p.kill()
            p.wait(30)
        if self._reader is not None:
            self._reader.join(10)
        if p is not None and p.stdout:
            p.stdout.close()


def wait_devices(gb, ids, states, timeout):
    """Until every device of ``ids`` has a ``last_state`` in ``states``; the devices."""
    end = time.monotonic() + timeout
    while True:
        devs = gb.api.devices()
        if all(devs.get(i, {}).get("last_state") in states for i in ids):
            return devs
        if time.monotonic() > end:
            raise AssertionError(
                "gooseBit: not all in %s after %g s: %s"
                % (states, timeout, {i: devs.get(i, {}).get("last_state") for i in ids})
            )
        time.sleep(0.5)


def device_log(gb, dev):
    """The details of the device's last feedback, as gooseBit shows them."""
    return gb.api.call("GET", "/api/v1/devices/%s/log" % dev)["log"]


def wait_reported_revision(gb, want, timeout, ag=None):
    """Until gooseBit shows each device's revision as its configData after the update
    gave it (``{id: revision}``); the devices. On a timeout the message holds what agent
    ``ag`` said of each device that lags (its requests' failures among them)."""
    end = time.monotonic() + timeout
    while True:
        devs = gb.api.devices()
        late = [i for i, r in want.items() if devs.get(i, {}).get("sw_version") != r]
        if not late:
            return devs
        if time.monotonic() > end:
            said = {i: ag.events(i)[-8:] for i in late} if ag is not None else "-"
            raise AssertionError(
                "gooseBit: revisions not %s after %g s: %s; the agent said: %s"
                % (want, timeout, {i: devs.get(i, {}).get("sw_version") for i in want}, said)
            )
        time.sleep(0.5)


def config(gb, ports, state_dir, **extra):
    cfg = {
        "server": gb.base,
        "tenant": "DEFAULT",
        "ports": ports,
        "state_dir": str(state_dir),
        "baud": 921_600,
        "poll": {"min_s": 1, "max_s": 5},
        "timeouts": sim_model.FILE_WAITS,
        "http_timeout_s": 15,
    }
    cfg.update(extra)
    return cfg
