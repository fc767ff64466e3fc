"""A rig for the on-device application: MicroPython unix port + EC200 simulator on a pty.

    with AppRig(tmp_path, image_size=6000) as rig:
        proc = rig.run()                    # firmware/main.py on MicroPython, to its end
        assert proc.returncode == 0 and rig.model.revision == rig.target

``rig.run(kill_at="STREAM")`` kills the interpreter (SIGKILL, like a reset: no cleanup)
as soon as the journal records that stage, ``kill_when=fn`` as soon as ``fn(model)`` is
true; it returns None if it was killed. A pty buffers about 20 KB between the app and
the simulator, so the default image (48 KB) is larger: a kill mid-stream cuts it.
"""

import hashlib
import json
import os
import subprocess
import threading
import time

from conftest import BOARDS, FIRMWARE, MOCK, ROOT, micropython_path

from qfota_tools.simulators.ec200 import model as sim_model
from qfota_tools.simulators.ec200.pty_sim import PtySimulator

SOURCE = "EC200TCNDAR02A07M16_01.001.01.001"
TARGET = "EC200TCNDAR02A08M16_01.001.01.001"

# Modem timing: the simulator's FAST preset, slowed where a test must catch a stage.
TIMING = dict(sim_model.FAST)
TIMING.update(
    {
        "cmd_ms": 25,  # PREFLIGHT, POWER, FLOWCTRL, VERIFY last a few commands
        "filestart_ms": 150,
        # The modem's events after a kill must come once the app runs again, however slowly
        # a loaded machine restarts it: opening the tty raw flushes what came meanwhile (as
        # a reset MCU's UART loses it). A cut transfer ends (FILEEND,500) after this:
        "download_idle_ms": 2500,
        "fileend_ms": 150,
        "start_ms": 150,
        "update_step_ms": 25,  # 100 UPDATING URCs: 2.5 s
        "end_ms": 150,
        "reboot_delay_ms": 50,
        "reboot_ms": 150,
        "noise_ms": 0,
    }
)

# The application's waits (qfota.cfg): short, but above the simulator's delays.
APP_TIMEOUTS = {
    "probe_ms": 2000,
    "command_ms": 1500,
    "filestart_ms": 1500,
    # The pty buffers ~4 KB; also recover's quiet window, which must outlast the
    # simulator's download_idle_ms from a restart.
    "fileend_ms": 5000,
    "start_ms": 1500,
    "progress_ms": 1500,
    "end_ms": 2500,
    "reboot_ms": 1500,
    "settle_ms": 2000,
    "stall_ms": 1000,
}


class AppRig:
    def __init__(self, tmp, image_size=48000, baud=921600, revision=SOURCE, **modem_kw):
        self.tmp = str(tmp)
        self.storage = os.path.join(self.tmp, "sd")
        self.fota = os.path.join(self.storage, "fota")
        self.journal_path = os.path.join(self.tmp, "flash", "qfota_journal.json")
        os.makedirs(self.fota, exist_ok=True)
        os.makedirs(os.path.dirname(self.journal_path), exist_ok=True)
        self.source, self.target = SOURCE, TARGET
        self.image = os.path.join(self.fota, "EC200T_A07_A08.bin")
        data = bytes((i * 131 + (i >> 8) * 7) & 0xFF for i in range(image_size))
        with open(self.image, "wb") as f:
            f.write(data)
        self.manifest = {
            "file": os.path.basename(self.image),
            "length": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "md5": hashlib.md5(data).hexdigest(),
            "source_revision": SOURCE,
            "target_revision": TARGET,
        }
        self.write_manifest()
        self.config({"timeouts": APP_TIMEOUTS, "min_voltage_mv": 3500})
        self.model = sim_model.Modem(
            revision=revision,
            new_revision=TARGET,
            expect_md5=self.manifest["md5"],
            baud=baud,
            timing=modem_kw.pop("timing", TIMING),
            seed=modem_kw.pop("seed", 5),
            **modem_kw,
        )
        self.sim = PtySimulator(self.model)
        self.outputs = []

    def write_manifest(self, **changes):
        self.manifest.update(changes)
        with open(self.image + ".json", "w") as f:
            json.dump(self.manifest, f)

    def config(self, cfg):
        with open(os.path.join(self.fota, "qfota.cfg"), "w") as f:
            json.dump(cfg, f)

    def journal(self):
        try:
            with open(self.journal_path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def commands(self):
        return self.sim.inspect(lambda m: list(m.commands))

    def fotadl_sent(self):
        return sum(1 for c in self.commands() if c.upper().startswith('AT+QFOTADL="'))

    def __enter__(self):
        self.sim.start()
        return self

    def __exit__(self, *exc):
        self.sim.stop()

    def _env(self):
        env = dict(os.environ)
        env["MICROPYPATH"] = ":".join([str(FIRMWARE), str(BOARDS), str(MOCK), ".frozen"])
        env["QFOTA_PORT"] = self.sim.path
        env["QFOTA_STORAGE"] = self.storage
        env["QFOTA_JOURNAL"] = self.journal_path
        return env

    def run(self, kill_at=None, kill_when=None, timeout=30):
        """firmware/main.py to its end: the CompletedProcess-like result, or None if killed."""
        exe = micropython_path()
        assert exe, "no micropython interpreter in the venv: run `make venv`"
        proc = subprocess.Popen(
            [exe, str(FIRMWARE / "main.py")],
            env=self._env(),
            cwd=str(ROOT),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        killed = threading.Event()
        if kill_at is not None or kill_when is not None:
            args = (proc, kill_at, kill_when, killed)
            threading.Thread(target=self._killer, args=args, daemon=True).start()
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
            raise AssertionError("the app did not end within %d s:\n%s" % (timeout, out)) from None
        self.outputs.append(out)
        if killed.is_set():
            return None
        proc.stdout_text = out
        return proc

    def _killer(self, proc, stage, when, killed):
        while proc.poll() is None:
            if stage is not None:
                j = self.journal()
                hit = j.get("state") == "running" and j.get("stage") == stage
            else:
                hit = self.sim.inspect(when)
            if hit:
                killed.set()  # before the kill: run() may see the process end at once
                proc.kill()
                return
            time.sleep(0.001)
