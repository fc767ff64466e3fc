"""The application in server mode (``qfota.serve``) on the MicroPython unix port: the app
reaches gooseBit (a real DDI server on 127.0.0.1) through the simulated modem's HTTP AT
commands, is offered an SWU-wrapped package, downloads it through the modem, updates the
modem in FILE mode, and gooseBit shows how it ended."""

import json
import os

import pytest
from app_rig import APP_TIMEOUTS, SOURCE, TARGET, AppRig

from qfota_tools.commands.swu import build

pytestmark = pytest.mark.timeout(240)

TOKEN = "srv-" + "5a4b3c2d1e0f9a8b"


IMAGE = 100_000  # the rig's image, the same bytes in every test (one package on the server):
# four 32 KB ranges, so a reset can cut the download
FEED = "field"


@pytest.fixture(scope="module")
def rollout(goosebit, tmp_path_factory):
    """The rig's image wrapped as an SWU, uploaded as a user does, rolled out on FEED."""
    tmp = tmp_path_factory.mktemp("pkg")
    with AppRig(tmp, image_size=IMAGE) as rig:
        swu = tmp / "pkg.swu"
        build(rig.image, "EC200T", SOURCE, TARGET, str(swu))
    status, doc = goosebit.api.upload(swu.read_bytes(), "pkg.swu")
    assert status == 200, doc
    goosebit.api.rollout("A07 to A08", FEED, doc["id"])
    return goosebit


def _serve(gb, rig, tmp_path, dev, polls=4, kill_when=None, feed=FEED, **extra):
    """Register ``dev`` on ``feed`` and run the app in server mode for ``polls`` steps
    (None when ``kill_when(model)`` killed it first, as a reset would)."""
    gb.api.put_devices([dev], auth_token=TOKEN, feed=feed)
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    for path in (rig.image, rig.image + ".json"):  # server mode: nothing staged
        if os.path.exists(path):
            os.remove(path)
    cfg = {
        "server": gb.base,
        "controller": dev,
        "token_file": str(token),
        "poll_min_s": 1,
        "polls": polls,
        "timeouts": APP_TIMEOUTS,
    }
    cfg.update(extra)
    rig.config(cfg)
    return rig.run(timeout=180, kill_when=kill_when)


def test_server_mode_updates_the_modem_and_gooseBit_shows_it(rollout, tmp_path):
    gb = rollout
    with AppRig(tmp_path, image_size=IMAGE) as rig:
        proc = _serve(gb, rig, tmp_path, "srv-ok")
        out = proc.stdout_text
        http = rig.sim.inspect(lambda m: [dict(e) for e in m.http_log])
        why = (out, http, gb.api.devices())
        assert proc.returncode == 0, why
        assert rig.model.revision == TARGET, why
        assert rig.model.md5_ok, why  # the modem got the image inside, not the SWU
    dev = gb.api.devices()["srv-ok"]
    assert dev["last_state"] == "Finished", dev
    assert dev["sw_version"] == TARGET, dev
    assert TOKEN not in out and TOKEN not in repr(http)
    assert any(e["method"] == "GET" and e["status"] == 206 for e in http), http


def test_server_mode_reports_the_modems_failure(rollout, tmp_path):
    gb = rollout
    with AppRig(tmp_path, image_size=IMAGE, faults=("end-506",)) as rig:
        proc = _serve(gb, rig, tmp_path, "srv-506")
        out = proc.stdout_text
        assert proc.returncode == 0, out
        assert rig.model.revision == SOURCE, out
    dev = gb.api.devices()["srv-506"]
    assert dev["last_state"] == "Error", dev
    assert "END: 506: FOTA firmware MD5 check error" in out, out
    assert "END: 506: FOTA firmware MD5 check error" in gb.api.log("srv-506")["log"]


def _ranges(http):
    return [e for e in http if e["method"] == "GET" and e["status"] == 206]


@pytest.mark.parametrize("where", ["mid-download", "mid-upgrade"])
def test_a_reset_resumes_and_posts_one_result(rollout, tmp_path, where):
    """The MCU reset (the interpreter killed, no cleanup) in the middle of the download or
    of the modem's upgrade: the next start resumes the download from what is on storage,
    or follows the modem to its end, and the action's result is posted once."""
    gb = rollout
    dev = "srv-reset-" + where.split("-")[1]
    if where == "mid-download":

        def cut(m):
            # the second range asked for: the first one is on the board's storage
            return len(_ranges(m.http_log)) == 2

    else:

        def cut(m):
            return "START" in m.history and m.updates_completed == 0

    with AppRig(tmp_path, image_size=IMAGE) as rig:
        assert _serve(gb, rig, tmp_path, dev, kill_when=cut) is None, rig.outputs
        before = rig.sim.inspect(lambda m: len(m.http_log))
        proc = rig.run(timeout=180)
        out = "".join(rig.outputs)
        http = rig.sim.inspect(lambda m: [dict(e) for e in m.http_log])
        assert proc is not None and proc.returncode == 0, out
        assert rig.model.revision == TARGET and rig.model.updates_completed == 1, out
    assert out.count(": result: action") == 1, out
    closed = [e for e in http if e["method"] == "POST" and "/feedback" in e["path"]]
    dev_seen = gb.api.devices()[dev]
    assert dev_seen["last_state"] == "Finished", dev_seen
    if where == "mid-download":
        again = sum(e["down"] for e in _ranges(http[before:]))
        # resumed after the 32 KB the board had: the rest of the SWU (~101 KB), not all of it
        assert 0 < again < IMAGE - 32768 + 4096, (again, [e["down"] for e in _ranges(http)])
    else:
        assert "following the modem after a reset" in out, out
    assert closed, http


def test_a_delta_chain_one_step_at_a_time(goosebit, tmp_path):
    """A modem on A06 with A06->A07 and A07->A08 on its feed: it gets A06->A07 (not
    A07->A08), reports A07, and only then is offered and gets the next."""
    import hashlib

    gb = goosebit
    # revisions of its own: the module's rollout has an A07 -> A08 package already
    a06, a07, a08 = (SOURCE.replace("A07", r) for r in ("A04", "A05", "A06"))
    pkgs = {}
    for src, dst, seed in ((a06, a07, 6), (a07, a08, 7)):
        data = bytes((i * 37 + seed) & 0xFF for i in range(20_000))
        name = "%s_%s" % (src[13:16], dst[13:16])
        img = tmp_path / (name + ".bin")
        img.write_bytes(data)
        swu = tmp_path / (name + ".swu")
        build(str(img), "EC200T", src, dst, str(swu))
        status, doc = gb.api.upload(swu.read_bytes(), name + ".swu")
        assert status == 200, doc
        gb.api.rollout("chain " + name, "chain", doc["id"])
        pkgs[dst] = (name + ".swu", hashlib.md5(data).hexdigest())
    dev = "srv-chain"
    chain = {a06: (a07, pkgs[a07][1]), a07: (a08, pkgs[a08][1])}
    with AppRig(tmp_path / "app", image_size=1000, revision=a06, upgrades=chain) as rig:
        proc = _serve(gb, rig, tmp_path, dev, polls=6, feed="chain")
        out = proc.stdout_text
        assert proc.returncode == 0 and rig.model.revision == a08, out
        assert rig.model.updates_completed == 2, out
    offered = [line.split(": ")[-1] for line in out.splitlines() if ": deployment: " in line]
    # first the delta from the revision it ran, then (after its configData said A05) the next
    assert [o.split(" (")[0] for o in offered] == [pkgs[a07][0], pkgs[a08][0]], out
    assert gb.api.devices()[dev]["hardware"]["revision"] == a08


# Runs the app as firmware/main.py does, with a Reporter that notes, at every engine event
# (the revision reads and the FILE-mode update: the only calls of ``app.rep.event`` in
# server mode) and at every line of the poll phase (``qfota.fleet`` loaded) and of the
# download phase (``qfota.fleetdl`` loaded, ``qfota.fleet`` not), which modules that
# phase must not hold are loaded.
_PHASES = """
import sys
from qfota import app, report
ENGINE = ("qfota.session", "qfota.driver", "qfota.recovery", "qfota.answers", "qfota.cut",
          "qfota.steps", "qfota.checks", "qfota.urls", "qfota.info", "qfota.fleetupd")
HTTP = ("qfota.httpdrv", "qfota.httpat", "qfota.httpcfg", "qfota.httpreq", "qfota.httptail",
        "qfota.servecfg")  # fmt: skip
OUT = {  # each phase and the modules it must not hold
    "update": ("qfota.fleet", "qfota.ddi", "qfota.fleetdl", "qfota.swu") + HTTP,
    # httpreq: only inside a request; servecfg: the settings' checks, inside ddi.Client()
    "poll": ENGINE + ("qfota.fleetdl", "qfota.swu", "qfota.httpreq", "qfota.httpcfg",
                      "qfota.servecfg"),  # fmt: skip
    "download": ENGINE + ("qfota.fleet", "qfota.ddi", "qfota.httpcfg", "qfota.servecfg"),
}
held = {k: {} for k in OUT}
n = {k: 0 for k in OUT}
def note(phase):
    n[phase] += 1
    for m in OUT[phase]:
        if m in sys.modules:
            held[phase][m] = 1
class R(report.Reporter):
    def event(self, ev, a, b):
        note("update")
        report.Reporter.event(self, ev, a, b)
    def line(self, text):
        if "qfota.fleet" in sys.modules:
            note("poll")
        elif "qfota.fleetdl" in sys.modules:
            note("download")
        report.Reporter.line(self, text)
app.Reporter = R
status = app.main()
for k in OUT:
    print("PHASE", k, n[k], ",".join(sorted(held[k])) or "none")
sys.exit(status)
"""


def test_the_phases_run_with_the_others_out_of_the_heap(rollout, tmp_path):
    """Server mode's three phases never share the heap: while the engine runs (the
    revision read and the modem's update) no module of the DDI client, the download or
    the modem's HTTP is loaded; while polling, none of the engine's, the update phase's
    or the download's; while downloading, none of the engine's or the DDI client's (on
    the real MicroPython, where ``compat.release`` drops them)."""
    import subprocess

    from conftest import ROOT, micropython_path

    gb = rollout
    script = tmp_path / "phases.py"
    script.write_text(_PHASES)
    with AppRig(tmp_path, image_size=IMAGE) as rig:
        gb.api.put_devices(["srv-phases"], auth_token=TOKEN, feed=FEED)
        (tmp_path / "token").write_text(TOKEN + "\n")
        for path in (rig.image, rig.image + ".json"):
            os.remove(path)
        rig.config({"server": gb.base, "controller": "srv-phases", "poll_min_s": 1, "polls": 4,
                    "token_file": str(tmp_path / "token"), "timeouts": APP_TIMEOUTS})  # fmt: skip
        proc = subprocess.run(
            [micropython_path(), str(script)],
            env=rig._env(),
            cwd=str(ROOT),
            capture_output=True,
            text=True,
            timeout=180,
        )
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, out
        assert rig.model.revision == TARGET, out
    phases = {}
    for line in out.splitlines():
        if line.startswith("PHASE "):
            _, name, count, held = line.split()
            phases[name] = (int(count), held)
    # the update's stages and progress; the result posted and taken; the offer, the
    # download's progress and end, the check
    least = {"update": 20, "poll": 2, "download": 5}
    for name, at_least in least.items():
        count, held = phases[name]
        assert count >= at_least, (name, out)
        assert held == "none", (name, held, out)


def test_an_update_due_at_the_last_step_still_runs(rollout, tmp_path):
    """``polls`` 1: the one step polls, downloads and checks; the modem's update (the
    other phase) runs before the app returns, as it did inside that step; the result
    waits in the journal for the next start."""
    with AppRig(tmp_path, image_size=IMAGE) as rig:
        proc = _serve(rollout, rig, tmp_path, "srv-last", polls=1)
        out = proc.stdout_text
        assert proc.returncode == 0, out
        assert rig.model.revision == TARGET and rig.model.updates_completed == 1, out
    with open(os.path.join(rig.storage, "fleet", "action.json")) as f:
        assert json.load(f)["state"] == "report", out


@pytest.mark.parametrize(
    "bad, named",
    [
        ({"apn": 'inter"net'}, "double quote"),
        ({"tenant": "a b"}, "tenant"),
        ({"cid": 99}, "cid"),
        ({"poll_min_s": "10"}, "poll_min_s"),
        ({"polls": 0}, "polls"),
        ({"download_auth": "false"}, "download_auth"),
    ],  # fmt: skip
)
def test_bad_settings_refused_before_anything_reaches_the_modem(tmp_path, bad, named):
    """A setting the poll phase takes, refused up front: exit 2, one line naming it, and
    the modem sent nothing (not even the revision read of the update phase)."""
    with AppRig(tmp_path, image_size=IMAGE) as rig:
        for path in (rig.image, rig.image + ".json"):
            os.remove(path)
        cfg = {"server": "http://127.0.0.1:9", "controller": "srv-bad", "polls": 1,
               "token_file": str(tmp_path / "none"), "timeouts": APP_TIMEOUTS}  # fmt: skip
        cfg.update(bad)
        rig.config(cfg)
        proc = rig.run(timeout=60)
        out = proc.stdout_text
        assert proc.returncode == 2, out
        refused = [ln for ln in out.splitlines() if ln.startswith("qfota: refused: ")]
        assert len(refused) == 1 and "PARAMS" in refused[0] and named in refused[0], out
        assert rig.commands() == [], rig.commands()
