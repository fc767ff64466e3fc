"""Figures on the emulated Pico (real MicroPython rp2 firmware), written into README.md.

    python bench/pico_bench.py [--no-readme]
    python bench/pico_bench.py --stage [--rounds N] [--no-readme]   # figure 4 alone

``--stage`` measures figure 4 only (one emulator, about a minute) and rewrites only its
row of the README block.

Every figure is measured even when one before it failed (``bench/runner.py``): a figure
that could not be measured is a row reading **no** and why, and the command exits 1 at
the end.

Every figure comes from a whole update run by the app (``qfota.app.main()``, as main.py
runs it): the engine's Driver streaming the package from littlefs through
``qfota.uart.UartPort`` on UART0 (flow hw), to the EC200 model. The bridge models UART0's
TX side as a PL011: a 32-byte FIFO drained at the line rate, the TX interrupt at the
FIFO's trigger level. Emulated time is RP2040 cycles at 125 MHz.

1. Stream rate when the modem never holds CTS: UART0 at 7,812,500 baud (the RP2040's
   fastest, clk_peri / 16), so the line is never the limit and the rate is what the CPU
   sustains: the app's own "sent N bytes in T s" (emulated ``ticks_ms``), as a multiple
   of the 921,600-baud line rate (92,160 B/s).
2. CPU share at line rate: the same update with the board's UART at 921,600 baud and
   the line drained at that rate; the bridge counts the emulated time the line was busy
   and how much of it the core ran (not asleep in WFI/WFE). The rest is left to the
   application. Also reported: 1 - 1/multiple of figure 1, what the stream rate alone
   suggests. The TX interrupt wakes the core every 28 bytes at 921,600 baud (each wake
   costs the firmware's event loop), and the board's port sleeps until its transmit
   buffer should be nearly empty (``UartPort(baud=...)``) rather than polling it every
   millisecond (23% instead of 31% of the CPU).
3. The lowest ``gc.mem_free()`` during the whole update: sampled, without collecting, at
   every event the engine delivers (a ``Reporter`` subclass) and at the first write of
   every chunk (a wrapper around the board's port's ``write``), in a run of its own
   (``gc.mem_free()`` walks the heap: sampling costs time); and the live-heap low
   (``gc.collect()`` then ``gc.mem_free()`` at every event) in another.
4. ``qfota stage`` against ``mpremote fs cp`` of the same 128 KB file, alternating, in the
   same run (wall seconds of each command, from start to exit: both cross the same
   emulated USB link). ``qfota stage`` as a user runs it (``--via auto``: on rp2 the
   receiver takes the board's USB over from the REPL for the copy), and with
   ``--via repl`` (frames through the REPL's stdin). Alongside, the floor of any copy
   through the REPL's stdin: the firmware's ``sys.stdin.buffer.readinto`` alone taking
   the same 128 KB (written at once by the host, thrown away on the board, nothing else),
   from the first byte written to the board's answer; ``mpremote fs cp``'s time over that
   floor bounds what a copy through stdin (``--via repl``, mpremote) can reach.
"""

import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from pico_rig import NEW_REV, OLD_REV, cli, deployed_flash, find_fixtures, modem, mpremote  # noqa: E402
from runner import exit_status, measure, replace_block, write_readme  # noqa: E402

from qfota_tools.simulators import pico  # noqa: E402

LINE = 921600 // 10  # bytes/s at 921,600 baud, 8N1
FASTEST = 7_812_500  # the RP2040's fastest UART rate: clk_peri 125 MHz / 16
README = ROOT / "README.md"
START, END = "<!-- bench-pico:start -->", "<!-- bench-pico:end -->"

# Runs on the board. BAUD: None keeps board.BAUD; PROBE: sample mem_free at every event
# and every port write; COLLECT: gc.collect() before each sample at every event.
PROBE = """
import gc
import board
from qfota import app, report
BAUD, PROBE, COLLECT = %r, %r, %r
if BAUD:
    board.BAUD = BAUD
lo = [1 << 30, 1 << 30]
if PROBE:
    class R(report.Reporter):
        def event(self, ev, a, b):
            if COLLECT:
                gc.collect()
            m = gc.mem_free()
            if m < lo[0]:
                lo[0] = m
            report.Reporter.event(self, ev, a, b)
    app.Reporter = R
    _open = board.open_port
    def open_port(flow_hw=True):
        port = _open(flow_hw)
        write = port.write
        def probed(buf, off, n):
            if off == 0:  # a chunk's first write (gc.mem_free walks the heap: not per call)
                m = gc.mem_free()
                if m < lo[1]:
                    lo[1] = m
            return write(buf, off, n)
        port.write = probed
        return port
    board.open_port = open_port
gc.collect()
app.main()
print('LOWEST_MEM_FREE', lo[0], lo[1], gc.mem_free())
"""


def update_run(fw, rom, tmp, name, size=96_000, tx_baud=FASTEST, baud=None, probe=False,
               collect=False):  # fmt: skip
    """One whole update by the app; (rate B/s, bytes, lows (event, write, after), stats)."""
    flash = tmp / ("flash-%s.bin" % name)
    proc = deployed_flash(flash, fw, rom)
    if proc.returncode:
        raise SystemExit("deploy failed: " + proc.stderr.strip().splitlines()[-1])
    img = tmp / "ec200.bin"
    img.write_bytes(os.urandom(size))
    m = modem(None, flow_baud=100 * 921600)  # flow hw, a modem that never holds CTS
    sim = pico.PicoSim(fw, rom, flash=str(flash), modem=m, cts_window=1 << 30, tx_baud=tx_baud)
    repl, _ = sim.start()
    try:
        st = cli("stage", str(img), "--device", repl, "--to", ":/fota",
                 "--source-rev", OLD_REV, "--target-rev", NEW_REV)  # fmt: skip
        if st.returncode:
            raise SystemExit("stage failed: " + st.stderr.strip())
        script = tmp / ("probe-%s.py" % name)
        script.write_text(PROBE % (baud, probe, collect))
        out = mpremote(repl, "run", str(script), timeout=300).stdout
    finally:
        sim.stop()
    sent = re.search(r"sent (\d+) bytes in ([\d.]+) s \((\d+) B/s\)", out)
    low = re.search(r"LOWEST_MEM_FREE (\d+) (\d+) (\d+)", out)
    if not (sent and low and m.revision == NEW_REV):
        raise SystemExit("the update did not complete:\n" + out[-2000:])
    lows = tuple(int(x) for x in low.groups())
    return int(sent.group(3)), int(sent.group(1)), lows, sim.stats()


STAGE_ROW = (
    "| `qfota stage` (auto: over the board's USB, `--via usb`) vs `mpremote fs cp`, 128 KB, "
    "best of %d alternating (wall; alone: `bench/pico_bench.py --stage`) |"
)
REPL_ROW = (
    "| `qfota stage --via repl` (frames through the REPL's stdin) vs `mpremote fs cp`, same run |"
)


FLOOR_ROW = (
    "| floor of a copy through the REPL's stdin: the firmware's `sys.stdin.buffer.readinto` "
    "alone taking the same 128 KB (thrown away), best of %d | %.2f s; %.2f s with "
    "connecting and entering the raw REPL: no copy through the REPL's stdin (`--via repl`, "
    "`mpremote fs cp`) can beat `mpremote fs cp` by more than **%.1fx** |"
)

# Runs on the board: take N bytes from stdin and throw them away (Ctrl-C off: the bytes
# are data). "R" once ready, "D" once the last byte was read.
FLOOR = """
import sys, micropython
micropython.kbd_intr(-1)
b = bytearray(4096)
n = %d
sys.stdout.write('R')
while n > 0:
    n -= sys.stdin.buffer.readinto(b)
micropython.kbd_intr(3)
sys.stdout.write('D')
"""


def stage_rows(s, r, c, f, rounds):
    """The figure-4 rows: stage over USB, stage through the REPL, the REPL's floor."""
    return [
        STAGE_ROW % rounds + " %.1f s vs %.1f s: **%.1fx** |" % (s, c, c / s),
        REPL_ROW + " %.1f s vs %.1f s: **%.1fx** |" % (r, c, c / r),
        floor_row(f, c, rounds),
    ]


def floor_row(f, c, rounds):
    read, whole = f
    return FLOOR_ROW % (rounds, read, whole, c / whole)


def stdin_floor(repl, data):
    """Seconds the board's REPL stdin takes to read ``data`` (a multiple of 4096 bytes):
    (the read alone, from connecting to the REPL being left)."""
    from qfota_tools.transport import remote

    start = time.monotonic()
    t = remote.connect(repl)
    try:
        t.exec_raw_no_follow(FLOOR % len(data))
        ser = t.serial
        ser.timeout = 120
        if ser.read(1) != b"R":
            raise SystemExit("floor: the board did not start reading")
        t0 = time.monotonic()
        ser.write(data)
        if ser.read(1) != b"D":
            raise SystemExit("floor: the board did not finish reading")
        took = time.monotonic() - t0
        t.follow(timeout=10)
    finally:
        remote.close(t)
    return took, time.monotonic() - start


def stage_vs_cp(fw, rom, tmp, rounds=2, size=128 * 1024):
    flash = tmp / "flash-cp.bin"
    img = tmp / "f128k.bin"
    img.write_bytes(os.urandom(size))
    t_stage, t_repl, t_cp, t_floor = [], [], [], []
    with pico.PicoSim(fw, rom, flash=str(flash)) as sim:
        repl = sim.repl_path
        for i in range(rounds):
            t0 = time.monotonic()
            p = mpremote(repl, "fs", "cp", str(img), ":cp%d.bin" % i, timeout=300)
            t_cp.append(time.monotonic() - t0)
            assert p.returncode == 0, p.stderr
            t0 = time.monotonic()
            p = cli("stage", str(img), "--device", repl, "--to", ":/st%d" % i,
                    "--source-rev", "A", "--target-rev", "B", timeout=300)  # fmt: skip
            t_stage.append(time.monotonic() - t0)
            assert p.returncode == 0 and "via usb)" in p.stdout, p.stdout + p.stderr
            t0 = time.monotonic()
            p = cli("stage", str(img), "--device", repl, "--to", ":/sr%d" % i, "--via", "repl",
                    "--source-rev", "A", "--target-rev", "B", timeout=300)  # fmt: skip
            t_repl.append(time.monotonic() - t0)
            assert p.returncode == 0 and "via repl)" in p.stdout, p.stdout + p.stderr
            t_floor.append(stdin_floor(repl, img.read_bytes()))
    return min(t_stage), min(t_repl), min(t_cp), min(t_floor, key=lambda x: x[1])


HEADER = (
    "Measured by `bench/pico_bench.py` on the emulated Pico (MicroPython v1.28.0 rp2 "
    "firmware, rp2040js; emulated time = RP2040 cycles at 125 MHz; UART0's TX modelled "
    "as a PL011: 32-byte FIFO drained at the line rate, TX interrupt at its trigger "
    "level). Every figure is a whole update run by the app: the engine's Driver "
    "streaming from littlefs through `UartPort` on UART0, flow hw. A figure that could "
    "not be measured reads **no** (and why); the others are measured all the same:"
)


def figures(fw, rom, tmp):
    """(name, measure) of every figure; ``measure()`` -> (rows of (figure, value), True)."""
    got = {}

    def stream():
        rate, nbytes, _, fast = update_run(fw, rom, tmp, "fast")
        print("bridge (fast line):", fast)
        got["mult"] = mult = rate / LINE
        return [
            (
                "engine stream rate, modem never holding CTS, UART0 at 7,812,500 baud so the "
                "CPU is the limit (%d B, emulated `ticks_ms`)" % nbytes,
                "%d B/s = **%.1fx** the 921,600-baud line rate" % (rate, mult),
            )
        ], True

    def cpu():
        _, _, _, line = update_run(fw, rom, tmp, "line", tx_baud="line", baud=921600)
        print("bridge (921,600):", line)
        if not line.get("tx_ns"):
            raise SystemExit("the emulator counted no time with the line busy: %s" % line)
        busy = line["tx_busy_ns"] / line["tx_ns"]
        mult = got.get("mult")
        if mult:
            also = "1 - 1/%.1f = %.0f%%" % (mult, 100 * (1 - 1 / mult) if mult > 1 else 0)
        else:
            also = "figure 1, to compare, not measured"
        return [
            (
                "CPU left to the application while streaming at 921,600 baud (core asleep "
                "while the line was busy, counted by the emulator)",
                "**%.0f%%** (the engine used %.0f%%; %s)" % (100 * (1 - busy), 100 * busy, also),
            )
        ], True

    def lowest():
        _, _, lows, _ = update_run(fw, rom, tmp, "mem", probe=True)
        return [
            (
                "lowest `gc.mem_free()` during the whole update (no collect; sampled at every "
                "engine event / every chunk's first `port.write`)",
                "%d B / %d B (%d B after it)" % lows,
            )
        ], True

    def live():
        _, _, lows, _ = update_run(fw, rom, tmp, "live", probe=True, collect=True)
        return [
            (
                "lowest `gc.mem_free()` after a `gc.collect()` at every engine event (the "
                "live heap's low)",
                "%d B" % lows[0],
            )
        ], True

    def staging():
        s, r, c, f = stage_vs_cp(fw, rom, tmp)
        return [tuple(x.strip("| ").split(" | ")) for x in stage_rows(s, r, c, f, 2)], True

    return [
        ("1. engine stream rate", stream),
        ("2. CPU left to the application at 921,600 baud", cpu),
        ("3. lowest gc.mem_free() during the update", lowest),
        ("3. live heap's low", live),
        ("4. qfota stage vs mpremote fs cp", staging),
    ]


def main():
    fw, rom = find_fixtures()
    with tempfile.TemporaryDirectory() as d:
        results = measure(figures(fw, rom, Path(d)))
    rows = []
    for r in results:
        rows += r.value if r.value is not None else [(r.name, "**no**: not measured: " + r.why)]
    text = "\n".join([HEADER, "", "| figure | value |", "|---|---|"])
    text += "".join("\n| %s | %s |" % row for row in rows)
    print(text)
    if "--no-readme" not in sys.argv:
        write_readme(README, START, lambda t: replace_block(t, START, END, text))
    return exit_status(results, "pico_bench", "not measured")


def main_stage(rounds):
    """Figure 4 alone; rewrites its rows of the README block."""
    fw, rom = find_fixtures()
    with tempfile.TemporaryDirectory() as d:
        s, r, c, f = stage_vs_cp(fw, rom, Path(d), rounds=rounds)
    rows = stage_rows(s, r, c, f, rounds)
    print("\n".join(rows))
    if "--no-readme" not in sys.argv:
        body = README.read_text()
        head, rest = body.split(START, 1) if START in body else (body, "")
        block, tail = rest.split(END, 1) if END in rest else ("", "")
        lines = block.split("\n")
        at = [i for i, x in enumerate(lines) if x.startswith(("| `qfota stage`", "| floor of"))]
        if at:
            lines[at[0] : at[-1] + 1] = rows
            README.write_text(head + START + "\n".join(lines) + END + tail)
        else:
            print("README.md has no stage row in its %s block: not written" % START)


if __name__ == "__main__":
    if shutil.which("node") is None:
        raise SystemExit("node (>= 18) is needed for the emulated Pico")
    try:
        if "--stage" in sys.argv:
            n = sys.argv.index("--rounds") + 1 if "--rounds" in sys.argv else 0
            main_stage(int(sys.argv[n]) if n else 3)
        else:
            sys.exit(main())
    except pico.PicoError as exc:
        raise SystemExit("pico_bench: %s" % exc) from None
