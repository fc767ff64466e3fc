"""``make bench``: qfota's speed and memory figures, each measured as a ratio in one run.

1. Throughput with flow control against the simulator at 921,600 baud, both runtimes:
   package bytes per second as the modem took them, over the line rate (baud/10).
2. Pacing without flow control: every write timed; average rate over the limit, the most
   bytes in any one-second window, the largest piece.
3. Memory: the whole 4,884,688-byte update on MicroPython with ``-X heapsize=64K``, the
   CLI's default chunk (``qfota.defaults.DEFAULTS["chunk"]``), the streaming loop under
   ``heap_lock()``; the peak heap of the whole update, or how it failed.
4. Staging (``bench/stage_bench.py``): ``qfota stage`` against ``mpremote cp``.

(The engine against a bare ``readinto`` + ``write`` loop on a pty is no longer a figure:
it measured the pty's noise, 74-107% from run to run; the emulated Pico's CPU share
answers what it asked.)

Every figure is measured even when one before it missed or failed (``bench/runner.py``):
a miss is a row marked "no", and the command exits 1 at the end. Writes the table into
README.md between the bench markers, with the command.

    python bench/run.py [--quick] [--no-readme]
    python bench/run.py --only 2      # figure 2 alone; rewrites only its rows
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "host_tools"))
sys.path.insert(0, str(ROOT / "bench"))

from runner import exit_status, measure, replace_block, replace_rows, write_readme  # noqa: E402

from qfota_tools.commands.update import micropython_binary  # noqa: E402
from qfota_tools.devtools.demo import NOTE_EXAMPLE_SIZE, make_image  # noqa: E402
from qfota_tools.simulators.ec200 import model as sim_model  # noqa: E402
from qfota_tools.simulators.ec200.cli import md5_of  # noqa: E402
from qfota_tools.simulators.ec200.pty_sim import PtySimulator  # noqa: E402

README = ROOT / "README.md"
START = "<!-- bench:start -->"
END = "<!-- bench:end -->"


class TimedModem(sim_model.Modem):
    """The simulator's model, noting when it took the first and the last package byte."""

    first = last = None

    def write(self, data, now_ms):
        before = len(self.received)
        took = super().write(data, now_ms)
        if len(self.received) > before:
            t = time.monotonic()
            if self.first is None:
                self.first = t
            self.last = t
        return took


def qfota_update(port, image, runtime, *extra):
    cmd = [sys.executable, "-m", "qfota_tools.cli", "update", "--runtime", runtime]
    cmd += ["--port", port, "--image", str(image), *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise SystemExit("bench: update failed:\n" + proc.stdout + proc.stderr)
    return proc.stdout


def throughput(image, runtime, baud=921_600):
    m = TimedModem(expect_md5=md5_of(image), baud=baud, timing=sim_model.FAST, seed=11)
    with PtySimulator(m) as sim:
        out = qfota_update(sim.path, image, runtime, "--baud", "921600", "--download-urcs", "50")
    size = len(m.received)
    assert m.received_md5 == md5_of(image), "package corrupted"
    # The simulator's flow-control bucket starts full (fc_buffer bytes taken at once):
    # count only what came after it, over the time it took.
    burst = m._fc_cap()
    rate = (size - burst) / (m.last - m.first)
    host = re.search(r"sent (\d+) bytes in ([\d.]+) s \((\d+) B/s\)", out)
    if not host:
        raise SystemExit("bench: no 'sent N bytes in S s (N B/s)' line in:\n" + out)
    return rate, baud / 10, int(host.group(3))


_PACING = r"""
import sys, time, array
sys.path.insert(0, "firmware")
from qfota.driver import Driver
from qfota.session import Session

try:
    ticks_us, ticks_diff = time.ticks_us, time.ticks_diff
except AttributeError:
    from qfota.compat import ticks_us, ticks_diff

path, rate, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
N = size // 16 + 16
stamps = array.array("i", [0] * N)
sizes = array.array("i", [0] * N)

class RecordingPort:
    def __init__(self):
        self.i = 0
        self.t0 = ticks_us()
    def readinto(self, buf):
        return 0
    def write(self, buf, off, n):
        stamps[self.i] = ticks_diff(ticks_us(), self.t0)
        sizes[self.i] = n
        self.i += 1
        return n
    def wait(self, ms):
        return False
    def wait_writable(self, ms):
        return True

s = Session(length=size, flow="none")
port = RecordingPort()
s.streaming = True
with open(path, "rb") as f:
    d = Driver(port, s, image=f, chunk=1024, rate=rate)
    d._stream()
n = port.i
# Largest number of bytes written in any window of one second (two pointers).
best = 0
j = 0
acc = 0
for i in range(n):
    acc += sizes[i]
    while stamps[i] - stamps[j] >= 1000000:
        acc -= sizes[j]
        j += 1
    if acc > best:
        best = acc
span = stamps[n - 1] - stamps[0]
print(s.sent, span, best, max(sizes[k] for k in range(n)), n)
"""


def pacing(image, runtime, rate=15_000):
    size = min(os.path.getsize(image), 180_000)
    exe = micropython_binary() if runtime == "micropython" else sys.executable
    env = dict(os.environ, PYTHONPATH=str(ROOT / "firmware"))
    proc = subprocess.run(
        [exe, "-c", _PACING, str(image), str(rate), str(size)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
        env=env,
    )
    if proc.returncode:
        raise SystemExit("bench: pacing run failed:\n" + proc.stdout + proc.stderr)
    sent, span_us, window_max, piece_max, writes = map(int, proc.stdout.split())
    avg = (sent - piece_max) / (span_us / 1e6)  # bytes after the first write, over the span
    return avg, window_max, piece_max, rate


def memory(image, heap="64K"):
    """The whole update on MicroPython in a ``heap`` heap with the CLI's default chunk:
    (completed, peak live heap or None, chunk, the closing line)."""
    from qfota.defaults import DEFAULTS

    chunk = DEFAULTS["chunk"]
    m = sim_model.Modem(expect_md5=md5_of(image), baud=4_000_000, timing=sim_model.FAST, seed=5)
    with PtySimulator(m) as sim:
        cmd = [sys.executable, "-m", "qfota_tools.cli", "update", "--runtime", "micropython"]
        cmd += ["--port", sim.path, "--image", str(image), "--mpy", "--chunk", str(chunk)]
        cmd += ["--heapsize", heap, "--lock-heap", "--mem", "--download-urcs", "50"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    out = proc.stdout + proc.stderr
    peak = re.search(r"heap: live high-water (\d+) bytes", out)
    done = proc.returncode == 0 and m.received_md5 == md5_of(image)
    last = (out.strip().splitlines() or ["(no output)"])[-1]
    return done, int(peak.group(1)) if peak else None, chunk, last


def stage():
    script = ROOT / "bench" / "stage_bench.py"
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, cwd=ROOT, timeout=1200
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode and not lines:
        raise SystemExit("stage_bench: " + (proc.stderr.strip() or "exit %d" % proc.returncode))
    return lines[-1][:60], proc.returncode == 0


def figures(image):
    """(number, name, target, measure) of every figure; ``measure()`` -> (text, met)."""

    def flow(runtime):
        rate, line, host = throughput(image, runtime)
        text = "%.0f B/s of %.0f (%.1f%%); qfota says %d B/s" % (
            rate,
            line,
            100 * rate / line,
            host,
        )
        return text, rate / line >= 0.97

    def paced(runtime):
        avg, window, piece, limit = pacing(image, runtime)
        text = "avg %.1f%%, max 1-s window %d B, max piece %d B" % (
            100 * avg / limit,
            window,
            piece,
        )
        return text, 0.95 <= avg / limit <= 1.0 and window <= limit and piece <= 32

    def heap():
        done, peak, _chunk, last = memory(image)
        if done:
            return "completed; live heap high-water %s bytes" % peak, True
        # What it needs: the same update with room to spare, its peak measured.
        big_done, big_peak, _c, _l = memory(image, "128K")
        text = "FAILED in 64K (%s); with 128K: %s, live heap high-water %s bytes" % (
            last[:70],
            "completed" if big_done else "failed too",
            big_peak if big_peak is not None else "n/a",
        )
        return text, False

    from qfota.defaults import DEFAULTS

    chunk = DEFAULTS["chunk"]
    out = []
    for runtime in ("cpython", "micropython"):
        name = "1. flow control, 921,600 baud, %s" % runtime
        out.append((1, name, ">= 97% of line rate", lambda r=runtime: flow(r)))
    for runtime in ("micropython", "cpython"):
        name = "2. no flow control, limit 15000 B/s, %s" % runtime
        out.append((2, name, "95-100%, <= limit, <= 32 B", lambda r=runtime: paced(r)))
    name = "3. whole update, MicroPython -X heapsize=64K, heap_lock, chunk %d" % chunk
    out.append((3, name, "completes in 64K", heap))
    out.append((4, "4. qfota stage vs mpremote cp", ">= 4x", stage))
    return out


def table_rows(figs, results):
    """Markdown rows: a figure that failed reads "not measured: <why>", met "no"."""
    rows = []
    for (_n, name, target, _fn), r in zip(figs, results):
        text = r.value if r.why is None else "not measured: %s" % r.why
        rows.append("| %s | %s | %s | %s |" % (name, text, target, "yes" if r.met else "no"))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--quick", action="store_true", help="a 1 MB package instead of the note's 4,884,688 bytes"
    )
    ap.add_argument("--no-readme", action="store_true")
    ap.add_argument(
        "--only", type=int, action="append", metavar="N", help="measure figure N alone (repeatable)"
    )
    args = ap.parse_args(argv)
    size = 1_000_000 if args.quick else NOTE_EXAMPLE_SIZE
    image = make_image(ROOT / "out" / ("bench-%d.bin" % size), size)
    figs = figures(image)
    if args.only:
        unknown = set(args.only) - {f[0] for f in figs}
        if unknown:
            ap.error("--only: no figure %s" % ", ".join(str(n) for n in sorted(unknown)))
        figs = [f for f in figs if f[0] in args.only]
    results = measure([(name, fn) for _n, name, _t, fn in figs])
    rows = table_rows(figs, results)

    cmd = "make bench" + ("" if not args.quick else " (python bench/run.py --quick)")
    table = [
        "Measured by `%s` on %s (package: %d bytes):" % (cmd, time.strftime("%Y-%m-%d"), size),
        "",
        "| figure | measured | target | met |",
        "| --- | --- | --- | --- |",
        *rows,
    ]
    print("\n".join(table if not args.only else rows))
    (ROOT / "out").mkdir(exist_ok=True)
    (ROOT / "out" / "bench.json").write_text(
        json.dumps([[r.name, r.value, r.met, r.why] for r in results], indent=1)
    )
    if not args.no_readme and README.exists():
        if args.only:
            only = sorted(set(args.only))
            note = "Re-measured alone: figure %s by `python bench/run.py%s%s` on %s." % (
                ", ".join(str(n) for n in only),
                " --quick" if args.quick else "",
                "".join(" --only %d" % n for n in only),
                time.strftime("%Y-%m-%d"),
            )
            write_readme(README, START, lambda t: replace_rows(t, START, END, rows, note))
        else:
            write_readme(README, START, lambda t: replace_block(t, START, END, "\n".join(table)))
    return exit_status(results, "bench", "missed")


if __name__ == "__main__":
    sys.exit(main())
