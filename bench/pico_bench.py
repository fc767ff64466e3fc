"""Figures on the emulated Pico (real MicroPython rp2 firmware), written into README.md.

    python bench/pico_bench.py [--no-readme]

1. The engine's stream rate when the modem never holds CTS: the app's own "sent N bytes
   in T s" over a whole transfer from littlefs to UART0, in emulated ``ticks_ms`` (cycles
   at 125 MHz: RP2040 figures), as a multiple of the 921,600-baud line rate; the CPU share
   left to the application while streaming at line rate is 1 - 1/multiple.
2. ``gc.mem_free()`` right after a whole update run by the app (``qfota.app.main()``, as
   main.py runs it). Not yet the lowest value during the update: a 2 ms ``machine.Timer``
   probe made the emulated board miss the modem's answers (PREFLIGHT timeout), not
   investigated yet.
3. ``qfota stage`` against ``mpremote fs cp`` of the same 128 KB file, alternating, in the
   same run (wall seconds: both cross the same emulated USB-CDC link).
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

from pico_rig import NEW_REV, OLD_REV, cli, deployed_flash, find_fixtures, modem, mpremote  # noqa: E402

from qfota_tools.simulators import pico  # noqa: E402

LINE = 921600 // 10  # bytes/s at 921,600 baud, 8N1
README = ROOT / "README.md"
START, END = "<!-- bench-pico:start -->", "<!-- bench-pico:end -->"

PROBE = """
import gc, machine
gc.collect()
_lo = [gc.mem_free()]
def _probe(t):
    m = gc.mem_free()
    if m < _lo[0]:
        _lo[0] = m
from qfota import app
app.main()
_probe(0)
print('LOWEST_MEM_FREE', _lo[0])
"""


def update_figures(fw, rom, tmp, size=96_000):
    flash = tmp / "flash.bin"
    proc = deployed_flash(flash, fw, rom)
    if proc.returncode:
        raise SystemExit("deploy failed: " + proc.stderr.strip().splitlines()[-1])
    img = tmp / "ec200.bin"
    img.write_bytes(os.urandom(size))
    m = modem(None, flow_baud=100 * 921600)  # flow hw, a line that never holds CTS
    sim = pico.PicoSim(fw, rom, flash=str(flash), modem=m, cts_window=1 << 30)
    repl, _ = sim.start()
    try:
        st = cli("stage", str(img), "--device", repl, "--to", ":/fota",
                 "--source-rev", OLD_REV, "--target-rev", NEW_REV)  # fmt: skip
        if st.returncode:
            raise SystemExit("stage failed: " + st.stderr.strip())
        probe = tmp / "probe.py"
        probe.write_text(PROBE)
        out = mpremote(repl, "run", str(probe), timeout=300).stdout
    finally:
        sim.stop()
    sent = re.search(r"sent (\d+) bytes in ([\d.]+) s \((\d+) B/s\)", out)
    low = re.search(r"LOWEST_MEM_FREE (\d+)", out)
    if not (sent and low and m.revision == NEW_REV):
        raise SystemExit("the update did not complete:\n" + out[-2000:])
    rate = int(sent.group(3))
    return rate, int(low.group(1)), int(sent.group(1)), sim.stats()


def stage_vs_cp(fw, rom, tmp, rounds=2, size=128 * 1024):
    flash = tmp / "flash-cp.bin"
    img = tmp / "f128k.bin"
    img.write_bytes(os.urandom(size))
    t_stage, t_cp = [], []
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
            assert p.returncode == 0, p.stderr
    return min(t_stage), min(t_cp)


def main():
    fw, rom = find_fixtures()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        rate, low, nbytes, stats = update_figures(fw, rom, tmp)
        s, c = stage_vs_cp(fw, rom, tmp)
    mult = rate / LINE
    lines = [
        "Measured by `bench/pico_bench.py` on the emulated Pico (MicroPython v1.28.0 rp2 "
        "firmware, rp2040js; emulated time = RP2040 cycles at 125 MHz):",
        "",
        "| figure | value |",
        "|---|---|",
        "| engine stream rate, modem never holding CTS (%d B from littlefs to UART0, "
        "emulated `ticks_ms`) | %d B/s = **%.1fx** the 921,600-baud line rate |"
        % (nbytes, rate, mult),
        "| CPU left to the application while streaming at line rate | %.0f%% |"
        % (100 * (1 - 1 / mult) if mult > 1 else 0),
        "| `gc.mem_free()` right after a whole update run by the app (not the lowest "
        "during it: see the module's docstring) | %d B |" % low,
        "| `qfota stage` vs `mpremote fs cp`, 128 KB, best of 2 alternating (wall) | "
        "%.1f s vs %.1f s: **%.1fx** |" % (s, c, c / s),
    ]
    text = "\n".join(lines)
    print(text)
    print("bridge:", stats)
    if "--no-readme" not in sys.argv:
        body = README.read_text()
        if START in body and END in body:
            head, rest = body.split(START, 1)
            body = head + START + "\n" + text + "\n" + END + rest.split(END, 1)[1]
            README.write_text(body)
        else:
            print("README.md has no %s block: not written" % START)


if __name__ == "__main__":
    if shutil.which("node") is None:
        raise SystemExit("node (>= 18) is needed for the emulated Pico")
    try:
        main()
    except pico.PicoError as exc:
        raise SystemExit("pico_bench: %s" % exc) from None
