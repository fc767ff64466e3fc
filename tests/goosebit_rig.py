"""gooseBit (PyPI ``goosebit``, a hawkBit DDI server) on 127.0.0.1 for the fleet tests.

``make goosebit`` installs it into ``.venv-goosebit`` from ``requirements-goosebit.txt``
(pinned; it needs Python >= 3.11). The rig keeps everything in a temporary folder:

    with GooseBit(tmp_path, auth="strict") as gb:       # migrated, started, set up
        gb.api.upload(swu_bytes, "pkg.swu")             # PUT /api/v1/software -> id
        gb.api.devices()                                # GET /api/v1/devices
        gb.ddi_url("dev1")                              # http://127.0.0.1:P/DEFAULT/controller/v1/dev1

Start: ``aerich upgrade`` (the wheel has no aerich config: a ``pyproject.toml`` in the folder
names its migrations), then ``uvicorn goosebit:app --host 127.0.0.1`` on a free port (never
``python -m goosebit``: it listens on every interface), then ``POST /setup`` at once (until setup
is done anyone may make themselves admin). Stop: the process group, SIGTERM then SIGKILL.
``auth``: None (device auth off: any id polling registers) or ``setup|strict|lax``.
"""

import hashlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from qfota_tools.simulators.ec200.model import NEW_REVISION, REVISION

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("QFOTA_GOOSEBIT_VENV") or ROOT / ".venv-goosebit")
TENANT = "DEFAULT"


def available():
    """None when the gooseBit venv is installed, else what to run."""
    if not (VENV / ".installed").exists():
        return "gooseBit is not installed: make goosebit (%s)" % VENV
    return None


def _site_packages():
    libs = sorted((VENV / "lib").glob("python3.*/site-packages"))
    if not libs:
        raise RuntimeError("no site-packages in %s" % VENV)
    return libs[-1]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class GooseBitError(RuntimeError):
    pass


class GooseBit:
    def __init__(self, workdir, auth=None, poll_time="00:00:01", start_timeout=90.0):
        self.dir = Path(workdir)
        self.auth = auth
        self.poll_time = poll_time
        self.start_timeout = start_timeout
        self.port = None
        self.base = None
        self.api = None
        self.proc = None
        self.start_s = None  # measured: from launching uvicorn to answering HTTP
        self.migrate_s = None
        self.log_path = self.dir / "goosebit.log"

    # ---- lifecycle ----------------------------------------------------------------------
    def env(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GOOSEBIT_", "PYTHON"))}
        env.update(
            GOOSEBIT_DB_URI="sqlite:///%s" % (self.dir / "db.sqlite3"),
            GOOSEBIT_ARTIFACTS_DIR=str(self.dir / "artifacts"),
            GOOSEBIT_POLL_TIME=self.poll_time,
            GOOSEBIT_SECRET_KEY=secrets.token_hex(32),
            GOOSEBIT_DEVICE_AUTH__ENABLE="true" if self.auth else "false",
            GOOSEBIT_TENANT=TENANT,
        )
        if self.auth:
            env["GOOSEBIT_DEVICE_AUTH__MODE"] = self.auth
        return env

    def start(self):
        why = available()
        if why:
            raise GooseBitError(why)
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "artifacts").mkdir(exist_ok=True)
        site = _site_packages()
        (self.dir / "pyproject.toml").write_text(
            "[tool.aerich]\n"
            'tortoise_orm = "goosebit.db.config.TORTOISE_CONF"\n'
            'location = "%s"\n' % (site / "goosebit" / "db" / "migrations")
        )
        env = self.env()
        t0 = time.monotonic()
        mig = subprocess.run(
            [str(VENV / "bin" / "aerich"), "upgrade"],
            cwd=str(self.dir),
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        self.migrate_s = time.monotonic() - t0
        if mig.returncode != 0:
            raise GooseBitError("aerich upgrade failed: %s" % (mig.stderr or mig.stdout)[-2000:])
        self.port = _free_port()
        self.base = "http://127.0.0.1:%d" % self.port
        cmd = [str(VENV / "bin" / "uvicorn"), "goosebit:app", "--host", "127.0.0.1"]
        cmd += ["--port", str(self.port), "--no-access-log"]
        log = open(self.log_path, "wb")
        t0 = time.monotonic()
        try:
            self.proc = subprocess.Popen(
                cmd,
                cwd=str(self.dir),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() ends all of it
            )
        finally:
            log.close()
        deadline = t0 + self.start_timeout
        while True:
            if self.proc.poll() is not None:
                raise GooseBitError("gooseBit exited at start: %s" % self.log_tail())
            try:
                with urllib.request.urlopen(self.base + "/login", timeout=2) as r:
                    r.read()
                break
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    self.stop()
                    msg = "gooseBit did not answer in %.0f s" % self.start_timeout
                    raise GooseBitError(msg) from None
                time.sleep(0.1)
        self.start_s = time.monotonic() - t0
        self.api = Api(self.base)
        try:
            self.api.setup("admin@example.com", secrets.token_hex(12))
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout=10.0):
        p = self.proc
        if p is None:
            return
        self.proc = None
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout)
            except ProcessLookupError:
                pass
        # nothing of its group may outlive it (uvicorn has no workers here, but be sure)
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def add_hardware(self, model, revision):
        """The (model, revision) pair in gooseBit's table, written once before devices
        report it. gooseBit 0.2.x makes the pair on first sight with a get-or-create that
        has no unique key: devices reporting a new revision at once (a rollout's twelve
        after their updates) each make a row, and from then on every configData naming
        the pair answers 500 (MultipleObjectsReturned). It failed the agent's tests
        (README, gooseBit's pitfalls); made once here, each request finds its one row."""
        import sqlite3

        with sqlite3.connect(self.dir / "db.sqlite3", timeout=30) as db:
            if not db.execute(
                "SELECT 1 FROM hardware WHERE model=? AND revision=?", (model, revision)
            ).fetchone():
                db.execute(
                    "INSERT INTO hardware (model, revision) VALUES (?, ?)", (model, revision)
                )

    def log_tail(self, n=3000):
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    # ---- DDI --------------------------------------------------------------------------------
    def ddi_url(self, controller_id, tail=""):
        return "%s/%s/controller/v1/%s%s" % (self.base, TENANT, controller_id, tail)


class Api:
    """gooseBit's management API (``/api/v1``) with the bearer token from ``POST /setup``."""

    def __init__(self, base):
        self.base = base
        self._token = None

    def _call(self, method, path, body=None, ctype="application/json", timeout=30):
        data = None
        headers = {}
        if body is not None:
            data = json.dumps(body).encode() if ctype == "application/json" else body
            headers["Content-Type"] = ctype
        if self._token:
            headers["Authorization"] = "Bearer " + self._token
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                raw = r.read()
                status = r.status
        except urllib.error.HTTPError as e:
            raw = e.read()
            status = e.code
        try:
            doc = json.loads(raw) if raw else None
        except ValueError:
            doc = raw.decode(errors="replace")
        return status, doc

    def call(self, method, path, body=None, ctype="application/json", ok=(200,)):
        status, doc = self._call(method, path, body, ctype)
        if status not in ok:
            raise GooseBitError("%s %s: HTTP %d %s" % (method, path, status, doc))
        return doc

    def setup(self, user, password):
        form = "username=%s&password=%s" % (user, password)
        doc = self.call("POST", "/setup", form.encode(), "application/x-www-form-urlencoded")
        self._token = doc["access_token"]

    def upload(self, data, filename):
        """``PUT /api/v1/software`` multipart ``file=``; returns (status, answer)."""
        boundary = uuid.uuid4().hex
        body = (
            (
                '--%s\r\nContent-Disposition: form-data; name="file"; filename="%s"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n" % (boundary, filename)
            ).encode()
            + data
            + ("\r\n--%s--\r\n" % boundary).encode()
        )
        return self._call(
            "PUT", "/api/v1/software", body, "multipart/form-data; boundary=" + boundary
        )

    def software(self):
        return self.call("GET", "/api/v1/software")["software"]

    def rollout(self, name, feed, software_id):
        return self.call(
            "PUT", "/api/v1/rollouts", {"name": name, "feed": feed, "software_id": software_id}
        )

    def pause_rollouts(self, ids, paused=True):
        return self.call("PATCH", "/api/v1/rollouts", {"ids": list(ids), "paused": paused})

    def rollouts(self):
        return self.call("GET", "/api/v1/rollouts")["rollouts"]

    def put_devices(self, ids, **fields):
        """``PUT /api/v1/devices``: creates them if new (feed, software, auth_token...)."""
        return self.call("PUT", "/api/v1/devices", dict(fields, devices=list(ids)))

    def patch_devices(self, ids, **fields):
        return self.call("PATCH", "/api/v1/devices", dict(fields, devices=list(ids)))

    def log(self, dev):
        """``GET /api/v1/devices/{id}/log``: the details of the device's last feedback."""
        return self.call("GET", "/api/v1/devices/%s/log" % dev)

    def devices(self):
        """``GET /api/v1/devices`` as {id: device} (``GET .../devices/{id}`` answers 500
        once software is assigned: FLEET_NOTES)."""
        return {d["id"]: d for d in self.call("GET", "/api/v1/devices")["devices"]}


def publish(gb, folder, size, rollouts, src=REVISION, dst=NEW_REVISION):
    """A made-up ``src`` -> ``dst`` image of ``size`` bytes in ``folder``, wrapped by
    ``qfota swu``, uploaded through gooseBit's API as a user does and rolled out as each
    ``(name, feed)`` of ``rollouts``; the image's bytes."""
    from qfota_tools.commands.swu import build

    tag = "%s_%s" % (src[13:16], dst[13:16])
    image = Path(folder) / ("EC200T_%s.bin" % tag)
    image.write_bytes(os.urandom(size))
    out = Path(folder) / ("%s.swu" % tag)
    build(str(image), "EC200T", src, dst, str(out))
    status, doc = gb.api.upload(out.read_bytes(), out.name)
    assert status == 200, doc
    gb.add_hardware(dst[:6], dst)  # the upload made (model, src); the devices report dst
    for name, feed in rollouts:
        gb.api.rollout(name, feed, doc["id"])
    return image.read_bytes()


def device(gb, dev, feed):
    """``dev`` registered on ``feed`` with a token of its own (device auth); the token."""
    token = "tok-" + dev + "-0123456789"
    gb.api.put_devices([dev], auth_token=token, feed=feed)
    return token


def fleet_modem(image, seed, **kw):
    """The simulated EC200 a fleet test updates (A07, expecting ``image``: its md5)."""
    from qfota_tools.simulators.ec200 import model

    return model.Modem(expect_md5=hashlib.md5(image).hexdigest(), baud=921_600,
                       timing=model.FAST, seed=seed, **kw)  # fmt: skip


def fleet_of(gb, transport, updater, dev, token, folder, said, **kw):
    """``qfota.fleet.Fleet`` of ``dev`` against ``gb``: its journal in ``folder``, its
    events appended to ``said``, polling at most once a second (gooseBit asks for every
    second)."""
    from qfota import fleet

    return fleet.Fleet(transport, updater, gb.base, TENANT, dev, token=token,
                       folder=str(folder), room=1 << 22, sleep_min=1000,
                       on_event=lambda n, t: said.append((n, t)), **kw)  # fmt: skip


def until_reported(f, bound):
    """Step ``f`` (sleeping as long as it asks, a second at most) until it has reported
    its action or ``bound`` s pass; then once more (the configData after an update)."""
    from qfota import fleet

    end = time.monotonic() + bound
    while time.monotonic() < end and f.journal.data.get("state") != fleet.REPORTED:
        time.sleep(min(f.step(), 1000) / 1000)
    f.step()


# ---- pytest fixtures (conftest.py loads this module as a plugin) ---------------------------
@pytest.fixture(scope="module")
def goosebit(tmp_path_factory):
    """gooseBit with device auth ``strict``, one per test module (about 10-20 s to start
    on a loaded 2-core machine); a missing install fails the test, as `make test` has it."""
    why = available()
    if why:
        pytest.fail(why)
    gb = GooseBit(tmp_path_factory.mktemp("goosebit"), auth="strict")
    try:
        gb.start()
        yield gb
    finally:
        gb.stop()


@pytest.fixture
def goosebit_factory(tmp_path_factory):
    """``make(auth=None|"setup"|"strict"|"lax", **kw)``: a started gooseBit of its own,
    stopped at teardown."""
    why = available()
    if why:
        pytest.fail(why)
    started = []

    def make(auth=None, **kw):
        gb = GooseBit(tmp_path_factory.mktemp("goosebit"), auth=auth, **kw)
        started.append(gb)
        return gb.start()

    try:
        yield make
    finally:
        for gb in started:
            gb.stop()


if __name__ == "__main__":  # a manual check: start, print the start time, stop
    import tempfile

    with (
        tempfile.TemporaryDirectory() as d,
        GooseBit(d, auth=sys.argv[1] if sys.argv[1:] else None) as gb,
    ):
        print("gooseBit on %s: migrate %.1f s, start %.1f s" % (gb.base, gb.migrate_s, gb.start_s))
        print(json.dumps(gb.api.devices()))
