"""Figures on the emulated STM32F405 (QEMU netduinoplus2, real MicroPython stm32 firmware),
written into README.md between ``<!-- bench-stm32:start -->`` and ``<!-- bench-stm32:end -->``.

    python bench/stm32_bench.py [--no-readme]

QEMU is not cycle-accurate: every time here is wall time on the host that ran it, not a
measure of a real STM32F405. One emulator per figure; each starts from a fresh 64 KiB RAM
filesystem:

1. ``qfota deploy --board stm32 --mpy``: wall seconds, and what the deploy reports on the
   board (files, bytes, free space).
2. ``qfota stage`` (``--via repl``, the REPL is USART1) of the test image: wall seconds.
3. A whole update by the app (``main.py`` after a soft reset) over ``machine.UART(2)`` to
   the EC200 model (FAST timing), flow hw and flow none: wall seconds from the soft reset
   to ``qfota: done``, and the app's own "sent N bytes in T s" line. The image is the
   largest the tests use (``stm32_rig.IMAGE``): 16 KB does not fit beside the deployed
   engine. With flow none, also the pacing as the modem saw it (``Stm32Sim.package``):
   the package's span and average rate.
"""

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from stm32_rig import IMAGE, NEW_REV, OLD_REV, cli, find_firmware, image, modem, mpremote, run_main  # noqa: E402

from qfota_tools.simulators import stm32  # noqa: E402

README = ROOT / "README.md"
START, END = "<!-- bench-stm32:start -->", "<!-- bench-stm32:end -->"
REVS = ("--source-rev", OLD_REV, "--target-rev", NEW_REV)


def _timed(fn, *args, **kw):
    t = time.monotonic()
    out = fn(*args, **kw)
    return out, time.monotonic() - t


def _ok(proc):
    if proc.returncode != 0:
        raise RuntimeError((proc.stderr or proc.stdout).strip())
    return proc.stdout


def run_update(fw, tmp, flow):
    img, md5 = image(tmp)
    m = modem(md5)
    with stm32.Stm32Sim(fw, modem=m) as sim:
        repl = sim.repl_path
        deploy, t_deploy = _timed(
            cli, "deploy", "--board", "stm32", "--mpy", "--device", repl, timeout=300
        )
        report = _ok(deploy).splitlines()[-1]
        stage, t_stage = _timed(
            cli, "stage", str(img), "--device", repl, "--to", ":/fota", *REVS, timeout=300
        )
        _ok(stage)
        if flow == "none":
            cfg = Path(tmp) / "qfota.cfg"
            cfg.write_text(json.dumps({"flow": "none"}))
            _ok(mpremote(repl, "fs", "cp", str(cfg), ":/fota/qfota.cfg"))
        text, t_update = _timed(run_main, repl, b"qfota: done", 120)
        if "qfota: done" not in text:
            raise RuntimeError("no update (flow %s): %s" % (flow, text[-400:]))
        with sim.lock:
            if not (m.updates_completed == 1 and m.md5_ok and m.overflow_bytes == 0):
                raise RuntimeError("the modem was not updated cleanly: %s" % m.history[-5:])
        package = [(t, k) for t, k in sim.package if k]
    sent = re.search(r"sent \d+ bytes in [\d.]+ s \(\d+ B/s\)", text)
    return {
        "deploy_s": t_deploy,
        "report": report.replace("on the board: ", ""),
        "stage_s": t_stage,
        "update_s": t_update,
        "sent": sent.group(0) if sent else "?",
        "span_s": package[-1][0] - package[0][0],
        "bytes": package[-1][1] - package[0][1],
    }


def table(hw, none):
    rows = [
        (
            "`qfota deploy --board stm32 --mpy` (wall)",
            "%.1f s; on the board: %s" % (hw["deploy_s"], hw["report"]),
        ),
        (
            "`qfota stage` of a %d-byte image, `--via repl` over USART1 (wall)" % IMAGE,
            "%.1f s" % hw["stage_s"],
        ),
        (
            "whole update of a %d-byte image by the app, flow hw (QEMU has no CTS: never held), wall from the soft reset to `qfota: done`"
            % IMAGE,
            "%.1f s (the app: %s)" % (hw["update_s"], hw["sent"]),
        ),
        (
            "the same, flow none (paced); the package as the modem took it",
            "%.1f s (the app: %s); %d bytes over %.2f s after the first: %.0f B/s (limit 15000)"
            % (
                none["update_s"],
                none["sent"],
                none["bytes"],
                none["span_s"],
                none["bytes"] / none["span_s"],
            ),
        ),
    ]
    head = (
        "Measured by `bench/stm32_bench.py` on %s on the emulated STM32F405 (QEMU 7.2 "
        "netduinoplus2, MicroPython v1.28.0 stm32 port; **wall time on a shared host, not a "
        "measure of the real MCU**: QEMU is not cycle-accurate). A 16 KB image does not fit "
        "the emulated board's 64 KiB RAM filesystem beside the deployed engine; %d bytes do."
        % (time.strftime("%Y-%m-%d"), IMAGE)
    )
    lines = [head, "", "| figure | value |", "|---|---|"]
    lines += ["| %s | %s |" % r for r in rows]
    return "\n".join(lines)


def write_readme(text):
    body = README.read_text()
    if START not in body or END not in body:
        raise RuntimeError("README.md has no %s ... %s block" % (START, END))
    head, rest = body.split(START, 1)
    _old, tail = rest.split(END, 1)
    README.write_text(head + START + "\n" + text + "\n" + END + tail)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python bench/stm32_bench.py")
    parser.add_argument("--no-readme", action="store_true", help="print only")
    args = parser.parse_args(argv)
    try:
        fw = find_firmware()
    except stm32.Stm32Error as exc:
        print("stm32_bench: %s" % exc, file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="qfota-stm32-bench-") as tmp:
        hw = run_update(fw, tmp, "hw")
        none = run_update(fw, tmp, "none")
    text = table(hw, none)
    print(text)
    if not args.no_readme:
        write_readme(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
