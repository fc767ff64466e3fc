"""Server mode as a device runs it: ``qfota.fleet`` over the modem's own HTTP commands
(``qfota.httpdrv.ModemTransport``) and the FILE-mode update (``qfota.driver``) on one port
to the EC200 simulator on a pty, against gooseBit on 127.0.0.1 (device auth ``strict``).
The package wrapped by ``qfota swu`` and uploaded through gooseBit's API, a rollout on a
feed; the device registers, is offered it, downloads it through the simulated modem's
``AT+QHTTP*`` in Range requests, updates that modem, and gooseBit shows how it ended.
"""

import time

import pytest
from goosebit_rig import device, fleet_modem, fleet_of, publish, until_reported

from qfota import fleet
from qfota.httpat import EV_LOG
from qfota.httpdrv import ModemTransport
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
    # 90,001 bytes: two Range requests of the fleet's 64 KB
    image = publish(
        goosebit, tmp_path_factory.mktemp("swu"), 90_001, [("A07 to A08", "modem-http")]
    )
    return goosebit, image


def _run(gb, image, dev, tmp_path, faults=()):
    token = device(gb, dev, "modem-http")
    m = fleet_modem(image, seed=5, faults=faults)  # FAST: URCs now and then between lines
    said = []
    http_events = []
    waits = sim_model.wait_ms(sim_model.FILE_WAITS)
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
            upd = fleet.DriverUpdater(port, timeouts=waits)  # the same port: one UART
            f = fleet_of(gb, transport, upd, dev, token, tmp_path / "fleet", said)
            f.start()
            until_reported(f, 150)
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
