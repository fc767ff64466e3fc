"""``make soak``: many simulated updates with random faults, timing and read splitting.

    python -m qfota_tools.devtools.soak                      # 200 runs, both runtimes, 2 at a time
    python -m qfota_tools.devtools.soak --runs 40 --runtime micropython --seed 7
    python -m qfota_tools.devtools.soak --seed 7 --only 13 -v   # replay one run, with its output

Each run draws, from ``--seed`` and its index, one fault of the simulator's list (or
none), an image of 20-100 KB, FILE mode or a URL mode (HTTP or FTP: the simulator's
fetcher hands the modem that image), the simulator's FAST timing with every delay scaled
by 0.5-3x, a line rate, the flow control, ``--mode``, ``--download-urcs``,
``--update-urcs``, ``--chunk`` and (MicroPython) ``--lock-heap``. It then runs the real
``qfota update`` with the revision gate (``--expect-source``/``--target``: a success must
end on the target revision) (``--runtime cpython`` or
``micropython``, alternately) in a subprocess against ``PtySimulator`` on a pty, with a
chaos layer between the model and the pty: the modem's output leaves in random pieces
(1 byte up) at random moments (0-3 ms apart), and with flow control the modem takes the
host's bytes in random pieces. A run longer than ``--bound`` seconds is killed: HANG.

Verdicts, per the fault's own row (the simulator's ``model.FAULTS``, read by ``expected``):
- ``ok``: the update succeeded, and the simulator received the image intact (md5) and
  upgraded (``END 0``), with no byte lost or sent before FILESTART;
- ``expected``: it failed cleanly with the stage, code and exit status of the fault's row;
- ``WRONG``: anything else (a traceback, a wrong stage or code, success despite a fault);
- ``HANG``: killed at the bound.

It prints a table (fault x runtime) and exits 1 on any WRONG or HANG.
"""

import argparse
import hashlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from qfota_tools.simulators.ec200.model import (
    FAST,
    FAULT_NAMES,
    FILE_WAITS,
    URL_WAITS,
    Modem,
    fault_outcome,
    wait_args,
)
from qfota_tools.simulators.ec200.pty_sim import PtySimulator

RUNTIMES = ("cpython", "micropython")

URLS = {
    "http": "http://10.0.0.2:8080/EC200T.bin",
    "ftp": "ftp://soak:s3cret@10.0.0.2/EC200T.bin",
}


def expected(fault, source):
    """What ``fault`` must end in when the package comes from ``source``: None = success
    with the image intact; else (stages, code, exit status). From the simulator's own
    row (``model.FAULTS``): there is no second table to keep."""
    if fault == "none":
        return None
    want = fault_outcome(fault, source)
    return None if want is None else want[:3]


BOUND_S = 60.0
NONE_WEIGHT = 3  # "none" is drawn this many times as often as one fault


# ---------------------------------------------------------------- the chaos layer
class Chaos:
    """Stands for the model in ``PtySimulator``: the same model, with the bytes chopped.

    The modem's output leaves in pieces of 1..``piece`` bytes, now and then with a pause
    of 1..``gap_ms`` between two; pauses never bring the rate below ``MIN_RATE`` bytes per
    ms since the last read (a UART at 921,600 baud gives 92), so every wait of the engine
    still holds. With
    flow control on, ``write`` takes a random part of what the pty read (the rest stays
    pending in the simulator, as behind a deasserted CTS).
    """

    # bytes per ms: above a 921,600-baud line (92), so the chaos never holds back what the
    # model emits (its garbage fault alone can emit ~30 per ms); splitting, not pacing
    MIN_RATE = 100

    def __init__(self, model, rng, piece=256, gap_ms=3):
        self._m = model
        self._rng = rng
        self._piece = piece
        self._gap = gap_ms
        self._buf = bytearray()
        self._next = 0
        self._since = 0  # bytes out since the last pause
        self._last = None  # ms of the last read that gave bytes
        self.pieces = 0

    def __getattr__(self, name):  # everything else: the model's own
        return getattr(self._m, name)

    def read(self, now_ms):
        self._buf += self._m.read(now_ms)
        if not self._buf or now_ms < self._next:
            return b""
        # Pieces until a pause, or MIN_RATE bytes per ms since the last read: one piece
        # per call would make the rate the simulator loop's (about 1 KB/s with 1-byte
        # pieces on a busy host), and a long garbage line would outlast the engine's waits.
        since = 1 if self._last is None else max(1, now_ms - self._last)
        budget = self.MIN_RATE * since
        self._last = now_ms
        out = bytearray()
        while self._buf and len(out) < budget:
            k = self._rng.randint(1, min(len(self._buf), self._piece))
            out += self._buf[:k]
            del self._buf[:k]
            self.pieces += 1
            self._since += k
            if self._gap and self._rng.random() < 0.3:
                pause = self._rng.randint(1, self._gap)
                if self._since >= pause * self.MIN_RATE:
                    self._next = now_ms + pause
                    self._since = 0
                    break
        return bytes(out)

    def next_due_ms(self, now_ms):
        due = self._m.next_due_ms(now_ms)
        if self._buf:
            mine = max(now_ms, self._next)
            due = mine if due is None else min(due, mine)
        return due

    def write(self, data, now_ms):
        if self._m.flow_hw and len(data) > 1 and self._rng.random() < 0.5:
            data = data[: self._rng.randint(1, len(data))]
        return self._m.write(data, now_ms)


# ---------------------------------------------------------------- one run
def faults_soaked():
    return list(FAULT_NAMES)


def plan(seed, index, runtimes):
    """Everything random about run ``index``, drawn from ``seed`` alone."""
    rng = random.Random("%s:%d" % (seed, index))
    choices = ["none"] * NONE_WEIGHT + faults_soaked()
    fault = rng.choice(choices)
    source = rng.choice(("file",) * 6 + ("http", "ftp"))
    flow = "none" if fault not in ("stall",) and rng.random() < 0.15 else "hw"
    timing = {}
    for k, v in FAST.items():
        timing[k] = max(1, int(v * rng.uniform(0.5, 3.0)))
    timing["noise_ms"] = rng.randint(30, 300)
    # A quiet line this long ends a FILE transfer with FILEEND,500: keep it above any
    # pause a loaded machine may put between two writes of the host.
    # The engine's stall wait (1 s) is shorter, so a stalled transfer ends at STREAM.
    timing["download_idle_ms"] = max(timing["download_idle_ms"], 2500)
    return {
        "index": index,
        "runtime": runtimes[index % len(runtimes)],
        "fault": fault,
        "source": source,
        "apn": rng.random() < 0.5,
        # A stall leaves the rest of the image in the pty's buffers (about 20 KB) before
        # the host sees it: a big image, or the host "sends" it all and fails at FILEEND.
        "size": rng.randint(
            70_000 if fault == "stall" else 20_000, 30_000 if flow == "none" else 100_000
        ),
        "flow": flow,
        "usb": flow == "hw" and rng.random() < 0.2,
        "mode": rng.choice((0, 1, 1)),
        "download_urcs": rng.choice((0, 5, 10, 50, 100)),
        "update_urcs": rng.choice((0, 5, 10, 100)),
        "chunk": rng.choice((512, 1024, 4096)),
        "baud": rng.choice((921_600, 3_000_000, 0)),
        "lock_heap": rng.random() < 0.3,
        "timing": timing,
        "model_seed": rng.randrange(1 << 30),
        "chaos_seed": rng.randrange(1 << 30),
        "piece": rng.choice((1, 7, 64, 256, 4096)),
        "gap_ms": rng.choice((0, 1, 3)),
        "image_seed": rng.randrange(1 << 30),
    }


def command(p, port, image, source_rev=None, target_rev=None):
    cmd = [sys.executable, "-m", "qfota_tools.cli", "update", "--runtime", p["runtime"]]
    cmd += ["--port", port, "--mode", str(p["mode"])]
    if source_rev and target_rev:
        # The revision gate an operator runs with: a success must end on the target.
        cmd += ["--expect-source", source_rev, "--target", target_rev]
    if p["source"] == "file":
        # Options of FILE mode only: qfota update refuses them with --url.
        cmd += ["--image", image, "--flow", p["flow"], "--chunk", str(p["chunk"])]
        if p["usb"]:
            cmd.append("--usb")
        if p["lock_heap"] and p["runtime"] == "micropython":
            cmd.append("--lock-heap")
    else:
        cmd += ["--url", URLS[p["source"]], "--cid", "1"]
        if p["apn"]:
            cmd += ["--apn", "cmnet"]
    cmd += ["--download-urcs", str(p["download_urcs"]), "--update-urcs", str(p["update_urcs"])]
    return cmd + wait_args(FILE_WAITS, URL_WAITS)


def _kill(proc):
    """End the run's process group (the CLI and, on MicroPython, its interpreter)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run_one(p, workdir, bound=BOUND_S):
    """Run plan ``p``; returns a result dict with ``verdict`` and ``why``."""
    data = random.Random(p["image_seed"]).randbytes(p["size"])
    image = os.path.join(workdir, "image-%d.bin" % p["index"])
    with open(image, "wb") as f:
        f.write(data)
    md5 = hashlib.md5(data).hexdigest()
    fault = p["fault"]
    model = Modem(
        expect_md5=md5,
        faults=() if fault == "none" else (fault,),
        baud=p["baud"],
        timing=p["timing"],
        seed=p["model_seed"],
        # Without flow control the pty hands the model bytes in bursts whenever this
        # process's threads are descheduled; a UART at line rate would not. A 4 KiB
        # receive buffer absorbs that; the pacing is still checked (overflow_bytes == 0).
        rx_buffer=4096 if p["flow"] == "none" else 1024,
    )
    revs = (model.revision, model.new_revision)
    chaos = Chaos(model, random.Random(p["chaos_seed"]), p["piece"], p["gap_ms"])
    sim = PtySimulator(chaos, fetcher=lambda url, timeout=None, cafile=None: (0, data, "soak"))
    port = sim.start()
    t0 = time.monotonic()
    hang = False
    try:
        proc = subprocess.Popen(
            # With no-qgmr too: ATI gives only the short revision (EC200TCNDAR02A07M16),
            # which the gate takes for the same revision as AT+QGMR's long form.
            command(p, port, image, *revs),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own process group: killed whole at the bound
        )
        try:
            out, err = proc.communicate(timeout=bound)
        except subprocess.TimeoutExpired:
            hang = True
            _kill(proc)
            out, err = proc.communicate()
    finally:
        sim.stop()
        os.unlink(image)
    seconds = time.monotonic() - t0
    facts = {
        "received_md5": model.received_md5,
        "outcome": model.outcome,
        "before_filestart": model.image_bytes_before_filestart,
        "overflow": model.overflow_bytes,
        "history": model.history[-12:],
        "sim_error": repr(sim.error) if sim.error else None,
    }
    lines = (out or "").strip().splitlines()
    last = lines[-1] if lines else ""
    result = dict(p, rc=proc.returncode, last=last, out=out, err=err, seconds=seconds)
    result.update(facts)
    result["pieces"] = chaos.pieces
    if hang:
        result["verdict"], result["why"] = "HANG", "killed after %.0f s" % bound
    else:
        result["verdict"], result["why"] = judge(p, proc.returncode, last, err, facts, md5)
    return result


def parse_failure(last):
    """``qfota: failed: STAGE: 500: meaning`` -> ("STAGE", 500); None if not that shape."""
    head = "qfota: failed: "
    if not last.startswith(head):
        return None
    parts = last[len(head) :].split(": ")
    code = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
    return parts[0], code


def judge(p, rc, last, err, facts, md5):
    want = expected(p["fault"], p["source"])
    if facts["sim_error"]:
        return "WRONG", "the simulator failed: %s" % facts["sim_error"]
    if "Traceback" in (err or ""):
        return "WRONG", "traceback: %s" % err.strip().splitlines()[-1]
    if want is None:
        if rc != 0 or not last.startswith("qfota: done: "):
            return "WRONG", "expected success, got exit %s: %s" % (rc, last)
        if facts["received_md5"] != md5 or facts["outcome"] != "END 0":
            return "WRONG", "image not intact: md5 %s, outcome %s" % (
                facts["received_md5"],
                facts["outcome"],
            )
        if facts["before_filestart"] or facts["overflow"]:
            return "WRONG", "%d bytes before FILESTART, %d lost" % (
                facts["before_filestart"],
                facts["overflow"],
            )
        return "ok", ""
    stages, code, status = want
    got = parse_failure(last)
    if got is None:
        return "WRONG", "expected a failure at %s, got exit %s: %s" % ("/".join(stages), rc, last)
    if got[0] not in stages or got[1] != code or rc != status:
        return "WRONG", "expected %s %s exit %d, got exit %s: %s" % (
            "/".join(stages),
            code,
            status,
            rc,
            last,
        )
    return "expected", ""


# ---------------------------------------------------------------- many runs
def soak(runs=200, runtimes=RUNTIMES, seed=0, jobs=2, bound=BOUND_S, only=None, progress=None):
    """Run the soak; returns the list of results (one per run)."""
    indexes = [only] if only is not None else list(range(runs))
    plans = [plan(seed, i, runtimes) for i in indexes]
    results = []
    lock = threading.Lock()
    with tempfile.TemporaryDirectory(prefix="qfota-soak-") as workdir:

        def one(p):
            r = run_one(p, workdir, bound)
            with lock:
                results.append(r)
                if progress:
                    progress(r, len(results), len(plans))
            return r

        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            list(pool.map(one, plans))
    results.sort(key=lambda r: r["index"])
    return results


VERDICTS = ("ok", "expected", "WRONG", "HANG")


def table(results, runtimes):
    """The outcome table: one row per fault, ok/expected/WRONG/HANG per runtime."""
    faults = ["none"] + [f for f in faults_soaked() if f != "none"]
    counts = {}
    for r in results:
        key = (r["fault"], r["runtime"])
        counts.setdefault(key, dict.fromkeys(VERDICTS, 0))[r["verdict"]] += 1
    head = "%-20s" % "fault" + "".join("  %-26s" % rt for rt in runtimes)
    sub = "%-20s" % "" + "".join(
        "  %5s %5s %5s %5s    " % ("ok", "exp", "WRONG", "HANG") for _ in runtimes
    )
    rows = [head, sub.rstrip()]
    totals = {rt: dict.fromkeys(VERDICTS, 0) for rt in runtimes}
    for f in faults:
        cells = []
        for rt in runtimes:
            c = counts.get((f, rt), dict.fromkeys(VERDICTS, 0))
            for v in VERDICTS:
                totals[rt][v] += c[v]
            cells.append("  %5d %5d %5d %5d    " % tuple(c[v] for v in VERDICTS))
        rows.append(("%-20s" % f + "".join(cells)).rstrip())
    cells = ["  %5d %5d %5d %5d    " % tuple(totals[rt][v] for v in VERDICTS) for rt in runtimes]
    rows.append(("%-20s" % "total" + "".join(cells)).rstrip())
    return "\n".join(rows)


def describe(r):
    return "run %d (%s, %s, %s, flow %s, mode %d, %d B, dl %d, up %d, piece %d)" % (
        r["index"],
        r["runtime"],
        r["fault"],
        r["source"],
        r["flow"],
        r["mode"],
        r["size"],
        r["download_urcs"],
        r["update_urcs"],
        r["piece"],
    )


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="python -m qfota_tools.devtools.soak", description=(__doc__ or "").split("\n\n")[0]
    )
    ap.add_argument("--runs", type=int, default=200, help="number of updates (default 200)")
    ap.add_argument("--runtime", choices=("cpython", "micropython", "both"), default="both")
    ap.add_argument("--seed", type=int, help="seed of every random choice (default: new)")
    ap.add_argument("--jobs", type=int, default=2, help="runs at a time (default 2)")
    ap.add_argument(
        "--bound", type=float, default=BOUND_S, help="seconds before a run is a HANG (60)"
    )
    ap.add_argument("--only", type=int, metavar="I", help="replay run I of this seed only")
    ap.add_argument("-v", "--verbose", action="store_true", help="print each run's output")
    args = ap.parse_args(argv)
    runtimes = RUNTIMES if args.runtime == "both" else (args.runtime,)
    seed = args.seed if args.seed is not None else random.randrange(1 << 20)
    print(
        "qfota soak: %d runs, %s, seed %d, %d jobs"
        % (args.runs, "+".join(runtimes), seed, args.jobs)
    )

    def progress(r, done, total):
        mark = (
            "" if r["verdict"] in ("ok", "expected") else "  <-- %s: %s" % (r["verdict"], r["why"])
        )
        print(
            "[%3d/%d] %-8s %5.1fs %s%s"
            % (done, total, r["verdict"], r["seconds"], describe(r), mark)
        )
        if args.verbose:
            print(r["out"].rstrip())
            if r["err"].strip():
                print(r["err"].rstrip())
            print("  simulator: %s" % " ".join(r["history"]))
        sys.stdout.flush()

    t0 = time.monotonic()
    results = soak(args.runs, runtimes, seed, args.jobs, args.bound, args.only, progress)
    wall = time.monotonic() - t0
    print()
    print(table(results, runtimes))
    bad = [r for r in results if r["verdict"] in ("WRONG", "HANG")]
    print()
    print(
        "%d runs in %.0f s (seed %d): %d WRONG, %d HANG"
        % (
            len(results),
            wall,
            seed,
            sum(r["verdict"] == "WRONG" for r in results),
            sum(r["verdict"] == "HANG" for r in results),
        )
    )
    for r in bad:
        print("%s: %s: %s" % (r["verdict"], describe(r), r["why"]))
        print(
            "  replay: python -m qfota_tools.devtools.soak --seed %d --only %d -v"
            % (seed, r["index"])
        )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
