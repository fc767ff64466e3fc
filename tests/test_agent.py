"""``qfota agent`` against gooseBit (a real DDI server on 127.0.0.1, device auth strict)
and simulated modems on ptys: the agent as a process of its own, as an operator runs it.

- four modems behind one agent update from one rollout; one fails (END 504) and gooseBit
  shows it failed with the stage, code and meaning; the others finish on A08;
- the agent killed (SIGKILL) while a modem upgrades, then started again: it follows the
  modem to its end and reports that action once.
"""

import json
import os
import signal
import subprocess
import sys

import pytest
from agent_rig import (
    A07,
    A08,
    AgentProc,
    Modems,
    cid,
    config,
    wait_devices,
    wait_reported_revision,
)

from qfota_tools.commands.swu import build
from qfota_tools.simulators.ec200 import model as sim_model

pytestmark = pytest.mark.timeout(400)

FEED = "agents"


@pytest.fixture(scope="module")
def rollout(goosebit, tmp_path_factory):
    """An A07 -> A08 package on FEED; returns (gooseBit, the image)."""
    d = tmp_path_factory.mktemp("swu")
    image = d / "EC200T_A07_A08.bin"
    image.write_bytes(os.urandom(150_001))
    out = d / "A07_A08.swu"
    build(str(image), "EC200T", A07, A08, str(out))
    status, doc = goosebit.api.upload(out.read_bytes(), "A07_A08.swu")
    assert status == 200, doc
    goosebit.api.rollout("A07 to A08", FEED, doc["id"])
    return goosebit, image.read_bytes()


def _token(i):
    return "agent-tok-%02d-0123456789abcdef" % i


def _results(ag, modem):
    return [d["text"] for d in ag.events(modem, "result")]


def test_four_modems_one_rollout_one_fails_with_end_504(rollout, tmp_path):
    gb, image = rollout
    seeds = (11, 12, 13, 14)
    ids = [cid(s) for s in seeds]
    tokens = {c: _token(i) for i, c in enumerate(ids)}
    for c, t in tokens.items():
        gb.api.put_devices([c], auth_token=t, feed=FEED)
    specs = [dict(seed=s) for s in seeds]
    specs[2]["faults"] = ("end-504",)
    failing = ids[2]
    with Modems(specs, image) as mods:
        cfg = config(gb, mods.paths, tmp_path / "state", tokens=tokens)
        cfg["download_dir"] = str(tmp_path / "downloads")
        with AgentProc(tmp_path, cfg) as ag:
            wait_devices(gb, ids, ("Finished", "Error"), 240)
            ag.wait(lambda lines: all(ag.events(c, "reported") for c in ids), 60)
            devs = wait_reported_revision(gb, {c: (A07 if c == failing else A08) for c in ids}, 60)
            st = subprocess.run(
                [sys.executable, "-m", "qfota_tools.cli", "agent", "status", "--json"]
                + ["--config", str(ag.cfg_path)],
                capture_output=True,
                text=True,
                timeout=60,
            )
            rc = ag.stop(signal.SIGTERM)
        out = "".join(ag.raw)
        for c, m in zip(ids, mods.models):
            if c == failing:
                assert m.revision == A07, c
                assert devs[c]["last_state"] == "Error", devs[c]
                assert "END: 504: FOTA upgrade failed" in gb.api.log(c)["log"]
            else:
                assert m.revision == A08 and m.updates_completed == 1, c
                assert devs[c]["last_state"] == "Finished", devs[c]
                assert devs[c]["sw_version"] == A08, devs[c]
            results = _results(ag, c)
            assert len(results) == 1, (c, results)
            assert ("success" if c != failing else "failure: END: 504") in results[0], results
            # the download went to download_dir/<id>/, the journal to state_dir/<id>/
            assert json.loads((tmp_path / "state" / c / "action.json").read_text())["state"] == (
                "reported"
            )
            assert (tmp_path / "downloads" / c).is_dir()
    assert rc == 143, ag.stderr()
    stopped = ag.events(None, "stopped")
    assert stopped and stopped[-1]["text"] == "0 modem(s) left busy", stopped
    for d in ag.lines:
        assert set(d) == {"modem", "port", "event", "text"}, d
    doc = json.loads(st.stdout)
    rows = {r["id"]: r for r in doc["modems"]}
    assert set(rows) == set(ids), doc
    for c, p in zip(ids, mods.paths):
        assert rows[c]["port"] == p
        assert rows[c]["revision"] == (A07 if c == failing else A08), rows[c]
        assert rows[c]["result"], rows[c]
    secrets = list(tokens.values())
    shown = out + ag.stderr() + st.stdout + (tmp_path / "state" / "status.json").read_text()
    assert not [t for t in secrets if t in shown]


@pytest.mark.parametrize(
    "sig, stage",
    [(signal.SIGKILL, "UPDATING"), (signal.SIGTERM, "STREAM")],
    ids=["SIGKILL-upgrading", "SIGTERM-in-transfer"],
)
def test_agent_stopped_mid_update_follows_the_modem_after_a_restart(rollout, tmp_path, sig, stage):
    """SIGKILL while the modem upgrades: it upgrades by itself; the next agent follows it
    to END and reports success without running the update again. SIGTERM inside the FILE
    transfer: the agent says what the modem is doing and exits 143; the modem ends the cut
    transfer itself; the next agent follows it and runs the update again (attempt 2)."""
    gb, image = rollout
    seed = 21 if sig == signal.SIGKILL else 22
    c = cid(seed)
    tok = _token(seed)
    gb.api.put_devices([c], auth_token=tok, feed=FEED)
    # Slower than FAST where the agent is stopped: several seconds to do it in.
    timing = dict(sim_model.FAST, update_step_ms=60)
    baud = 921_600 if stage == "UPDATING" else 115_200
    with Modems([dict(seed=seed, timing=timing, baud=baud)], image) as mods:
        cfg = config(gb, mods.paths, tmp_path / "state", tokens={c: tok}, baud=baud)
        with AgentProc(tmp_path, cfg, "first") as first:
            first.wait(
                lambda lines: any(d["event"] == "stage" and d["text"] == stage for d in lines),
                240,
            )
            rc = first.stop(sig)
        if sig == signal.SIGKILL:
            assert rc == -signal.SIGKILL
            mods.last_close(0)
        else:
            assert rc == 143, first.stderr()
            said = first.events(c, "stopped")
            assert len(said) == 1, first.raw
            assert "inside the FILE transfer" in said[0]["text"], said
            assert "the next agent start follows it" in said[0]["text"], said
        assert not first.events(c, "result"), first.raw
        journal = json.loads((tmp_path / "state" / c / "action.json").read_text())
        assert journal["state"] == "update", journal
        m = mods.models[0]
        with AgentProc(tmp_path, cfg, "second") as second:
            second.wait(lambda lines: second.events(c, "reported"), 180)
            devs = wait_reported_revision(gb, {c: A08}, 60)
            rc = second.stop(signal.SIGTERM)
        assert rc == 143
        assert m.revision == A08 and m.updates_completed == 1
        assert devs[c]["last_state"] == "Finished", devs[c]
        results = _results(second, c)
        assert len(results) == 1 and "success" in results[0], second.raw
        assert second.events(c, "resume"), second.raw
        attempts = [d["text"] for d in second.events(c, "update")]
        assert attempts == (
            [] if sig == signal.SIGKILL else ["action %s: attempt 2" % journal["id"]]
        )
        assert "revision EC200TCNDAR02A08M16" in gb.api.log(c)["log"]
