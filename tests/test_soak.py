"""The soak (``make soak``), small: a dozen random updates on both runtimes, no WRONG, no HANG,
on a fresh seed each run (printed; ``QFOTA_SOAK_SEED=N`` replays it).

The full run is ``python -m qfota_tools.devtools.soak`` (200 updates); this keeps it working and
checks its own parts: every fault of the simulator is soaked by its own row, and the
chaos layer chops the modem's output without losing or reordering a byte.
"""

import os
import random

from qfota_tools.devtools import soak
from qfota_tools.simulators.ec200.model import FAULT_NAMES


def test_every_simulator_fault_has_an_expectation():
    # A fault's row (model.FAULTS) says what an update with it ends in; the soak reads it.
    assert soak.faults_soaked() == list(FAULT_NAMES)
    for fault in FAULT_NAMES:
        for source in ("file", "http", "ftp"):
            want = soak.expected(fault, source)
            assert want is None or (want[0] and want[2] in (1, 3, 4)), (fault, source, want)


def test_failure_line_parsed():
    assert soak.parse_failure("qfota: failed: FILEEND: 500: File download error") == (
        "FILEEND",
        500,
    )
    assert soak.parse_failure("qfota: failed: STREAM: timeout after 1 s: x") == ("STREAM", None)
    assert soak.parse_failure("qfota: done: A -> B") is None


class _Talker:
    """A model stand-in that says a known byte stream, a little at a time."""

    def __init__(self, data):
        self.data = data
        self.pos = 0
        self.flow_hw = True
        self.taken = bytearray()

    def read(self, now):
        k = min(len(self.data) - self.pos, 1 + now % 97)
        out = self.data[self.pos : self.pos + k]
        self.pos += k
        return out

    def next_due_ms(self, now):
        return now if self.pos < len(self.data) else None

    def write(self, data, now):
        self.taken += data
        return len(data)


def test_chaos_keeps_every_byte_in_order():
    data = random.Random(1).randbytes(20_000)
    talker = _Talker(data)
    chaos = soak.Chaos(talker, random.Random(2), piece=7, gap_ms=3)
    out = bytearray()
    now = 0
    while True:
        out += chaos.read(now)
        if len(out) == len(data):
            break
        due = chaos.next_due_ms(now)
        assert due is not None and due >= now
        now = due
    assert now <= len(data) // soak.Chaos.MIN_RATE + 3, "slower than the promised rate"
    assert bytes(out) == data and chaos.pieces > len(data) // 7
    sent = b"AT+QGMR\r" * 100
    took = 0
    while took < len(sent):
        took += chaos.write(sent[took:], now)
    assert bytes(talker.taken) == sent


def soak_seed():
    """A fresh seed each run (``QFOTA_SOAK_SEED`` replays one), printed so that pytest shows
    it with a failure and a failure names its replay command."""
    seed = os.environ.get("QFOTA_SOAK_SEED")
    seed = int(seed) if seed else random.SystemRandom().randrange(1, 1_000_000)
    print("soak seed %d (replay: QFOTA_SOAK_SEED=%d pytest tests/test_soak.py)" % (seed, seed))
    return seed


def test_soak_seed_is_fresh_and_replayable(monkeypatch, capsys):
    monkeypatch.delenv("QFOTA_SOAK_SEED", raising=False)
    seeds = {soak_seed() for _ in range(5)}
    assert len(seeds) > 1
    monkeypatch.setenv("QFOTA_SOAK_SEED", "31333")
    assert soak_seed() == 31333
    assert "soak seed 31333 (replay: QFOTA_SOAK_SEED=31333" in capsys.readouterr().out


def test_soak_small_both_runtimes():
    seed = soak_seed()
    results = soak.soak(runs=12, runtimes=soak.RUNTIMES, seed=seed, jobs=2, bound=40)
    bad = [r for r in results if r["verdict"] in ("WRONG", "HANG")]
    assert not bad, "seed %d:\n" % seed + "\n".join(
        "%s: %s: %s\n  replay: python -m qfota_tools.devtools.soak --seed %d --only %d -v\n%s"
        % (r["verdict"], soak.describe(r), r["why"], seed, r["index"], r["out"][-2000:])
        for r in bad
    )
    assert {r["runtime"] for r in results} == set(soak.RUNTIMES)
