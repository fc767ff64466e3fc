"""Server mode against gooseBit (a real DDI server, installed by ``make goosebit``, on
127.0.0.1 with device auth ``strict``): the package wrapped by ``qfota swu`` and uploaded
through gooseBit's API as a user does, a rollout on a feed, and ``qfota.fleet`` with the
host transport updating the EC200 simulator through the real driver (FILE mode, the
image read out of the SWU). gooseBit's own API says how it ended.
"""

import hashlib
import time

import pytest
from goosebit_rig import device, fleet_modem, fleet_of, publish

from qfota import fleet
from qfota_tools.simulators.ec200 import model as sim_model
from qfota_tools.simulators.ec200.pty_sim import PtySimulator
from qfota_tools.transport.http_host import HttpTransport
from qfota_tools.transport.serial_port import SerialPort

A07 = "EC200TCNDAR02A07M16_01.001.01.001"
A08 = "EC200TCNDAR02A08M16_01.001.01.001"

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def rollout(goosebit, tmp_path_factory):
    """An A07 -> A08 package on the feed "fleet"; returns (gooseBit, the image)."""
    image = publish(goosebit, tmp_path_factory.mktemp("swu"), 60_001, [("A07 to A08", "fleet")])
    return goosebit, image


class Reset(BaseException):
    """An MCU reset: nothing in RAM survives, the flash does (not an Exception: nothing
    on the way out may handle it)."""


def _update(gb, image, dev, tmp_path, faults=(), reset_in=None, transport=None):
    """Run fleet against gooseBit until the action is reported. ``reset_in``: a callable
    (events of the engine) that raises Reset once; then a new Fleet (same folder) goes on."""
    token = device(gb, dev, "fleet")
    m = fleet_modem(image, seed=11, faults=faults)
    said = []
    waits = sim_model.wait_ms(sim_model.FILE_WAITS)
    resets = 0
    with PtySimulator(m) as sim:

        def make():
            upd = fleet.DriverUpdater(
                lambda: SerialPort(sim.path, 921_600), on_event=reset_in, timeouts=waits
            )
            tr = transport or HttpTransport(timeout=15)
            # ranges of its own: the cut below falls in the second
            return fleet_of(gb, tr, upd, dev, token, tmp_path / "fleet", said, range_size=32768)

        f = None
        end = time.monotonic() + 120
        while time.monotonic() < end:
            try:
                if f is None:  # boot, or the boot after a reset: a new Fleet, same flash
                    f = make()
                    f.start()
                time.sleep(min(f.step(), 1000) / 1000)
            except Reset:
                resets += 1
                said.append(("reset", ""))
                f = None
                continue
            if f.journal.data.get("state") == fleet.REPORTED:
                f.step()  # the configData after the update
                break
    assert f is not None and f.journal.data.get("state") == fleet.REPORTED, said
    assert token not in repr(said)
    if reset_in is not None or transport is not None:
        assert resets == 1, said
    return m, gb.api.devices()[dev], said


def _log(gb, dev):
    return gb.api.call("GET", "/api/v1/devices/%s/log" % dev)["log"]


def test_goosebit_offers_fleet_downloads_and_the_modem_is_updated(rollout, tmp_path):
    gb, image = rollout
    m, seen, said = _update(gb, image, "fleet-ok", tmp_path)
    assert m.revision == A08  # the simulator checked the md5 of what it got: the image
    assert seen["last_state"] == "Finished", seen
    assert seen["hardware"]["revision"] == A08 and seen["sw_version"] == A08, seen
    assert "revision EC200TCNDAR02A08M16" in _log(gb, "fleet-ok")
    checked = [t for n, t in said if n == "checked"]
    assert len(checked) == 1, said
    assert checked[0].endswith(": sha1, sha256 of EC200T_A07_A08.bin in sw-description"), said
    assert [n for n, _t in said].count("result") == 1, said


def test_goosebit_shows_the_modems_end_506(rollout, tmp_path):
    gb, image = rollout
    m, seen, said = _update(gb, image, "fleet-506", tmp_path, faults=("end-506",))
    assert m.revision == A07
    assert seen["last_state"] == "Error", seen
    assert "END: 506: FOTA firmware MD5 check error" in _log(gb, "fleet-506")
    assert [n for n, _t in said].count("result") == 1, said


def test_goosebit_delta_chain_each_package_offered_by_its_source(goosebit, tmp_path):
    # A10 -> A11 and A11 -> A12 on one feed: a modem on A10 is offered only the first;
    # its configData after the update (now A11) makes gooseBit offer the second. (Other
    # revisions than the module's rollout: gooseBit refuses a second A07 -> A08.)
    gb = goosebit
    revs = [A07.replace("A07", r) for r in ("A10", "A11", "A12")]
    images = [
        publish(gb, tmp_path, 40_003, [("chain " + dst[13:16], "chain")], src, dst)
        for src, dst in zip(revs, revs[1:])
    ]
    dev = "fleet-chain"
    token = device(gb, dev, "chain")
    m = fleet_modem(images[0], seed=13, revision=revs[0], new_revision=revs[1])
    said = []
    waits = sim_model.wait_ms(sim_model.FILE_WAITS)
    done = []
    with PtySimulator(m) as sim:
        upd = fleet.DriverUpdater(lambda: SerialPort(sim.path, 921_600), timeouts=waits)
        f = fleet_of(gb, HttpTransport(timeout=15), upd, dev, token, tmp_path / "fleet", said)
        f.start()
        end = time.monotonic() + 180
        while len(done) < 2 and time.monotonic() < end:
            time.sleep(min(f.step(), 1000) / 1000)
            rec = f.journal.data
            if rec.get("state") == fleet.REPORTED and rec["id"] not in done:
                done.append(rec["id"])
                m.new_revision = revs[2]  # the simulator's next package: A11 -> A12
                m.expect_md5 = hashlib.md5(images[1]).hexdigest()
        f.step()
    results = [t for n, t in said if n == "result"]
    assert len(done) == 2 and len(results) == 2, said
    assert "revision EC200TCNDAR02A11M16" in results[0], results
    assert "revision EC200TCNDAR02A12M16" in results[1], results
    seen = gb.api.devices()[dev]
    assert seen["last_state"] == "Finished" and seen["hardware"]["revision"] == revs[2], seen
    assert m.revision == revs[2]


def test_goosebit_mcu_reset_mid_upgrade_one_result(rollout, tmp_path):
    gb, image = rollout
    from qfota.at import EV_UPDATING

    hit = []

    def reset_in(ev, a, b):
        if ev == EV_UPDATING and not hit:
            hit.append(a)
            raise Reset()

    m, seen, said = _update(gb, image, "fleet-reset-up", tmp_path, reset_in=reset_in)
    assert hit and m.revision == A08
    assert [n for n, _t in said].count("result") == 1, said
    assert any(n == "resume" and "following the modem" in t for n, t in said), said
    assert seen["last_state"] == "Finished" and seen["sw_version"] == A08, seen


def test_goosebit_mcu_reset_mid_download_resumes_one_result(rollout, tmp_path):
    gb, image = rollout
    ranges = []

    class Cut(HttpTransport):
        """Resets the MCU after 10 KB of the second range reached the flash."""

        def request(self, method, url, headers=(), body=None, sink=None, limit=4096):
            if sink is not None:
                ranges.append(dict(headers).get("Range"))
                if len(ranges) == 2:
                    sink = _Short(sink)
            return super().request(method, url, headers, body, sink, limit)

    class _Short:
        def __init__(self, sink):
            self.sink, self.n = sink, 0

        def write(self, buf, off, n):
            if self.n + n > 10_000:
                self.sink.write(buf, off, 10_000 - self.n)
                raise Reset()
            self.n += n
            return self.sink.write(buf, off, n)

    m, seen, said = _update(gb, image, "fleet-reset-dl", tmp_path, transport=Cut(timeout=15))
    assert m.revision == A08 and [n for n, _t in said].count("result") == 1, said
    assert ranges == ["bytes=0-32767", "bytes=32768-60975", "bytes=42768-60975"], ranges
    assert seen["last_state"] == "Finished", seen
