"""gooseBit (a real DDI server on 127.0.0.1) reached through the simulated modem's HTTP AT
commands: the test writes the contract's commands over the simulator's pty, as an MCU
would, and checks what gooseBit's own management API says afterwards."""

import json

from at_http import AtModem

from qfota_tools.simulators.ec200.model import FAST, Modem
from qfota_tools.simulators.ec200.pty_sim import PtySimulator

REV = "EC200TCNDAR02A07M16_01.001.01.001"
TOKEN = "t0k-" + "9f8e7d6c5b4a3210"
IDLE_POLL_GOAL = 600  # bytes per idle poll, request and answer (issue 17)


def poll(h, gb, dev, token=TOKEN):
    """One DDI poll as the MCU makes it: as few header bytes as HTTP/1.1 allows."""
    return h.request("GET", gb.ddi_url(dev), [("Authorization", "TargetToken " + token)])


def test_smoke_register_through_the_simulated_modem(goosebit):
    gb = goosebit
    dev = "ec200-sim-1"
    gb.api.put_devices([dev], auth_token=TOKEN)  # strict: the device and its token first
    lines = []
    sim = PtySimulator(Modem(revision=REV, timing=dict(FAST, noise_ms=0), baud=921600))
    sim.log = lines.append
    sim.start()
    h = AtModem(sim.path)
    try:
        h.setup()
        # a wrong token: gooseBit refuses it, the modem reports the answer (err 0, 401)
        urc, _, body, err = poll(h, gb, dev, token="wrong")
        assert urc[:2] == [0, 401], (urc, body)
        # the first poll: registration wanted (a configData link)
        urc, _, body, err = poll(h, gb, dev)
        assert urc[:2] == [0, 200] and err == 0, (urc, body)
        doc = json.loads(body)
        href = doc["_links"]["configData"]["href"]
        assert href == gb.ddi_url(dev, "/configData")
        # configData with the modem's model and revision, as a PUT (requestheader 1)
        data = json.dumps(
            {"mode": "merge", "data": {"hw_boardname": "EC200T", "hw_revision": REV}}
        ).encode()
        urc, _, body, err = h.request(
            "PUT",
            href,
            [("Authorization", "TargetToken " + TOKEN), ("Content-Type", "application/json")],
            data,
        )
        assert urc[:2] == [0, 200] and json.loads(body)["success"] is True
        # gooseBit's own API lists the device with its attributes
        seen = gb.api.devices()[dev]
        assert seen["hardware"]["model"] == "EC200T"
        assert seen["hardware"]["revision"] == REV
        assert seen["last_state"] == "Registered"
        # an idle poll now: no links; its cellular bytes as the simulated modem counts them
        urc, _, body, err = poll(h, gb, dev)
        assert urc[:2] == [0, 200] and json.loads(body)["_links"] == {}
        entry = sim.http_log[-1]
        assert (entry["method"], entry["status"], entry["err"]) == ("GET", 200, 0)
        assert entry["path"] == "/DEFAULT/controller/v1/" + dev
        idle = entry["up"] + entry["down"]
        print("idle poll: %d bytes up, %d down, %d in all" % (entry["up"], entry["down"], idle))
        assert idle <= IDLE_POLL_GOAL, entry
        # the token never reached a log line or the request log
        assert TOKEN not in "\n".join(lines) and TOKEN not in repr(sim.http_log)
        assert [e["status"] for e in sim.http_log] == [401, 200, 200, 200]
    finally:
        h.close()
        sim.stop()
