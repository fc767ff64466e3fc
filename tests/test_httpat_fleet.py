"""Server mode as a device runs it: ``qfota.fleet`` over the modem's own HTTP commands
(``qfota.httpdrv.ModemTransport``) and the FILE-mode update (``qfota.driver``) on one port
to the EC200 simulator on a pty, against gooseBit on 127.0.0.1 (device auth ``strict``).
The package wrapped by ``qfota swu`` and uploaded through gooseBit's API, a rollout on a
feed; the device registers, is offered it, downloads it through the simulated modem's
``AT+QHTTP*`` in Range requests, updates that modem, and gooseBit shows how it ended.
"""

import hashlib
import os
import time

import pytest

from qfota import fleet
from qfota.httpat import EV_LOG
from qfota.httpdrv import ModemTransport
from qfota_tools.commands.swu import build
from qfota_tools.simulators.ec200 import model as sim_model
from qfota_tools.simulators.ec200.pty_sim import PtySimulator
from qfota_tools.transport.serial_port import SerialPort

A07 = "EC200TCNDAR02A07M16_01.001.01.001"
A08 = "EC200TCNDAR02A08M16_01.001.01.001"
IDLE_POLL_GOAL = 600  # bytes per idle poll, request and answer (issue 17)
HTTP_WAITS = {"response_ms": 15000, "read_ms": 15000, "command_ms": 3000, "pdp_ms": 5000}

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def rollout(goosebit, tmp_path_factory):
    d = tmp_path_factory.mktemp("swu")
    image = d / "EC200T_A07_A08.bin"
    image.write_bytes(os.urandom(90_001))  # two Range requests of the fleet's 64 KB
    out = d / "A07_A08.swu"
    build(str(image), "EC200T", A07, A08, str(out))
    status, doc = goosebit.api.upload(out.read_bytes(), "A07_A08.swu")
    assert status == 200, doc
    goosebit.api.rollout("A07 to A08", "modem-http", doc["id"])
    return goosebit, image.read_bytes()


def _run(gb, image, dev, tmp_path, faults=()):
    token = "tok-" + dev + "-0123456789"
    gb.api.put_devices([dev], auth_token=token, feed="modem-http")
    m = sim_model.Modem(
        revision=A07,
        new_revision=A08,
        expect_md5=hashlib.md5(image).hexdigest(),
        faults=faults,
        baud=921_600,
        timing=sim_model.FAST,  # with its URCs now and then between the lines
        seed=5,
    )
    said = []
    http_events = []
    waits = {k + "_ms": int(v * 1000) for k, v in sim_model.FILE_WAITS.items()}
    with PtySimulator(m) as sim:
        port = SerialPort(sim.path, 921_600)
        try:
            transport = ModemTransport(
                port,
                timeouts=HTTP_WAITS,
                rx=4096,
                trace=True,
                on_event=lambda ev, a, b: http_events.append((ev, a)),
            )
            f = fleet.Fleet(
                transport,
                fleet.DriverUpdater(port, timeouts=waits),  # the same port: one UART
                gb.base,
                "DEFAULT",
                dev,
                token=token,
                folder=str(tmp_path / "fleet"),
                room=1 << 22,
                on_event=lambda n, t: said.append((n, t)),
                sleep_min=1000,
            )
            f.start()
            end = time.monotonic() + 150
            while time.monotonic() < end:
                time.sleep(min(f.step(), 1000) / 1000)
                if f.journal.data.get("state") == fleet.REPORTED:
                    f.step()  # the configData after the update
                    break
            # then an idle poll (nothing offered): its bytes as the simulated modem counts
            # them, request and answer, headers included
            seen = len(sim.http_log)
            idle = None
            end = time.monotonic() + 30
            while idle is None and time.monotonic() < end:
                time.sleep(min(f.step(), 1000) / 1000)
                for e in sim.http_log[seen:]:
                    if e["method"] == "GET" and e["path"] == "/DEFAULT/controller/v1/" + dev:
                        idle = e
        finally:
            port.close()
        log = sim.http_log
    assert idle is not None and idle["status"] == 200, log[-3:]
    print("idle poll of %s: %d bytes up, %d down" % (dev, idle["up"], idle["down"]))
    assert idle["up"] + idle["down"] <= IDLE_POLL_GOAL, idle
    assert f.journal.data.get("state") == fleet.REPORTED, said
    assert token not in repr(said) and token not in repr(http_events) and token not in repr(log)
    return m, gb.api.devices()[dev], said, http_events, log


def test_fleet_over_the_modems_http_updates_the_modem_and_gooseBit_sees_it(rollout, tmp_path):
    gb, image = rollout
    m, seen, said, http_events, log = _run(gb, image, "modem-http-ok", tmp_path)
    assert m.revision == A08 and m.md5_ok  # the simulator's md5 of what it got: the image
    assert seen["last_state"] == "Finished", seen
    assert seen["sw_version"] == A08, seen
    assert [n for n, _t in said].count("result") == 1, said
    # The download went through the modem's HTTP commands, in Range requests (206)
    ranges = [e for e in log if e["status"] == 206]
    assert len(ranges) >= 2, log  # the SWU of 90,001 bytes and more in 64 KB ranges
    # The update rebooted the modem behind the transport's back: its next request found
    # the settings gone and set them up again (once), and went on.
    logs = [a for ev, a in http_events if ev == EV_LOG]
    assert any("setting up the modem's HTTP again" in x for x in logs), logs
    assert "Authorization: TargetToken ***" in repr(http_events)


def test_fleet_over_the_modems_http_reports_end_506(rollout, tmp_path):
    gb, image = rollout
    m, seen, said, _ev, _log = _run(gb, image, "modem-http-506", tmp_path, faults=("end-506",))
    assert m.revision == A07
    assert seen["last_state"] == "Error", seen
    text = gb.api.call("GET", "/api/v1/devices/modem-http-506/log")["log"]
    assert "END: 506: FOTA firmware MD5 check error" in text, text
