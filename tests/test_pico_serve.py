"""Server mode on the real rp2 firmware (issue 17's chain): the emulated Pico runs the
app (``main.py`` at boot, ``qfota.serve``), which reaches gooseBit on 127.0.0.1 through
the simulated modem's HTTP AT commands over UART0, is offered a package uploaded as a
user does (an SWU on a rollout), downloads it through the modem into its flash, updates
the modem in FILE mode, and gooseBit shows how it ended."""

import json
import os
import time

import pytest
from pico_rig import NEW_REV, OLD_REV, deployed_flash, fixtures_or_skip, mpremote
from pico_rig import read_console as console

from qfota_tools.commands.swu import build
from qfota_tools.simulators import pico
from qfota_tools.simulators.ec200.model import FAST, Modem

pytestmark = pytest.mark.timeout(420)

FW, ROM = fixtures_or_skip()

TOKEN = "pico-" + "0f1e2d3c4b5a6978"
FEED = "pico-field"
SIZE = 40_000


def _image(tmp_path):
    data = bytes((i * 193 + (i >> 9)) & 0xFF for i in range(SIZE))
    path = tmp_path / "EC200T_A07_A08.bin"
    path.write_bytes(data)
    import hashlib

    return path, hashlib.md5(data).hexdigest()


def _wait_state(gb, dev, states, revision, timeout):
    """gooseBit's view of ``dev`` once its state is one of ``states`` and the revision its
    configData reported is ``revision``; else the last view."""
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        seen = gb.api.devices().get(dev)
        if seen and seen["last_state"] in states and seen["hardware"]["revision"] == revision:
            return seen
        time.sleep(1)
    return seen


@pytest.mark.parametrize("fault", [None, "end-506"], ids=["updated", "end-506"])
def test_pico_in_server_mode_updates_its_modem_from_goosebit(goosebit, tmp_path, fault):
    gb = goosebit
    img, md5 = _image(tmp_path)
    swu = tmp_path / "pkg.swu"
    build(str(img), "EC200T", OLD_REV, NEW_REV, str(swu))
    dev = "pico-" + (fault or "ok")
    status, doc = gb.api.upload(swu.read_bytes(), "pkg.swu")
    if status == 200:
        gb.api.rollout("pico " + NEW_REV, FEED, doc["id"])
    else:  # the other case of this module uploaded it already
        assert status == 409, doc
    gb.api.put_devices([dev], auth_token=TOKEN, feed=FEED)

    flash = tmp_path / "flash.bin"
    proc = deployed_flash(flash, FW, ROM)
    assert proc.returncode == 0, proc.stderr
    cfg = tmp_path / "qfota.cfg"
    cfg.write_text(
        json.dumps({"server": gb.base, "controller": dev, "poll_min_s": 1, "chunk": 4096})
    )
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    m = Modem(revision=OLD_REV, new_revision=NEW_REV, expect_md5=md5, baud=921600,
              timing=FAST, faults=(fault,) if fault else ())  # fmt: skip
    sim = pico.PicoSim(FW, ROM, flash=str(flash), modem=m)
    repl, _ = sim.start()
    try:
        assert mpremote(repl, "fs", "mkdir", ":/fota").returncode in (0, 1)
        assert mpremote(repl, "fs", "cp", str(cfg), ":/fota/qfota.cfg").returncode == 0
        assert mpremote(repl, "fs", "cp", str(token), ":/qfota_token").returncode == 0
        assert mpremote(repl, "reset").returncode == 0  # main.py: server mode at boot
        want = ("Error",) if fault else ("Finished",)
        # What the board prints, up to its result (then its feedback goes out).
        text = console(repl, b"qfota: result: action", 300)
        text += console(repl, b"took the result", 60)
        seen = _wait_state(gb, dev, want, OLD_REV if fault else NEW_REV, 30)
        log = gb.api.log(dev)["log"] or ""
        with sim.lock:
            http = [dict(e) for e in m.http_log]
            rev, completed = m.revision, m.updates_completed
    finally:
        sim.stop()
    assert seen is not None and seen["last_state"] in want, (seen, text, http)
    if fault:
        assert rev == OLD_REV
        assert "failure: END: 506: FOTA firmware MD5 check error" in text, text
        assert "END: 506: FOTA firmware MD5 check error" in log, log  # what gooseBit shows
    else:
        assert rev == NEW_REV and completed == 1
        assert "success: revision EC200TCNDAR02A08M16" in text, text
        assert "revision EC200TCNDAR02A08M16" in log, log
    ranges = [e for e in http if e["status"] == 206]
    assert ranges and sum(e["down"] for e in ranges) > os.path.getsize(swu), http
    assert TOKEN not in repr(http)
