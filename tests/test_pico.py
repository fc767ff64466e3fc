"""qfota on the real MicroPython rp2 firmware, on an emulated Pico (``qfota pico-sim``).

The real mpremote deploys and stages over the emulated USB-CDC REPL; the board's own
``main.py`` runs the application, which updates the EC200 model over UART0. With
``CI=true`` missing fixtures fail the run; elsewhere these tests are skipped.
"""

import hashlib
import json
import shutil
import time

import pytest
from pico_rig import (
    NEW_REV,
    OLD_REV,
    cli,
    deployed_flash,
    fixtures_or_skip,
    modem,
    mpremote,
    usb_held_ms,
)
from pico_rig import read_console as console

from qfota_tools.simulators import pico

pytestmark = pytest.mark.timeout(240)

FW, ROM = fixtures_or_skip()

REVS = ("--source-rev", OLD_REV, "--target-rev", NEW_REV)


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A flash with the engine deployed (``--mpy``) once per worker; tests copy it."""
    path = tmp_path_factory.mktemp("pico") / "deployed.bin"
    proc = deployed_flash(path, FW, ROM)
    assert proc.returncode == 0, proc.stderr
    assert "deployed board rp2" in proc.stdout
    return path


@pytest.fixture
def flash(template, tmp_path):
    path = tmp_path / "flash.bin"
    shutil.copy(template, path)
    return path


def image(tmp_path, size, seed=1):
    data = hashlib.sha256(b"%d" % seed).digest() * (size // 32)
    data = bytes(b ^ (i * 7 & 0xFF) for i, b in enumerate(data))
    path = tmp_path / "ec200.bin"
    path.write_bytes(data)
    return path, hashlib.md5(data).hexdigest()


def stage_to_flash(repl, img, *extra):
    proc = cli("stage", str(img), "--device", repl, "--to", ":/fota", *REVS, *extra)
    assert proc.returncode == 0, proc.stderr
    assert "sha256 verified on the device" in proc.stdout
    return proc


def test_reset_keeps_files_and_reports_watchdog(flash):
    """``mpremote reset`` (machine.reset) gives a fresh RP2040 on the same flash."""
    with pico.PicoSim(FW, ROM, flash=str(flash)) as sim:
        repl = sim.repl_path
        assert mpremote(repl, "exec", "open('/mark','w').write('x')").returncode == 0
        assert mpremote(repl, "reset").returncode == 0
        assert sim.wait_event("reset watchdog", 10)
        out = mpremote(
            repl, "exec", "import machine,os;print(machine.reset_cause(),'mark' in os.listdir())"
        )
        assert out.stdout.split() == ["3", "True"], out


def _update(flash, tmp_path, flow, size, line=921600):
    img, md5 = image(tmp_path, size)
    m = modem(md5, flow_baud=line)
    sim = pico.PicoSim(FW, ROM, flash=str(flash), modem=m)
    repl, _ = sim.start()
    try:
        # Both ways to copy, each checked by the modem's md5 of what the app then sent:
        # the board's USB taken over (auto on rp2) and frames through the REPL.
        via = "usb" if flow == "hw" else "repl"
        proc = stage_to_flash(repl, img, *(("--via", "repl") if via == "repl" else ()))
        assert "via %s)" % via in proc.stdout, proc.stdout
        if flow == "none":
            cfg = tmp_path / "qfota.cfg"
            cfg.write_text(json.dumps({"flow": "none"}))
            assert mpremote(repl, "fs", "cp", str(cfg), ":/fota/qfota.cfg").returncode == 0
        assert mpremote(repl, "reset").returncode == 0  # main.py runs the app at boot
        text = console(repl, b"qfota: done", 150)
    finally:
        sim.stop()
    return sim, m, text


def test_app_updates_modem_over_uart0_flow_hw(flash, tmp_path):
    # A modem line at 115200 baud: slower than the board writes, so its CTS must hold it.
    sim, m, text = _update(flash, tmp_path, "hw", 40_000, line=115200)
    assert "qfota: done" in text, text
    assert m.revision == NEW_REV and m.updates_completed == 1 and m.md5_ok
    assert "AT+IFC=2,2" in m.commands and m.overflow_bytes == 0
    # The modem's CTS held the board's writer: bytes waited for it, up to the window
    # the stand-in allows, and the writer paused (no byte lost, nothing overran).
    assert sim.held_ms > 1000, sim.held_ms
    assert sim.stats()["cts_held_reads"] > 100, sim.events[-1]
    assert sim.max_in_flight >= sim.cts_window, sim.max_in_flight
    assert sim.max_in_flight < sim.cts_window + 4096 + 64


def test_app_updates_modem_over_uart0_flow_none(flash, tmp_path):
    sim, m, text = _update(flash, tmp_path, "none", 24_000)
    assert "qfota: done" in text, text
    assert m.revision == NEW_REV and m.updates_completed == 1 and m.md5_ok
    # Paced: nothing lost in the modem's 1 KiB buffer, though nothing ever held the writer.
    assert "AT+IFC=2,2" not in m.commands and m.overflow_bytes == 0
    assert sim.stats()["cts_held_reads"] == 0, sim.events[-1]


def test_power_cut_mid_transfer_resumes_from_journal(flash, tmp_path):
    size = 128_000
    img, md5 = image(tmp_path, size, seed=2)
    m = modem(md5)
    sim = pico.PicoSim(FW, ROM, flash=str(flash), modem=m)
    repl, _ = sim.start()
    try:
        stage_to_flash(repl, img)
        assert mpremote(repl, "reset").returncode == 0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with sim.lock:
                got = len(m.received)
            if got >= size // 3:
                break
            time.sleep(0.01)
        assert size // 3 <= got < size, got
    finally:
        sim.power_cut()  # the MCU loses power in the middle of the transfer
    # What the relay still has for the emulator (the modem's bytes, their acks) is
    # dropped, not a BrokenPipeError that ends the relay's thread with a traceback.
    sim._send(b"U", b"OK\r\n")
    with sim.lock:
        assert m.updates_completed == 0
    sim2 = pico.PicoSim(FW, ROM, flash=str(flash), modem=m)
    repl, _ = sim2.start()
    try:
        text = console(repl, b"qfota: done", 150)
    finally:
        sim2.stop()
    assert "qfota: done" in text, text
    assert m.revision == NEW_REV and m.updates_completed == 1 and m.md5_ok, m.history
    # The half-sent transfer ended on the modem (quiet line: FILEEND with an error) before
    # the board began the next one.
    starts = [i for i, h in enumerate(m.history) if h.startswith("FILESTART")]
    assert len(starts) == 2, m.history
    assert any(h.startswith("FILEEND") and h != "FILEEND 0" for h in m.history[: starts[1]])
    assert "resum" in text.lower() or "journal" in text.lower() or "recover" in text.lower()


def test_image_with_wrong_hash_refused_on_device(flash, tmp_path):
    img, md5 = image(tmp_path, 20_000, seed=3)
    m = modem(md5)
    with pico.PicoSim(FW, ROM, flash=str(flash), modem=m) as sim:
        repl = sim.repl_path
        stage_to_flash(repl, img)
        flip = "f=open('/fota/ec200.bin','r+b');f.seek(1000);b=f.read(1);f.seek(1000);f.write(bytes([b[0]^1]));f.close()"
        assert mpremote(repl, "exec", flip).returncode == 0
        assert mpremote(repl, "reset").returncode == 0
        text = console(repl, b">>> ", 60)
    assert "refused" in text and "sha256" in text, text
    with sim.lock:
        assert not any("QFOTADL" in c for c in m.commands), m.commands
        assert len(m.received) == 0 and m.revision == OLD_REV


@pytest.mark.parametrize("dtr", [True, False], ids=["host-drops-dtr", "no-dtr"])
def test_stage_over_usb_interrupted_then_resumed(flash, tmp_path, dtr):
    """Ctrl-C in the middle of a copy over the board's USB: the board gives its USB back to
    the REPL by itself, at once when the closed port's DTR drops (as Linux's cdc_acm sends
    it), else after USB_WAIT; what it wrote stays as the part file, and the next run
    resumes after it."""
    from qfota_tools.commands import stage
    from qfota_tools.transport import remote

    img, _ = image(tmp_path, 300_000, seed=4)
    data = img.read_bytes()

    def interrupt(done, total):
        if done >= total // 2:
            raise KeyboardInterrupt

    with pico.PicoSim(FW, ROM, flash=str(flash)) as sim:
        t = remote.connect(sim.repl_path)
        try:
            with pytest.raises(KeyboardInterrupt):
                stage.stage(t, str(img), "/fota", OLD_REV, NEW_REV, progress=interrupt)
        finally:
            remote.close(t)
        t0, seen = time.monotonic(), len(sim.events)
        if dtr:
            sim.line_state(False)
        # Bounded: the receiver's wait for more data, then its soft reset, which brings
        # the built-in CDC (and a fresh USB enumeration) back. Its USB_WAIT runs on the
        # board's clock, which lags the host's on a loaded machine (stage.LOST_WAIT allows
        # for that): the host waits that long, the times are checked on the board's clock.
        assert sim.wait_event("usb-reconnect", stage.LOST_WAIT, start=seen), sim.events
        back = time.monotonic() - t0
        held = usb_held_ms(sim.events)
        # As a host opens the port once it has enumerated the board's CDC again.
        assert sim.wait_event("usb-connected", 30, start=seen), sim.events
        t = remote.connect(sim.repl_path)
        try:
            part = remote.call(t, "__import__('os').stat('/fota/ec200.bin.part')[6]")
            res = stage.stage(t, str(img), "/fota", OLD_REV, NEW_REV)
            listing = remote.call(t, "__import__('os').listdir('/fota')")
        finally:
            remote.close(t)
    assert back < stage.LOST_WAIT, back
    wait_ms = stage.USB_WAIT * 1000
    if dtr:  # at once
        assert held < wait_ms / 2, (held, sim.events)
    else:  # after its USB_WAIT of silence, and not much later
        assert wait_ms <= held < wait_ms + 10_000, (held, sim.events)
    assert 0 < part < len(data), part  # whatever came before the pause, written
    assert res.via == "usb" and res.resumed_from == part and res.sent == len(data) - part
    assert res.sha256 == hashlib.sha256(data).hexdigest()
    assert sorted(listing) == ["ec200.bin", "ec200.bin.json"], listing


def test_stage_over_usb_when_the_host_never_comes_back(flash, tmp_path, monkeypatch):
    """``--via usb``: the port does not come back (``await_byte`` gives up at once): the
    board's receiver takes nothing from whatever writes to the port instead (here the
    host's own Ctrl-C/Ctrl-A, looking for the REPL), gives the USB back by itself, and
    the part file is never made."""
    from qfota_tools.commands import stage
    from qfota_tools.transport import remote

    img, _ = image(tmp_path, 50_000, seed=5)
    monkeypatch.setattr(remote, "await_byte", lambda t, want, timeout: False)
    with pico.PicoSim(FW, ROM, flash=str(flash)) as sim:
        t = remote.connect(sim.repl_path)
        try:
            with pytest.raises(stage.StageError, match="did not come back.*--via repl"):
                stage.stage(t, str(img), "/fota", OLD_REV, NEW_REV, via="usb")
            listing = remote.call(t, "__import__('os').listdir('/fota')")
        finally:
            remote.close(t)
    assert listing == [], listing
    # The stray bytes ended the receiver at once, not after its USB_WAIT: the board's
    # whole run (its clock, whatever the host's load) was shorter than that wait.
    ran = sim.stats()["emulated_ms"]
    assert ran < stage.USB_WAIT * 1000, (ran, sim.events)


def test_stage_auto_goes_on_through_the_repl_when_usb_does_not_come_back(tmp_path):
    """A host that never sees the board's USB come back as the data link (the emulated
    host misses the receiver's re-connect; it sees the built-in CDC's return after the
    receiver's soft reset): ``--via usb`` fails as before with the part file untouched;
    ``auto`` goes on through the REPL in the same run, resumed from that part, saying so
    in one line, and the image is verified on the board."""
    from qfota_tools.commands import stage
    from qfota_tools.transport import remote

    img, _ = image(tmp_path, 60_000, seed=6)
    data = img.read_bytes()
    head = tmp_path / "head.bin"
    head.write_bytes(data[:20_000])
    with pico.PicoSim(FW, ROM, flash=str(tmp_path / "flash.bin"), miss_reconnects=2) as sim:
        repl = sim.repl_path
        assert mpremote(repl, "mkdir", ":/fota").returncode == 0
        assert mpremote(repl, "fs", "cp", str(head), ":/fota/ec200.bin.part").returncode == 0
        asked = cli("stage", str(img), "--device", repl, "--to", ":/fota", *REVS,
                    "--via", "usb")  # fmt: skip
        t0 = time.monotonic()
        auto = cli("stage", str(img), "--device", repl, "--to", ":/fota", *REVS)
        took = time.monotonic() - t0
        t = remote.connect(repl)
        try:
            listing = remote.call(t, "__import__('os').listdir('/fota')")
            whole = "ec200.bin" in listing
            on_board = remote.call(t, DEVICE_HASH % "/fota/ec200.bin") if whole else None
        finally:
            remote.close(t)
        events = list(sim.events)
    assert asked.returncode == 1, asked.stdout + asked.stderr
    assert "did not come back as the data link" in asked.stderr, asked.stderr
    assert "use --via repl" in asked.stderr, asked.stderr
    assert auto.returncode == 0, auto.stdout + auto.stderr
    notes = auto.stderr.strip().splitlines()
    assert len(notes) == 1, auto.stderr
    assert "did not come back as the data link within 10 s" in notes[0], notes
    assert "going on through the REPL, resuming at 20000" in notes[0], notes
    assert "(resumed at 20000)" in auto.stdout and "via repl)" in auto.stdout, auto.stdout
    assert "sha256 verified on the device" in auto.stdout, auto.stdout
    assert on_board == hashlib.sha256(data).hexdigest()
    assert sorted(listing) == ["ec200.bin", "ec200.bin.json"], listing
    # Each run's receiver re-connected unseen, and each soft reset brought the REPL back.
    seen = [e.split()[0] for e in events if e.startswith(("usb-missed", "usb-reconnect"))]
    assert seen == ["usb-missed", "usb-reconnect"] * 2, events
    assert took < stage.USB_WAIT + stage.LOST_WAIT + 60, took  # bounded, on a busy machine


def test_a_reattached_link_waits_out_a_board_held_still(tmp_path):
    """After ``remote.reattach`` (the port opened again, as after a USB stage), a board that
    is slow to take a raw paste (held still here, as a loaded host holds the emulator)
    is waited for, as on a port ``remote.connect`` opened: the reopened port's short
    polling timeout does not end the next exec (it did: "unexpected read during raw
    paste: b''", seen under load)."""
    import signal
    import threading

    from qfota_tools.transport import remote

    with pico.PicoSim(FW, ROM, flash=str(tmp_path / "flash.bin")) as sim:
        t = remote.connect(sim.repl_path)
        try:
            assert remote.reattach(t, 30)
            sim._proc.send_signal(signal.SIGSTOP)
            resume = threading.Timer(1.5, sim._proc.send_signal, (signal.SIGCONT,))
            resume.start()
            try:
                # several raw-paste windows of code, the first sent while the board is held
                got = remote.call(t, "len(_qf_x)", prelude="_qf_x = %r\n" % ("x" * 2000))
            finally:
                resume.join()
                sim._proc.send_signal(signal.SIGCONT)
        finally:
            remote.close(t)
    assert got == 2000


DEVICE_HASH = (
    "__import__('binascii').hexlify(__import__('hashlib').sha256("
    "open(%r, 'rb').read()).digest()).decode()"
)


def test_pico_sim_refuses_a_negative_miss_count():
    proc = cli("pico-sim", "--miss-reconnects", "-1", timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.strip() == "qfota pico-sim: --miss-reconnects must be 0 or more: -1"
