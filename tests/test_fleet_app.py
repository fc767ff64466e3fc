"""The app in server mode (``firmware/main.py`` on the real MicroPython interpreter, the
unix board): ``fota/qfota.cfg`` names the server, ``fota/token`` holds the device's
token; the app polls gooseBit (127.0.0.1) through the simulated modem's HTTP commands,
downloads the SWU, updates the modem from the image inside, and reports."""

import hashlib
import os

import pytest
from app_rig import APP_TIMEOUTS, SOURCE, TARGET, AppRig

from qfota_tools.commands.swu import build

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def rollout(goosebit, tmp_path_factory):
    d = tmp_path_factory.mktemp("swu")
    image = d / "EC200T_A07_A08.bin"
    image.write_bytes(os.urandom(30_001))
    out = d / "A07_A08.swu"
    build(str(image), "EC200T", SOURCE, TARGET, str(out))
    status, doc = goosebit.api.upload(out.read_bytes(), out.name)
    assert status == 200, doc
    goosebit.api.rollout("A07 to A08", "app", doc["id"])
    return goosebit, image.read_bytes()


def _rig(tmp_path, gb, image, dev, **server):
    token = "tok-" + dev + "-0123456789"
    gb.api.put_devices([dev], auth_token=token, feed="app")
    rig = AppRig(tmp_path, image_size=100)
    rig.model.expect_md5 = hashlib.md5(image).hexdigest()
    os.remove(rig.image + ".json")  # no staged image: the server decides
    with open(os.path.join(rig.fota, "token"), "w") as f:
        f.write(token + "\n")
    cfg = {"url": gb.base, "controller": dev, "token_file": "token", "once": True}
    cfg["sleep_min_ms"] = 1000
    cfg.update(server)
    rig.config({"timeouts": APP_TIMEOUTS, "min_voltage_mv": 3500, "server": cfg})
    return rig, token


def test_app_server_mode_updates_and_reports(rollout, tmp_path):
    gb, image = rollout
    rig, token = _rig(tmp_path, gb, image, "app-ok")
    with rig:
        proc = rig.run(timeout=120)
    out = proc.stdout_text
    assert proc.returncode == 0, out
    assert rig.model.revision == TARGET, out
    assert "reported: action" in out and token not in out, out
    seen = gb.api.devices()["app-ok"]
    assert seen["last_state"] == "Finished" and seen["sw_version"] == TARGET, seen


def test_app_server_mode_without_its_token_file_refused(rollout, tmp_path):
    gb, image = rollout
    rig, token = _rig(tmp_path, gb, image, "app-notoken", token_file="missing")
    with rig:
        proc = rig.run(timeout=60)
    assert proc.returncode == 2, proc.stdout_text
    assert "cannot read fota/missing" in proc.stdout_text
    assert rig.commands() == []  # nothing reached the modem


def test_app_server_mode_reset_mid_upgrade_reports_once(rollout, tmp_path):
    gb, image = rollout
    rig, token = _rig(tmp_path, gb, image, "app-reset")
    with rig:
        # SIGKILL as the modem upgrades: no cleanup, as a reset of the MCU
        assert rig.run(kill_when=lambda m: m._state == "busy", timeout=120) is None
        proc = rig.run(timeout=120)
    first, out = rig.outputs
    assert proc.returncode == 0, out
    assert "result:" not in first and "following the modem after a reset" in out, out
    assert out.count("result: action") == 1 and rig.model.revision == TARGET, out
    seen = gb.api.devices()["app-reset"]
    assert seen["last_state"] == "Finished" and seen["sw_version"] == TARGET, seen
