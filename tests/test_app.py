"""The on-device application (firmware/main.py -> qfota.app) on the MicroPython unix port,
against the EC200 simulator on a real pty; and its journal and checks on CPython.

Every run is bounded (``AppRig.run`` timeout); refusals must send nothing that starts an
update; a reset (SIGKILL of the interpreter) in any stage must end, on the next start,
in the target revision or in a stated failure, never in a blind restart of a transfer.
"""

import importlib.util
import json
import os

import machine
import pytest
from app_rig import SOURCE, TARGET, AppRig
from conftest import BOARDS

from qfota import app as A
from qfota.errors import FotaError

# ---------------------------------------------------------------- MicroPython + simulator


def _done(rig, proc):
    j = rig.journal()
    assert proc.returncode == 0, proc.stdout_text
    assert j["state"] == "done" and j["revision"] == TARGET, j
    assert rig.sim.inspect(lambda m: (m.revision, m.updates_completed, m.md5_ok)) == (
        TARGET,
        1,
        True,
    )
    return j


def test_happy_path_then_nothing_to_do(tmp_path, micropython):
    with AppRig(tmp_path) as rig:
        proc = rig.run()
        j = _done(rig, proc)
        assert j["attempts"] == 1 and rig.fotadl_sent() == 1
        with open(rig.image, "rb") as f:
            assert bytes(rig.model.received) == f.read()
        assert "done: %s -> %s" % (SOURCE, TARGET) in proc.stdout_text
        # Next boot: the modem runs the target, the app does nothing, successfully.
        n = len(rig.commands())
        proc = rig.run()
        assert proc.returncode == 0, proc.stdout_text
        assert "already runs %s" % TARGET in proc.stdout_text
        assert rig.journal()["state"] == "current"
        assert not any(c.upper().startswith("AT+QFOTADL") for c in rig.commands()[n:])


@pytest.mark.parametrize("damage", ["byte", "short", "md5"])
def test_damaged_image_refused_before_sending(tmp_path, micropython, damage):
    with AppRig(tmp_path) as rig:
        if damage == "byte":
            with open(rig.image, "r+b") as f:
                f.seek(5000)
                b = f.read(1)
                f.seek(5000)
                f.write(bytes([b[0] ^ 0x01]))
        elif damage == "short":
            with open(rig.image, "r+b") as f:
                f.truncate(40000)
        else:
            rig.write_manifest(md5="0" * 32)
        proc = rig.run()
        assert proc.returncode == 2, proc.stdout_text
        word = {"byte": "sha256", "short": "bytes", "md5": "md5"}[damage]
        assert "refused: IMAGE" in proc.stdout_text and word in proc.stdout_text
        assert rig.journal()["state"] == "refused"
        assert rig.commands() == []  # the port was never opened


def test_wrong_source_revision_refused(tmp_path, micropython):
    other = "EC200TCNDAR02A05M16_01.001.01.001"
    with AppRig(tmp_path, revision=other) as rig:
        proc = rig.run()
        assert proc.returncode == 2, proc.stdout_text
        j = rig.journal()
        assert j["state"] == "refused" and "REVISION" in j["error"] and other in j["error"], j
        assert not any(c.upper().startswith("AT+QFOTADL") for c in rig.commands())


def test_low_battery_refused(tmp_path, micropython):
    with AppRig(tmp_path, voltage_mv=3300) as rig:
        proc = rig.run()
        assert proc.returncode == 2, proc.stdout_text
        j = rig.journal()
        assert j["state"] == "refused" and "3300 mV below 3500 mV" in j["error"], j
        assert "AT+CBC" in rig.commands() and rig.fotadl_sent() == 0


def test_nothing_staged(tmp_path, micropython):
    with AppRig(tmp_path) as rig:
        os.remove(rig.image + ".json")
        proc = rig.run()
        assert proc.returncode == 0 and "nothing staged" in proc.stdout_text
        assert rig.commands() == []


def test_no_fota_folder_is_nothing_staged(tmp_path, micropython):
    """A card without fota/: said as nothing staged, not a traceback."""
    import shutil

    with AppRig(tmp_path) as rig:
        shutil.rmtree(rig.fota)
        proc = rig.run()
        out = proc.stdout_text
        assert proc.returncode == 0 and "nothing staged" in out and "Traceback" not in out, out
        assert rig.commands() == []


# Stages of a FILE-mode update as the journal records them. Before QFOTADL nothing has
# reached the modem: the next start updates afresh. From QFOTADL to FILESTART/STREAM the
# transfer is cut: the next start waits until the modem ends it (FILEEND,500) and answers
# AT, then transfers again. From FILEEND on the modem finishes by itself: the next start
# only follows it to the target revision.
BEFORE = ["PREFLIGHT", "POWER", "FLOWCTRL"]
CUT = ["QFOTADL", "FILESTART", "STREAM"]
AFTER = ["FILEEND", "START", "UPDATING", "REBOOT", "VERIFY"]


def _half_received(m):
    return m.fotadl is not None and len(m.received) >= m.fotadl["length"] // 2


@pytest.mark.parametrize("stage", BEFORE + CUT + ["mid-stream"] + AFTER)
def test_reset_in_stage_then_resume(tmp_path, micropython, stage):
    with AppRig(tmp_path) as rig:
        if stage == "mid-stream":  # the simulator's point: half the image arrived
            assert rig.run(kill_when=_half_received) is None
        else:
            assert rig.run(kill_at=stage) is None, "the app ended before stage %s" % stage
        proc = rig.run()
        j = _done(rig, proc)
        out = proc.stdout_text
        sent = rig.fotadl_sent()
        history = rig.model.history
        if stage in BEFORE:
            assert "resuming" not in out and sent == 1, out
            assert j["attempts"] == 1
            return
        if stage in AFTER:
            assert "resuming: the last update stopped at %s" % stage in out, out
            assert j["interrupted"] == stage
            assert sent == 1 and j["attempts"] == 1 and "FILEEND 500" not in history
            return
        assert "resuming: the last update stopped at " in out, out
        if stage == "QFOTADL" and sent == 1:
            return  # killed before the command went out: nothing to recover from
        # The cut transfer ended on the modem's side (FILEEND,500) before a second one
        # began, and no byte of the second one was lost to the first.
        assert sent == 2 and j["attempts"] == 2, (sent, j)
        assert "modem reported FILEEND 500" in out and j["recovered"] == "FILEEND 500", out
        starts = [i for i, h in enumerate(history) if h == "FILESTART"]
        assert len(starts) == 2 and starts[0] < history.index("FILEEND 500") < starts[1], history
        assert rig.model.image_bytes_before_filestart == 0


def test_reset_then_modem_upgrade_fails_stated(tmp_path, micropython):
    """The modem's upgrade fails after the MCU reset: the resume says so, and sends nothing."""
    with AppRig(tmp_path, faults=("end-504",)) as rig:
        assert rig.run(kill_at="UPDATING") is None
        proc = rig.run()
        assert proc.returncode == 3, proc.stdout_text
        j = rig.journal()
        assert j["state"] == "failed" and j["error"] == "END: 504: FOTA upgrade failed", j
        assert rig.fotadl_sent() == 1 and rig.model.revision == SOURCE


def test_reset_then_silent_modem_stated(tmp_path, micropython):
    """The modem never speaks again after its reboot: the resume times out, says so."""
    with AppRig(tmp_path, faults=("silent-after-reboot",)) as rig:
        assert rig.run(kill_at="UPDATING") is None
        proc = rig.run()
        assert proc.returncode == 4, proc.stdout_text
        j = rig.journal()
        assert j["state"] == "failed" and "timeout" in j["error"], j
        assert rig.fotadl_sent() == 1


def test_attempts_are_bounded(tmp_path, micropython):
    """A transfer that keeps failing is tried max_attempts times, then refused."""
    with AppRig(tmp_path, faults=("fileend-500",)) as rig:
        cfg = {"timeouts": dict(A.defaults()["timeouts"] or {}), "max_attempts": 2}
        from app_rig import APP_TIMEOUTS

        cfg["timeouts"].update(APP_TIMEOUTS)
        rig.config(cfg)
        proc = rig.run()
        assert proc.returncode == 3 and "FILEEND: 500" in proc.stdout_text, proc.stdout_text
        proc = rig.run()  # recover first (the failure was mid-transfer), then a 2nd transfer
        assert proc.returncode == 3 and "resuming" in proc.stdout_text, proc.stdout_text
        proc = rig.run()
        assert proc.returncode == 2 and "refused: ATTEMPTS" in proc.stdout_text, proc.stdout_text
        assert rig.fotadl_sent() == 2 and rig.journal()["attempts"] == 2


# ---------------------------------------------------------------- CPython: journal and checks


def test_journal_atomic_and_fallback(tmp_path):
    path = str(tmp_path / "j.json")
    j = A.Journal(path)
    assert j.load() == {} and not j.in_flight
    j.save(state="running", stage="STREAM")
    assert json.load(open(path)) == {"state": "running", "stage": "STREAM"}
    assert not os.path.exists(path + ".tmp")
    assert A.Journal(path).load()["stage"] == "STREAM"
    # FAT renames by removing the old file first: only the complete temp file is left.
    os.rename(path, path + ".tmp")
    k = A.Journal(path)
    assert k.load()["stage"] == "STREAM" and k.in_flight
    # A torn temp file next to a good journal is ignored.
    k.save(stage="UPDATING")
    with open(path + ".tmp", "w") as f:
        f.write('{"state": "runn')
    assert A.Journal(path).load()["stage"] == "UPDATING"


@pytest.mark.parametrize(
    "state,stage,in_flight",
    [
        ("running", "PREFLIGHT", False),
        ("running", "POWER", False),
        ("running", "FLOWCTRL", False),
        ("running", "QFOTADL", True),
        ("running", "STREAM", True),
        ("running", "VERIFY", True),
        ("failed", "FILEEND", True),
        ("failed", "RECOVER", True),
        ("failed", "", False),
        ("done", "DONE", False),
        ("refused", "PREFLIGHT", False),
        ("current", "", False),
    ],
)
def test_journal_in_flight(tmp_path, state, stage, in_flight):
    j = A.Journal(str(tmp_path / "j.json"))
    j.save(state=state, stage=stage)
    assert j.in_flight == in_flight


def test_manifest_and_hashes(tmp_path):
    import hashlib

    data = os.urandom(10_000)
    (tmp_path / "a.bin").write_bytes(data)
    m = {
        "file": "a.bin",
        "length": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "md5": hashlib.md5(data).hexdigest(),
        "source_revision": "A",
        "target_revision": "B",
    }
    (tmp_path / "a.bin.json").write_text(json.dumps(m))
    (tmp_path / "qfota.cfg").write_text("{}")
    (tmp_path / "a.bin.part").write_bytes(b"x")
    folder = str(tmp_path)
    assert A.file_hashes(folder + "/a.bin") == (len(data), m["sha256"], m["md5"])
    path = A.find_manifest(folder)
    assert path == folder + "/a.bin.json"
    assert A.verify_image(folder + "/a.bin", A.read_manifest(path)) == m["sha256"]
    (tmp_path / "b.bin").write_bytes(b"y")
    (tmp_path / "b.bin.json").write_text(json.dumps(dict(m, file="b.bin")))
    with pytest.raises(FotaError, match="2 images staged"):
        A.find_manifest(folder)
    assert A.find_manifest(folder, "a.bin") == path
    del m["target_revision"]
    (tmp_path / "a.bin.json").write_text(json.dumps(m))
    with pytest.raises(FotaError, match="no target_revision"):
        A.read_manifest(path)


# ---------------------------------------------------------------- CPython: board modules


def _board(name):
    spec = importlib.util.spec_from_file_location("board_" + name, BOARDS / (name + ".py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("name", ["rp2", "esp32", "stm32"])
def test_board_uart_flow_control(name):
    """Each board builds its UART with RTS/CTS (the fake machine.UART records the arguments)."""
    b = _board(name)
    for flow_hw in (True, False):
        port = b.open_port(flow_hw)
        uart = port.uart
        assert uart.baudrate == b.BAUD == 115200
        assert uart.flow == ((machine.UART.RTS | machine.UART.CTS) if flow_hw else 0)
        assert uart.timeout == getattr(b, "TIMEOUT_MS", 0)
        if name != "stm32":  # stm32: fixed pins per UART id
            assert uart.kw["tx"].id == b.TX and uart.kw["cts"].id == b.CTS
    assert b.JOURNAL_PATH.endswith(".json") and b.STORAGE == "/sd"


class _HeldUart:
    """An esp32 UART whose transmitter drains only when told to (CTS)."""

    def __init__(self):
        self.busy = False
        self.got = 0

    def txdone(self):
        return not self.busy

    def write(self, buf, off, n):
        self.got += n
        self.busy = True
        return n


def test_esp32_writes_never_block():
    b = _board("esp32")
    uart = _HeldUart()
    port = b.TxGatePort(uart)
    buf = bytearray(4096)
    assert port.write(buf, 0, 4096) == b.WRITE_MAX  # at most a quarter of the ring buffer
    assert port.write(buf, 0, 4096) == 0  # transmitter busy (CTS held): nothing, at once
    uart.busy = False
    assert port.write(buf, 100, 10) == 10 and uart.got == b.WRITE_MAX + 10


def test_uart_port_sleeps_until_the_transmit_buffer_should_be_empty(monkeypatch):
    # rp2: UartPort(txbuf, baud). With the ring buffer full, wait_writable sleeps until it
    # should be nearly drained at the line rate (capped by what the driver asks), then in
    # 1 ms steps until txdone(): CTS holding the line only makes the steps short.
    from qfota import uart as U

    now = [1000]
    slept = []
    monkeypatch.setattr(U, "ticks_ms", lambda: now[0])
    monkeypatch.setattr(
        U, "sleep_ms", lambda ms: slept.append(ms) or now.__setitem__(0, now[0] + ms)
    )
    uart = _HeldUart()
    port = U.UartPort(uart, txbuf=8192, baud=921600)
    buf = bytearray(8192)
    assert port.write(buf, 0, 8192) == 8192
    assert port.write(buf, 0, 1024) == 0  # no room until txdone()
    port.wait_writable(5)
    assert slept == [5]  # 8192 bytes take 88 ms at 921,600 baud: the driver's 5 ms, whole
    now[0] = 1000 + 87
    port.wait_writable(5)
    assert slept[-1] == 1  # nearly out: 1 ms steps until txdone()
    now[0] = 1000 + 500  # CTS held the line: the estimate ran out long ago
    port.wait_writable(5)
    assert slept[-1] == 1
    uart.busy = False
    assert port.write(buf, 0, 1024) == 1024  # txdone(): the whole buffer is free again
    slow = U.UartPort(_HeldUart(), txbuf=8192)  # no baud: 1 ms steps, as before
    slow.write(buf, 0, 8192)
    slow.wait_writable(5)
    assert slept[-1] == 1


def test_unknown_setting_on_a_board_without_server_mode(tmp_path, monkeypatch):
    """stm32 ships no qfota.serve nor qfota.servecfg: an unknown key in qfota.cfg is ignored with a line,
    not an ImportError."""
    import sys
    import types

    monkeypatch.setitem(sys.modules, "qfota.serve", None)  # import raises ImportError
    monkeypatch.setitem(sys.modules, "qfota.servecfg", None)
    lines = []
    board = types.SimpleNamespace(JOURNAL_PATH=str(tmp_path / "j.json"))
    app = A.App(board, out=lines.append)
    cfg = tmp_path / "qfota.cfg"
    cfg.write_text(json.dumps({"bogus": 1, "max_attempts": 5}))
    app._read_config(str(cfg))
    assert app.cfg["max_attempts"] == 5 and "bogus" not in app.cfg
    assert any("ignoring unknown setting 'bogus'" in ln for ln in lines), lines
