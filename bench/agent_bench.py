"""``qfota agent`` figures, measured against gooseBit on 127.0.0.1 and simulated modems on
ptys (FAST timing, 921,600 baud, hardware flow control), in one run:

A. Modems per gateway: N simulated modems (default 32) behind one agent, all polling and
   updated from one rollout at once. The agent's CPU time (user + system, from
   /proc/PID/stat) from its start to the last result, and over an idle stretch of polling
   after it; its peak RSS (VmHWM) and RSS while idle; each per modem.
B. Time from a rollout's start (the rollout created, the modems already polling) to all of
   M modems (default 12) updated and reported, against the same M updated one after
   another by ``qfota update`` (the image already on disk).

The simulators run in this process, the agent and gooseBit in their own: on a shared
2-core machine every figure is noisy; each is what one run measured.

    .venv/bin/python bench/agent_bench.py [--modems 32] [--wave 12] [--image-kb 256]
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from agent_rig import A07, A08, AgentProc, Modems, cid, config, wait_devices  # noqa: E402
from goosebit_rig import GooseBit  # noqa: E402

from qfota_tools.commands.swu import build  # noqa: E402
from qfota_tools.simulators.ec200 import model as sim_model  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def mem_kb(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


def package(d, size):
    image = d / "EC200T_A07_A08.bin"
    image.write_bytes(os.urandom(size))
    swu = d / "A07_A08.swu"
    build(str(image), "EC200T", A07, A08, str(swu))
    return image, swu


def register(gb, ids, feed):
    tokens = {c: "bench-%s-0123456789" % c[-6:] for c in ids}
    for c, t in tokens.items():
        gb.api.put_devices([c], auth_token=t, feed=feed)
    return tokens


def agent_run(gb, d, image, swu_id, seeds, feed, idle_s):
    """One agent in front of len(seeds) modems; the rollout created once all poll."""
    ids = [cid(s) for s in seeds]
    tokens = register(gb, ids, feed)
    specs = [dict(seed=s) for s in seeds]
    out = {}
    with Modems(specs, image.read_bytes()) as mods:
        cfg = config(gb, mods.paths, d / ("state-" + feed), tokens=tokens)
        with AgentProc(d, cfg, "agent-" + feed) as ag:
            pid = ag.proc.pid
            ag.wait(lambda lines: len([x for x in lines if x["event"] == "modem"]) == len(ids), 300)
            cpu0 = cpu_s(pid)
            t0 = time.monotonic()
            gb.api.rollout("bench " + feed, feed, swu_id)
            ag.wait(lambda lines: all(ag.events(c, "reported") for c in ids), 1200)
            out["rollout_to_all_s"] = time.monotonic() - t0
            out["update_cpu_s"] = cpu_s(pid) - cpu0
            out["peak_rss_kb"] = mem_kb(pid, "VmHWM")
            devs = wait_devices(gb, ids, ("Finished", "Error"), 120)
            out["finished"] = sum(1 for c in ids if devs[c]["last_state"] == "Finished")
            out["updated"] = sum(1 for m in mods.models if m.revision == A08)
            cpu1 = cpu_s(pid)
            time.sleep(idle_s)
            out["idle_cpu_s"] = cpu_s(pid) - cpu1
            out["idle_s"] = idle_s or 1e-9
            out["idle_rss_kb"] = mem_kb(pid, "VmRSS")
            ag.stop()
    return out


def sequential(d, image, seeds, state):
    """The same modems updated one after another by ``qfota update``."""
    env = dict(os.environ, QFOTA_STATE_DIR=str(state))
    state.mkdir(exist_ok=True)
    md5 = hashlib.md5(image.read_bytes()).hexdigest()
    ok = 0
    with Modems([dict(seed=s, expect_md5=md5) for s in seeds], image.read_bytes()) as mods:
        t0 = time.monotonic()
        for path in mods.paths:
            cmd = [sys.executable, "-m", "qfota_tools.cli", "update", "--port", path]
            cmd += ["--image", str(image), "--baud", "921600"]
            cmd += sim_model.wait_args(sim_model.FILE_WAITS)
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
            ok += r.returncode == 0
        took = time.monotonic() - t0
        ok = min(ok, sum(1 for m in mods.models if m.revision == A08))
    return {"all_s": took, "updated": ok}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--modems", type=int, default=32)
    ap.add_argument("--wave", type=int, default=12)
    ap.add_argument("--image-kb", type=int, default=256)
    ap.add_argument("--idle-s", type=float, default=20.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        os.environ["QFOTA_STATE_DIR"] = str(d / "qfota-state")
        (d / "qfota-state").mkdir()
        image, swu = package(d, args.image_kb * 1024)
        with GooseBit(d / "goosebit", auth="strict") as gb:
            status, doc = gb.api.upload(swu.read_bytes(), swu.name)
            assert status == 200, doc
            many = agent_run(
                gb, d, image, doc["id"], range(1000, 1000 + args.modems), "a", args.idle_s
            )
            wave = agent_run(gb, d, image, doc["id"], range(3000, 3000 + args.wave), "c", 0)
        seq = sequential(d, image, range(4000, 4000 + args.wave), d / "seq-state")
    n = args.modems
    res = {
        "modems": n,
        "image_bytes": args.image_kb * 1024,
        "A": many,
        "B_agent": wave,
        "B_sequential": seq,
        "A_cpu_s_per_modem_update": many["update_cpu_s"] / n,
        "A_peak_rss_kb_per_modem": many["peak_rss_kb"] / n,
        "A_idle_cpu_pct_per_modem": 100 * many["idle_cpu_s"] / many["idle_s"] / n,
        "A_idle_rss_kb_per_modem": many["idle_rss_kb"] / n,
        "B_speedup": seq["all_s"] / wave["rollout_to_all_s"],
    }
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
