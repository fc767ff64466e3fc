"""Server mode the way a device runs it: ``qfota.fleet`` over the modem's own HTTP AT
commands (``qfota.httpdrv.ModemTransport``) and the FILE-mode update over the same port,
against gooseBit on 127.0.0.1 and the EC200 simulator (its HTTP commands fetch for real).
On CPython (pyserial) and on the real MicroPython interpreter (``qfota.tty``)."""

import json

import pytest
from conftest import run_micropython
from goosebit_rig import device, fleet_modem, fleet_of, publish, until_reported

from qfota import fleet
from qfota.httpdrv import ModemTransport
from qfota_tools.simulators.ec200 import model as sim_model
from qfota_tools.simulators.ec200.pty_sim import PtySimulator
from qfota_tools.transport.serial_port import SerialPort

A07 = "EC200TCNDAR02A07M16_01.001.01.001"
A08 = "EC200TCNDAR02A08M16_01.001.01.001"
WAITS = sim_model.wait_ms(sim_model.FILE_WAITS)

pytestmark = pytest.mark.timeout(300)

# What the device runs (MicroPython): the same calls as the CPython test below.
DEVICE = """
import json, os, time
from qfota import fleet
from qfota.httpdrv import ModemTransport
from qfota.tty import TtyPort
a = json.loads(os.getenv("QFOTA_FLEET"))
port = TtyPort(a["tty"], 921600, True)
f = fleet.Fleet(ModemTransport(port), fleet.DriverUpdater(port, timeouts=a["waits"]),
                a["base"], "DEFAULT", a["dev"], token=a["token"], folder=a["folder"],
                room=1 << 22, sleep_min=1000, range_size=8192,
                on_event=lambda n, t: print(json.dumps([n, t])))
f.start()
t0 = time.time()
while time.time() - t0 < 120 and f.journal.data.get("state") != fleet.REPORTED:
    time.sleep_ms(min(f.step(), 500))
f.step()
port.close()
print(json.dumps(["state", f.journal.data.get("state")]))
"""


@pytest.fixture(scope="module")
def rollout(goosebit, tmp_path_factory):
    image = publish(goosebit, tmp_path_factory.mktemp("swu"), 40_001, [("A07 to A08", "modem")])
    return goosebit, image


def test_cpython_through_the_modems_http(rollout, tmp_path):
    gb, image = rollout
    token = device(gb, "modem-cpython", "modem")
    m = fleet_modem(image, seed=7)
    said = []
    with PtySimulator(m) as sim:
        port = SerialPort(sim.path, 921_600)
        try:
            upd = fleet.DriverUpdater(port, timeouts=WAITS)
            f = fleet_of(gb, ModemTransport(port), upd, "modem-cpython", token, tmp_path, said)
            f.start()
            until_reported(f, 120)
        finally:
            port.close()
        log = list(sim.http_log)
    assert f.journal.data.get("state") == fleet.REPORTED, said
    seen = gb.api.devices()["modem-cpython"]
    assert seen["last_state"] == "Finished" and seen["sw_version"] == A08, seen
    assert m.revision == A08
    ranges = [e for e in log if e["status"] == 206]
    assert ranges, log
    assert token not in repr(log) and token not in repr(said)


def test_micropython_through_the_modems_http(rollout, tmp_path, micropython, monkeypatch):
    gb, image = rollout
    token = device(gb, "modem-mpy", "modem")
    m = fleet_modem(image, seed=7)
    script = tmp_path / "device.py"
    script.write_text(DEVICE)
    with PtySimulator(m) as sim:
        args = dict(tty=sim.path, waits=WAITS, base=gb.base, dev="modem-mpy", token=token)
        args["folder"] = str(tmp_path / "fleet")
        monkeypatch.setenv("QFOTA_FLEET", json.dumps(args))
        proc = run_micropython([str(script)], timeout=200)
    lines = [json.loads(x) for x in proc.stdout.splitlines() if x.startswith("[")]
    assert ["state", fleet.REPORTED] in lines, proc.stdout + proc.stderr
    assert [n for n, _t in lines].count("result") == 1, lines
    seen = gb.api.devices()["modem-mpy"]
    assert seen["last_state"] == "Finished" and seen["sw_version"] == A08, seen
    assert m.revision == A08
    assert token not in proc.stdout + proc.stderr
