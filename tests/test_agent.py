"""``qfota agent`` against gooseBit (a real DDI server on 127.0.0.1, device auth strict)
and simulated modems on ptys: the agent as a process of its own, as an operator runs it.

- four modems behind one agent update from one rollout; one fails (END 504) and gooseBit
  shows it failed with the stage, code and meaning; the others finish on A08;
- the agent killed (SIGKILL) while a modem upgrades, then started again: it follows the
  modem to its end and reports that action once.
"""

import hashlib
import json
import signal
import subprocess
import sys
import time

import pytest
from agent_rig import (
    A07,
    A08,
    AgentProc,
    Modems,
    cid,
    config,
    device_log,
    wait_devices,
    wait_reported_revision,
)
from goosebit_rig import publish

from qfota_tools.simulators.ec200 import model as sim_model
from qfota_tools.simulators.ec200.pty_sim import PtySimulator

pytestmark = pytest.mark.timeout(400)

FEED = "agents"
STAGED = "staged"  # the staged rollout's feed: devices are moved into it wave by wave
HOLD = "hold"  # a feed without a rollout: nothing is offered


@pytest.fixture(scope="module")
def rollout(goosebit, tmp_path_factory):
    """An A07 -> A08 package on FEED; returns (gooseBit, the image)."""
    rollouts = [("A07 to A08", FEED), ("staged A07 to A08", STAGED)]
    image = publish(goosebit, tmp_path_factory.mktemp("swu"), 150_001, rollouts)
    return goosebit, image


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
            devs = wait_reported_revision(
                gb, {c: (A07 if c == failing else A08) for c in ids}, 60, ag
            )
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
                assert "END: 504: FOTA upgrade failed" in device_log(gb, c)
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
        # Recovery listens longer than the modem's quiet window that ends a cut transfer
        # (FAST: 2.5 s) plus what a loaded machine adds before that window starts (the pty
        # drained by the simulator late), as `qfota recover --timeout fileend=8` does in
        # test_cli_modem: with 4 s the restarted agent once probed into the transfer.
        # Listening ends at the modem's FILEEND, so the bound costs only when it is slow.
        cfg["timeouts"] = dict(sim_model.FILE_WAITS, fileend=8)
        with AgentProc(tmp_path, cfg, "first") as first:
            first.wait(
                lambda lines: any(d["event"] == "stage" and d["text"] == stage for d in lines),
                240,
            )
            rc = first.stop(sig)
        if sig == signal.SIGKILL:
            assert rc == -signal.SIGKILL
            # the exclusive flag the killed agent left on the pty: PortLock clears it (its
            # owner record names a dead process)
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
            devs = wait_reported_revision(gb, {c: A08}, 60, second)
            rc = second.stop(signal.SIGTERM)
        assert rc == 143
        assert m.revision == A08 and m.updates_completed == 1
        assert devs[c]["last_state"] == "Finished", devs[c]
        results = _results(second, c)
        assert len(results) == 1 and "success" in results[0], second.raw
        assert second.events(c, "resume"), second.raw
        # Nothing was sent into the cut transfer: the restarted agent listened first (an
        # AT there is package data, and the modem's probe goes unanswered: a failure).
        assert not second.events(None, "failed"), second.raw
        attempts = [d["text"] for d in second.events(c, "update")]
        assert attempts == (
            [] if sig == signal.SIGKILL else ["action %s: attempt 2" % journal["id"]]
        )
        assert "revision EC200TCNDAR02A08M16" in device_log(gb, c)


def test_a_modem_unplugged_mid_transfer_fails_alone_and_is_served_again(rollout, tmp_path):
    """Ports by a glob over by-id links: one modem's link and pty vanish in the middle of
    its FILE transfer. Its failure is stated (and reported to gooseBit); the other modem
    finishes; the worker retries its port with a backoff and serves the modem again, by
    the same id, when it is plugged back (a fresh simulator behind the same link)."""
    gb, image = rollout
    seeds = (31, 32)
    ids = [cid(s) for s in seeds]
    tokens = {c: _token(s) for c, s in zip(ids, seeds)}
    for c, t in tokens.items():
        gb.api.put_devices([c], auth_token=t, feed=FEED)
    byid = tmp_path / "by-id"
    byid.mkdir()
    links = [str(byid / ("usb-Quectel_EC200T_%d-if02-port0" % s)) for s in seeds]
    specs = [dict(seed=s, baud=115_200 if s == 31 else 921_600) for s in seeds]
    md5 = hashlib.md5(image).hexdigest()
    sims = []
    try:
        for spec, link in zip(specs, links):
            m = sim_model.Modem(
                revision=A07, new_revision=A08, expect_md5=md5, timing=sim_model.FAST, **spec
            )
            sims.append(PtySimulator(m, link=link))
            sims[-1].start()
        cfg = config(gb, str(byid / "*-if02*"), tmp_path / "state", tokens=tokens, rescan_s=1)
        with AgentProc(tmp_path, cfg) as ag:
            ag.wait(
                lambda lines: any(
                    d["modem"] == ids[0] and d["event"] == "stage" and d["text"] == "STREAM"
                    for d in lines
                ),
                240,
            )
            sims[0].stop()  # unplugged: the link goes, the pty's other end closes
            ag.wait(lambda lines: ag.events(ids[0], "result"), 120)
            ag.wait(lambda lines: ag.events(ids[1], "reported"), 240)
            ag.wait(
                lambda lines: [d for d in ag.events(None, "failed") if "PORT:" in d["text"]],
                60,
            )
            back = sim_model.Modem(revision=A07, timing=sim_model.FAST, **specs[0])
            sims[0] = PtySimulator(back, link=links[0])
            sims[0].start()
            ag.wait(lambda lines: len(ag.events(ids[0], "modem")) >= 2, 120)
            rc = ag.stop(signal.SIGTERM)
        assert rc == 143
        failure = ag.events(ids[0], "result")
        assert len(failure) == 1 and "failure" in failure[0]["text"], ag.raw
        assert "failure: STREAM: the port failed: [Errno 5] EIO" in failure[0]["text"], failure
        assert sims[1].model.revision == A08
        assert wait_devices(gb, ids[1:], ("Finished",), 60)[ids[1]]["last_state"] == "Finished"
        assert gb.api.devices()[ids[0]]["last_state"] == "Error"
        assert [d["port"] for d in ag.events(ids[0], "modem")] == [links[0], links[0]]
        assert ag.events(None, "retry"), ag.raw
    finally:
        for s in sims:
            s.stop()


def _staged_rollout(gb, rollout_id, waves, threshold, timeout):
    """What gooseBit has not: waves and an error threshold. Moves each wave into the
    rollout's feed, waits until each of its devices ended (Finished or Error), and pauses
    the rollout when the share of failures among the devices moved so far, counted from
    gooseBit's device states, passes ``threshold``. Returns (waves moved, paused)."""
    moved = []
    for n, wave in enumerate(waves, 1):
        gb.api.patch_devices(wave, feed=STAGED)
        moved += wave
        devs = wait_devices(gb, wave, ("Finished", "Error"), timeout)
        failed = sum(1 for d in moved if devs[d]["last_state"] == "Error")
        if failed / len(moved) > threshold:
            gb.api.pause_rollouts([rollout_id])
            return n, True
    return len(waves), False


def test_a_staged_rollout_of_twelve_modems_stops_at_its_error_threshold(rollout, tmp_path):
    """Three waves of four behind one agent; two of the second wave fail (END 504): 2 of 8
    is over the 20% threshold, so the rollout is paused before the third wave. After the
    stop: the first wave on A08, the second's failures failed as reported, the third still
    on A07 and offered nothing."""
    gb, image = rollout
    seeds = list(range(41, 53))
    ids = [cid(s) for s in seeds]
    waves = [ids[0:4], ids[4:8], ids[8:12]]
    bad = {ids[5], ids[6]}
    tokens = {c: _token(s) for c, s in zip(ids, seeds)}
    for c, t in tokens.items():
        gb.api.put_devices([c], auth_token=t, feed=HOLD)
    rid = [r["id"] for r in gb.api.rollouts() if r["feed"] == STAGED][0]
    specs = [dict(seed=s, faults=("end-504",) if c in bad else ()) for s, c in zip(seeds, ids)]
    with Modems(specs, image) as mods:
        cfg = config(gb, mods.paths, tmp_path / "state", tokens=tokens)
        with AgentProc(tmp_path, cfg) as ag:
            ag.wait(lambda lines: len([d for d in lines if d["event"] == "modem"]) == 12, 120)
            moved, paused = _staged_rollout(gb, rid, waves, 0.20, 240)
            assert (moved, paused) == (2, True)
            ag.wait(lambda lines: all(ag.events(c, "reported") for c in ids[:8]), 60)
            # Several of the server's poll periods (1 s) after the stop: nothing offered.
            end = time.monotonic() + 6
            while time.monotonic() < end:
                time.sleep(0.5)
            devs = wait_reported_revision(
                gb, {c: (A07 if c in bad else A08) for c in ids[:8]}, 60, ag
            )
            rc = ag.stop(signal.SIGTERM)
        assert rc == 143
        assert [r["paused"] for r in gb.api.rollouts() if r["id"] == rid] == [True]
        for c, m in zip(ids, mods.models):
            if c in bad:
                assert devs[c]["last_state"] == "Error" and m.revision == A07, devs[c]
                assert "END: 504: FOTA upgrade failed" in device_log(gb, c)
                assert len(_results(ag, c)) == 1
            elif c in waves[2]:
                assert devs[c]["last_state"] not in ("Running", "Finished", "Error"), devs[c]
                assert m.revision == A07 and m.updates_completed == 0
                assert not [x for x in m.commands if x.startswith('AT+QFOTADL="')], c
                assert not ag.events(c, "deployment"), c
                assert ag.events(c, "modem"), c  # served all along: polling, offered nothing
            else:
                assert devs[c]["last_state"] == "Finished" and m.revision == A08, devs[c]
                assert len(_results(ag, c)) == 1
