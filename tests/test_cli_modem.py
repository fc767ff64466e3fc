"""``qfota info`` and ``qfota recover`` on a real pty against the simulator, both runtimes,
the default modem and one that answers only the note's commands."""

import fcntl
import hashlib
import json
import os
import signal
import subprocess
import sys
import termios

import pytest

from qfota_tools.simulators.ec200.model import FAST, Modem
from qfota_tools.simulators.ec200.pty_sim import PtySimulator

pytestmark = pytest.mark.timeout(120)
RUNTIMES = ("cpython", "micropython")
PACKAGE = bytes((i * 13 + i // 253) & 0xFF for i in range(150_000))


def qfota(*args, **kw):
    return subprocess.run(
        [sys.executable, "-m", "qfota_tools.cli", *args],
        capture_output=True,
        text=True,
        timeout=kw.pop("timeout", 60),
    )


@pytest.mark.parametrize("profile", ("default", "note"))
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_info_json_is_one_object_and_changes_nothing(runtime, profile):
    m = Modem(timing=FAST, seed=2, profile=profile)
    with PtySimulator(m) as sim:
        proc = qfota("info", "--port", sim.path, "--runtime", runtime, "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, lines
    d = json.loads(lines[0])
    assert d["revision"].startswith("EC200TCNDAR02A07M16"), d
    assert d["qfotadl_ranges"]["download_URC_max"] == "0,5-100", d
    if profile == "default":
        assert d["voltage_mv"] == m.voltage_mv and d["flow_control"] == "0,0", d
        assert d["pdp"] == [], d
    else:  # the note documents neither AT+CBC nor the read forms: "not answered"
        assert d["voltage_mv"] is None and d["pdp"] is None and d["flow_control"] is None, d
    # Reads only: no write form went out.
    writes = [c for c in m.commands if "=" in c and not c.endswith("?") and not c.endswith("=?")]
    assert writes == [], m.commands
    assert m.outcome is None


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_info_table(runtime):
    m = Modem(timing=FAST, seed=2)
    with PtySimulator(m) as sim:
        proc = qfota("info", "--port", sim.path, "--runtime", runtime)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = dict(line.split("  ", 1) for line in proc.stdout.splitlines() if "  " in line)
    assert set(rows) >= {"revision", "flow control", "supply voltage", "PDP contexts"}, rows
    assert "3900 mV" in proc.stdout or "%d mV" % m.voltage_mv in proc.stdout


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_recover_after_a_killed_update_waits_out_the_cut_transfer(runtime, tmp_path):
    image = tmp_path / "EC200T.bin"
    image.write_bytes(PACKAGE)
    m = Modem(expect_md5=hashlib.md5(PACKAGE).hexdigest(), timing=FAST, baud=115200, seed=6)
    with PtySimulator(m) as sim:
        cmd = [sys.executable, "-m", "qfota_tools.cli", "update", "--runtime", runtime]
        cmd += ["--port", sim.path, "--image", str(image)]
        # A killed process (SIGKILL: no last line, no journal update past the stage).
        first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, start_new_session=True)
        try:
            assert sim.wait_for(lambda mm: mm.package_bytes > 20_000, 30), "never streamed"
        finally:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait(10)
        # A killed qfota cannot clear the tty's exclusive flag; on a real device the last
        # close clears it, but the simulator keeps its end of the pty open: clear it here.
        fd = os.open(sim.path, os.O_RDWR | os.O_NOCTTY)
        try:
            fcntl.ioctl(fd, termios.TIOCNXCL)
        finally:
            os.close(fd)
        ncmd = len(sim.inspect(lambda mm: mm.commands))
        proc = qfota("recover", "--port", sim.path, "--runtime", runtime, "--timeout", "fileend=8")
        # Nothing was sent into the cut transfer: the first command after the kill is the
        # probe that follows the modem's FILEEND 500.
        after = sim.inspect(lambda mm: list(mm.commands[ncmd:]))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    assert last == "qfota: done: the modem runs %s (it reported FILEEND 500)" % m.revision, last
    assert after and after[0] == "AT", after
    assert "FILEEND 500" in m.history, m.history


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_recover_refuses_bad_input(runtime):
    proc = qfota("recover", "--port", "/dev/null", "--runtime", runtime, "--timeout", "fileend=0")
    assert proc.returncode == 2, proc.stdout
    assert (
        proc.stdout.strip()
        == "qfota: failed: PARAMS: --timeout fileend=0: fileend must be more than 0 s"
    )


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_recover_json_and_info_usb(runtime):
    m = Modem(timing=FAST, seed=8)
    with PtySimulator(m) as sim:
        rec = qfota(
            "recover", "--port", sim.path, "--runtime", runtime, "--json", "--timeout", "fileend=1"
        )
        info = qfota("info", "--port", sim.path, "--runtime", runtime, "--usb", "--json")
    assert rec.returncode == 0, rec.stdout + rec.stderr
    objs = [json.loads(line) for line in rec.stdout.splitlines()]
    result = objs[-1]
    assert result["event"] == "result" and result["result"] == "recovered", result
    assert result["exit"] == 0 and result["revision_after"] == m.revision, result
    assert info.returncode == 0, info.stdout + info.stderr
    d = json.loads(info.stdout)
    assert d["flow_control"] is not None, d  # read from AT+QCFG="usbifc", not AT+IFC?
    assert 'AT+QCFG="usbifc"' in m.commands and "AT+IFC?" not in m.commands, m.commands


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_recover_with_nothing_cut_says_so_at_once(runtime):
    # Nothing was cut on this port: recover probes at once (no quiet window of fileend),
    # says there is no update under way and reads the revision.
    m = Modem(timing=FAST, seed=3)
    with PtySimulator(m) as sim:
        proc = qfota("recover", "--port", sim.path, "--runtime", runtime, "--timeout", "fileend=40")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert any("no update under way" in line for line in lines), lines
    assert lines[-1] == "qfota: done: the modem runs %s" % m.revision, lines
    assert m.commands[0] == "AT", m.commands
    # Bounded by what the modem takes to answer, not by the 40 s window.
    assert "listening" not in proc.stdout


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_rerun_after_a_modem_reset_does_not_listen(runtime, tmp_path):
    # The modem resets in the middle of the transfer: the run sees its RDY and fails.
    # That transfer is over (the modem said so by rebooting): the rerun probes at once
    # instead of listening out fileend for a transfer that no longer exists.
    image = tmp_path / "EC200T.bin"
    image.write_bytes(PACKAGE)
    m = Modem(
        expect_md5=hashlib.md5(PACKAGE).hexdigest(),
        timing=dict(FAST, noise_ms=0),
        faults=("reset-mid-transfer",),
        seed=4,
    )
    with PtySimulator(m) as sim:
        args = ["--runtime", runtime, "--port", sim.path, "--image", str(image)]
        args += ["--timeout", "fileend=40"]
        first = qfota("update", *args)
        assert first.returncode == 1, first.stdout + first.stderr
        assert "rebooted (RDY) during the download" in first.stdout, first.stdout
        second = qfota("update", *args, timeout=40)
    assert "listening" not in second.stdout, second.stdout
    assert second.returncode == 0, second.stdout + second.stderr
    assert second.stdout.strip().splitlines()[-1].startswith("qfota: done: "), second.stdout


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_min_rssi_against_the_simulator(runtime, tmp_path):
    # --min-rssi: AT+CSQ goes out only when it is given; a weaker signal is refused
    # (SIGNAL, exit 2) before AT+QFOTADL; a strong enough one updates.
    image = tmp_path / "EC200T.bin"
    image.write_bytes(PACKAGE[:20_000])
    m = Modem(expect_md5=hashlib.md5(PACKAGE[:20_000]).hexdigest(), timing=FAST, seed=5)
    with PtySimulator(m) as sim:
        sim.inspect(lambda mm: setattr(mm, "rssi", 6))
        args = ["update", "--port", sim.path, "--runtime", runtime, "--image", str(image)]
        low = qfota(*args, "--min-rssi", "10")
        refused_cmds = sim.inspect(lambda mm: list(mm.commands))
        sim.inspect(lambda mm: setattr(mm, "rssi", 25))
        ok = qfota(*args, "--min-rssi", "10")
    assert low.returncode == 2, low.stdout + low.stderr
    assert low.stdout.strip().splitlines()[-1] == (
        "qfota: failed: SIGNAL: signal rssi 6 below 10 (AT+CSQ): a download on a weak "
        "signal may fail"
    ), low.stdout
    assert "AT+CSQ" in refused_cmds, refused_cmds
    assert not any(c.upper().startswith('AT+QFOTADL="') for c in refused_cmds), refused_cmds
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert m.outcome == "END 0"
