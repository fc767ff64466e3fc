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
