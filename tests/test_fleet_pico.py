"""The app in server mode on the emulated Pico (the real rp2 MicroPython firmware, the
packages deployed as .mpy): at boot ``main.py`` reads ``/fota/qfota.cfg`` and
``/fota/token``, polls gooseBit (127.0.0.1) through the simulated modem's HTTP commands on
UART0, downloads the SWU into the board's flash, updates the modem from the image inside,
and reports; gooseBit shows the device Finished on the new revision."""

import hashlib
import json
import os

import pytest
from pico_rig import NEW_REV, OLD_REV, deployed_flash, find_fixtures, mpremote
from pico_rig import modem as pico_modem
from pico_rig import read_console as console

from qfota_tools.commands.swu import build
from qfota_tools.simulators import pico

pytestmark = pytest.mark.timeout(600)

try:
    FW, ROM = find_fixtures()
except pico.PicoError as exc:
    if os.environ.get("CI") == "true":
        pytest.fail("emulated Pico: %s" % exc, pytrace=False)
    pytest.skip("emulated Pico: %s" % exc, allow_module_level=True)


def test_pico_app_server_mode_updates_from_goosebit(goosebit, tmp_path):
    gb = goosebit
    image = tmp_path / "EC200T_A07_A08.bin"
    image.write_bytes(os.urandom(20_001))
    out = tmp_path / "A07_A08.swu"
    build(str(image), "EC200T", OLD_REV, NEW_REV, str(out))
    status, doc = gb.api.upload(out.read_bytes(), out.name)
    assert status == 200, doc
    gb.api.rollout("pico", "pico", doc["id"])
    token = "tok-pico-0123456789"
    gb.api.put_devices(["pico-1"], auth_token=token, feed="pico")

    flash = tmp_path / "flash.bin"
    proc = deployed_flash(flash, FW, ROM)
    assert proc.returncode == 0, proc.stderr
    cfg = tmp_path / "qfota.cfg"
    server = {"url": gb.base, "controller": "pico-1", "token_file": "token", "once": True}
    server["sleep_min_ms"] = 1000
    cfg.write_text(json.dumps({"server": server}))
    tok = tmp_path / "token"
    tok.write_text(token + "\n")
    m = pico_modem(hashlib.md5(image.read_bytes()).hexdigest())
    with pico.PicoSim(FW, ROM, flash=str(flash), modem=m) as sim:
        repl = sim.repl_path
        mpremote(repl, "fs", "mkdir", ":/fota")
        assert mpremote(repl, "fs", "cp", str(cfg), ":/fota/qfota.cfg").returncode == 0
        assert mpremote(repl, "fs", "cp", str(tok), ":/fota/token").returncode == 0
        assert mpremote(repl, "reset").returncode == 0  # main.py runs the app at boot
        text = console(repl, b"reported: action", 400)
    assert "reported: action" in text, text
    assert m.revision == NEW_REV and m.md5_ok, text
    assert token not in text
    seen = gb.api.devices()["pico-1"]
    assert seen["last_state"] == "Finished" and seen["sw_version"] == NEW_REV, seen
