"""Server mode's figures (issue 17), measured on the emulated Pico (the real rp2 firmware)
against gooseBit on 127.0.0.1, through the simulated modem's HTTP AT commands::

    .venv/bin/python bench/fleet_bench.py              # rewrites the README's bench-fleet block
    .venv/bin/python bench/fleet_bench.py --only heap  # figure 3 alone, README untouched

1. Cellular data per idle poll: request and answer, headers included, as the simulated
   modem counts them on its network side (goal: at most 600 bytes).
2. Download through the modem's HTTP into flash at 921,600 baud (flow hw, a modem that
   never holds CTS; UART0 RX fed at the line rate): the artifact's bytes over the time
   from the download's start to its end in emulated ``ticks_ms`` (Range requests, AT
   commands and littlefs writes included; goal: at least 80% of the line rate).
3. The app's live heap in server mode, polling and updating: the lowest ``gc.mem_free()``
   after a ``gc.collect()`` at every event (engine and server mode), against the staged-
   image app's, measured the same way in the same run (goal: at most 16 KB more). The
   row names the line server mode printed last before its low and gives each phase's low
   (the phase told by the modules loaded: ``qfota.fleet`` polling, ``qfota.fleetdl``
   downloading, ``qfota.driver`` the modem's update).
"""

import os
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "mock"), str(ROOT / "bench")]

from goosebit_rig import GooseBit  # noqa: E402
from pico_bench import update_run  # noqa: E402
from pico_rig import NEW_REV, OLD_REV, deployed_flash, find_fixtures, mpremote  # noqa: E402
from runner import measure, replace_block  # noqa: E402

from qfota.fleet import RANGE  # noqa: E402
from qfota_tools.commands.swu import build  # noqa: E402
from qfota_tools.simulators import pico  # noqa: E402
from qfota_tools.simulators.ec200.model import FAST, Modem  # noqa: E402

LINE = 921600 // 10
SIZE = 400_000  # a package of a few hundred KB: per-request costs are part of it, not all of it
IDLE_GOAL = 600
RATE_GOAL = 0.80
HEAP_GOAL = 16 * 1024
README = ROOT / "README.md"
START, END = "<!-- bench-fleet:start -->", "<!-- bench-fleet:end -->"

# Runs on the board: server mode at 921,600 baud, every event timed (emulated ticks_ms)
# and the live heap sampled after a collect.
PROBE = """
import gc, sys, time
import board
from qfota import app, report
board.BAUD = 921600
lo = [1 << 30, '']
last = ['']
by = {}  # each phase's low
def sample():
    gc.collect()
    m = gc.mem_free()
    if m < lo[0]:
        lo[0] = m
        lo[1] = last[0]
    mods = sys.modules
    phase = 'poll' if 'qfota.fleet' in mods else 'download' if 'qfota.fleetdl' in mods \
        else 'update' if 'qfota.driver' in mods else 'other'
    if m < by.get(phase, 1 << 30):
        by[phase] = m
class R(report.Reporter):
    def event(self, ev, a, b):
        sample()
        report.Reporter.event(self, ev, a, b)
    def line(self, text):
        if ': action ' in text:  # server mode's own lines name its phase
            last[0] = text.split(':')[0]
        sample()
        print('T', time.ticks_ms(), text)
app.Reporter = R
gc.collect()
app.main()
print('LIVE_LOW', lo[0])
print('LIVE_LOW_AFTER', lo[1])
for k in ('poll', 'download', 'update'):
    print('LIVE_LOW_PHASE', k, by.get(k, 0))
"""


def server_run(fw, rom, tmp, gb):
    """Server mode on the emulated Pico: (download B/s, artifact bytes, idle poll bytes,
    live-heap low)."""
    data = os.urandom(SIZE)
    img = tmp / "EC200T_A07_A08.bin"
    img.write_bytes(data)
    swu = tmp / "pkg.swu"
    build(str(img), "EC200T", OLD_REV, NEW_REV, str(swu))
    status, doc = gb.api.upload(swu.read_bytes(), "pkg.swu")
    if status != 200:
        raise SystemExit("gooseBit refused the upload: %s" % doc)
    gb.api.rollout("bench", "bench", doc["id"])
    token = "bench-" + "0123456789abcdef"
    gb.api.put_devices(["pico-bench"], auth_token=token, feed="bench")
    flash = tmp / "flash-server.bin"
    proc = deployed_flash(flash, fw, rom)
    if proc.returncode:
        raise SystemExit("deploy failed: " + proc.stderr.strip()[-300:])
    cfg = tmp / "qfota.cfg"
    cfg.write_text(
        '{"server": "%s", "controller": "pico-bench", "poll_min_s": 1, "polls": 8}' % gb.base
    )
    tok = tmp / "token"
    tok.write_text(token + "\n")
    script = tmp / "probe-server.py"
    script.write_text(PROBE)
    import hashlib

    m = Modem(revision=OLD_REV, new_revision=NEW_REV, expect_md5=hashlib.md5(data).hexdigest(),
              baud=100 * 921600, timing=FAST)  # fmt: skip
    sim = pico.PicoSim(fw, rom, flash=str(flash), modem=m, cts_window=1 << 30)
    repl, _ = sim.start()
    try:
        for args in (("fs", "mkdir", ":/fota"), ("fs", "cp", str(cfg), ":/fota/qfota.cfg"),
                     ("fs", "cp", str(tok), ":/qfota_token")):  # fmt: skip
            mpremote(repl, *args)
        out = mpremote(repl, "run", str(script), timeout=600).stdout
        with sim.lock:
            http = [dict(e) for e in m.http_log]
            rev = m.revision
    finally:
        sim.stop()
    t0 = re.search(r"T (\d+) progress: action \d+: download: 0 of (\d+) bytes", out)
    t1 = re.search(r"T (\d+) downloaded: action \d+: (\d+) bytes", out)
    low = re.search(r"LIVE_LOW (\d+)", out)
    after = re.search(r"LIVE_LOW_AFTER (.*)", out)
    names = {"poll": "polling", "download": "downloading", "update": "updating"}
    phases = dict((names[k], int(v)) for k, v in re.findall(r"LIVE_LOW_PHASE (\w+) (\d+)", out))
    if not (t0 and t1 and low and rev == NEW_REV):
        raise SystemExit("server mode did not update the modem:\n" + out[-2000:])
    n = int(t1.group(2))
    rate = n * 1000 // max(1, int(t1.group(1)) - int(t0.group(1)))
    base = "/DEFAULT/controller/v1/pico-bench"
    polls = [e for e in http if e["method"] == "GET" and e["path"] == base and e["status"] == 200]
    idle_poll = min(e["up"] + e["down"] for e in polls)
    where = after.group(1).strip() if after else "?"
    return rate, n, idle_poll, int(low.group(1)), where, phases


def figures(fw, rom, tmp, gb):
    got = {}

    def server():
        # One server-mode run for the three figures; its failure is each one's.
        if "server" not in got:
            try:
                got["server"] = server_run(fw, rom, tmp, gb)
            except BaseException as exc:
                got["server"] = exc
        if isinstance(got["server"], BaseException):
            raise got["server"]
        return got["server"]

    def idle():
        i = server()[2]
        return [("cellular data per idle poll (request + answer, headers included, counted "
                 "by the simulated modem)", "%d bytes (goal <= %d)" % (i, IDLE_GOAL))], \
            i <= IDLE_GOAL  # fmt: skip

    def download():
        rate, n = server()[:2]
        return [("download through the modem's HTTP into flash, 921,600 baud, %d-byte SWU "
                 "in %d KB ranges (emulated ticks_ms)" % (n, RANGE // 1024),
                 "%d B/s = **%.0f%%** of the line rate (goal >= %.0f%%)"
                 % (rate, 100.0 * rate / LINE, 100 * RATE_GOAL))], \
            rate >= RATE_GOAL * LINE  # fmt: skip

    def heap():
        low, after, phases = server()[3:6]
        _, _, lows, _ = update_run(fw, rom, tmp, "staged-live", SIZE, probe=True, collect=True)
        more = lows[0] - low
        each = "; ".join("%s %d B, %d B more" % (k, phases.get(k, 0), lows[0] - phases.get(k, 0))
                         for k in ("polling", "downloading", "updating"))  # fmt: skip
        return [("live heap in server mode vs the staged-image app (lowest `gc.mem_free()` "
                 "after a collect at every event, same board and image size)",
                 "%d B vs %d B: **%d B more** (goal <= %d); server mode's low after its "
                 "line `%s`; each phase's low: %s" % (low, lows[0], more, HEAP_GOAL, after,
                                                      each))], \
            more <= HEAP_GOAL  # fmt: skip

    return [
        ("1. cellular data per idle poll", idle),
        ("2. download through the modem's HTTP", download),
        ("3. live heap of server mode", heap),
    ]


def main():
    fw, rom = find_fixtures()
    only = sys.argv[sys.argv.index("--only") + 1] if "--only" in sys.argv else None
    with tempfile.TemporaryDirectory() as d, GooseBit(Path(d) / "gb", auth="strict") as gb:
        figs = figures(fw, rom, Path(d), gb)
        if only is not None:
            figs = [f for f in figs if only in f[0]]
            if not figs:
                raise SystemExit("--only: no figure named %r" % only)
        results = measure(figs)
    rows = []
    for r in results:
        rows += r.value if r.value is not None else [(r.name, "**no**: not measured: " + r.why)]
    text = (
        "Measured by `bench/fleet_bench.py` on %s (emulated Pico, real rp2 firmware, gooseBit on "
    )
    text = text % time.strftime("%Y-%m-%d") + "127.0.0.1; one run):\n\n"
    text += "| figure | value |\n|---|---|" + "".join("\n| %s | %s |" % row for row in rows)
    print(text)
    if "--no-readme" not in sys.argv and only is None:
        body = replace_block(README.read_text(), START, END, text)
        if body is None:
            print("README.md has no %s block: not written" % START)
        else:
            README.write_text(body)
    missed = [r.name for r in results if not r.met]
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
