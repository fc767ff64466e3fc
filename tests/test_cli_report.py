"""``qfota.report.Reporter``: the output of an update (text, live line, JSON, log file),
driven with engine events directly, and once through the real CLI on both runtimes."""

import hashlib
import json
import os
import re
import subprocess
import sys

import pytest

from qfota import at as AT
from qfota.errors import MODEM, TIMEOUT, FotaError
from qfota.report import Reporter
from qfota_tools.simulators.ec200.model import FAST, Modem
from qfota_tools.simulators.ec200.pty_sim import PtySimulator


class Out:
    """Collects what the reporter prints, as a terminal would show it."""

    def __init__(self):
        self.raw = ""

    def __call__(self, text="", end="\n"):
        self.raw += text + end

    def screen(self):
        """Final terminal lines: a CR returns to the line's start, text overwrites."""
        lines = []
        for physical in self.raw.split("\n"):
            cur = ""
            for part in physical.split("\r"):
                cur = part + cur[len(part) :]
            lines.append(cur)
        return lines


class FakeSession:
    def __init__(self, **kw):
        self.sent = kw.get("sent", 0)
        self.stream_ms = kw.get("stream_ms", 0)
        self.revision_before = kw.get("before", "A07")
        self.revision_after = kw.get("after", "A08")
        self.end_code = kw.get("end_code")


def _clock(monkeypatch, ms):
    import qfota.report as report

    monkeypatch.setattr(report, "ticks_ms", lambda: ms[0])


def test_sending_reaches_100_percent_and_shows_time_left(monkeypatch):
    now = [0]
    _clock(monkeypatch, now)
    out = Out()
    r = Reporter(out)
    r.event(AT.EV_STAGE, "STREAM", None)
    for sent in range(0, 99_000, 9000):  # the driver reports every so often, never at 100%
        now[0] = sent // 10  # 10 bytes/ms
        r.event(AT.EV_SENT, sent, 100_000)
    r.event(AT.EV_STAGE, "FILEEND", None)  # only once every byte was written
    lines = out.raw.splitlines()
    assert "qfota: sending 100%  100000 of 100000 bytes" in lines[-1], lines
    assert any(re.search(r"10000 B/s, \d+\.\d s left$", x) for x in lines), lines
    assert "left" not in lines[-1]


def test_times_are_in_seconds(monkeypatch):
    out = Out()
    r = Reporter(out)
    r.result(FakeSession(sent=60000, stream_ms=1234))
    assert out.raw.splitlines()[0] == "qfota: sent 60000 bytes in 1.2 s (48622 B/s)"
    assert " ms" not in out.raw


def test_live_line_one_activity_and_no_remnant(monkeypatch):
    now = [0]
    _clock(monkeypatch, now)
    out = Out()
    r = Reporter(out, live=True)
    r.event(AT.EV_STAGE, "STREAM", None)
    now[0] = 2000
    r.event(AT.EV_SENT, 20000, 100000)
    r.event(AT.EV_DOWNLOADING, 3, 10)  # the modem's own count, while still sending
    now[0] = 4000
    r.event(AT.EV_SENT, 40000, 100000)
    screen = out.screen()
    assert "modem download" not in out.raw  # no flipping between activities
    assert screen[-1].startswith("qfota: sending  40%")
    r.event(AT.EV_STAGE, "FILEEND", None)
    r.event(AT.EV_DOWNLOADING, 10, 10)
    r.event(AT.EV_STAGE, "START", None)
    r.event(AT.EV_UPDATING, 13, 100)
    screen = out.screen()
    # The short "upgrading" text over the long "sending" one leaves nothing of it behind.
    assert screen[-1].rstrip() == "qfota: upgrading  13%", screen
    assert "bytes" not in screen[-1]
    r.result(FakeSession(), None)
    assert out.screen()[-1] == ""  # the result closed the live line
    assert out.screen()[-2] == "qfota: done: A07 -> A08"


def test_non_live_progress_one_activity_at_a_time(monkeypatch):
    now = [0]
    _clock(monkeypatch, now)
    out = Out()
    r = Reporter(out)
    r.event(AT.EV_STAGE, "STREAM", None)
    r.event(AT.EV_SENT, 10000, 20000)
    r.event(AT.EV_DOWNLOADING, 5, 10)
    r.event(AT.EV_SENT, 20000, 20000)
    r.event(AT.EV_DOWNLOADING, 10, 10)
    labels = [x.split()[1] for x in out.raw.splitlines()]
    assert labels == ["sending", "sending", "modem"], out.raw


def test_end_0_then_silence_says_the_upgrade_reported_success():
    out = Out()
    r = Reporter(out)
    for stage in ("STREAM", "FILEEND", "START", "UPDATING", "REBOOT"):
        r.event(AT.EV_STAGE, stage, None)
    err = FotaError("REBOOT", None, "timeout after 60 s: no RDY", TIMEOUT)
    assert r.result(err=err) == 4
    last = out.raw.splitlines()[-1]
    assert last.startswith("qfota: failed: REBOOT: timeout after 60 s: no RDY")
    assert "the upgrade itself reported success, END 0" in last
    # Also from the session's end_code when the caller passes the session.
    out2 = Out()
    Reporter(out2).result(FakeSession(end_code=0), FotaError("VERIFY", None, "no answer", TIMEOUT))
    assert "reported success" in out2.raw
    # Not when END said something else, and not in upgrade_mode 0's first reboot.
    out3 = Out()
    r = Reporter(out3)
    for stage in ("STREAM", "FILEEND", "REBOOT"):
        r.event(AT.EV_STAGE, stage, None)
    r.result(err=FotaError("REBOOT", None, "timeout", TIMEOUT))
    assert "reported success" not in out3.raw
    out4 = Out()
    Reporter(out4).result(FakeSession(end_code=506), FotaError("END", 506))
    assert "reported success" not in out4.raw


def test_json_events_and_result():
    out = Out()
    r = Reporter(out, json=True, live=True, verbose=True)
    r.event(AT.EV_STAGE, "PREFLIGHT", None)
    r.event(AT.EV_REVISION, "before", "A07")
    r.event(AT.EV_TX, 'AT+QFOTADL="ftp://u:pw@h/x"', None)
    r.event(AT.EV_SENT, 50, 100)
    r.event(AT.EV_UPDATING, 10, 100)
    r.event(AT.EV_REBOOT, 1, None)
    r.event(AT.EV_LOG, "something", None)
    status = r.result(err=FotaError("FILEEND", 500, None, MODEM))
    objs = [json.loads(x) for x in out.raw.splitlines()]  # every line is one object
    assert [o["event"] for o in objs] == [
        "stage",
        "revision",
        "tx",
        "progress",
        "progress",
        "reboot",
        "log",
        "result",
    ]
    assert objs[2]["line"] == 'AT+QFOTADL="ftp://u:***@h/x"'
    assert objs[3] == {
        "event": "progress",
        "activity": "sending",
        "percent": 50,
        "done": 50,
        "total": 100,
    }
    res = objs[-1]
    assert status == 3 and res["exit"] == 3 and res["ok"] is False
    assert res["stage"] == "FILEEND" and res["code"] == 500 and res["kind"] == "modem"
    assert res["meaning"] == "File download error"
    assert "\r" not in out.raw


def test_log_file_is_appended_with_timestamps(tmp_path):
    log = tmp_path / "q.log"
    log.write_text("earlier line\n")
    r = Reporter(Out(), log=str(log))
    r.event(AT.EV_REVISION, "before", "A07")
    r.result(FakeSession())
    lines = log.read_text().splitlines()
    assert lines[0] == "earlier line"
    stamp = r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d qfota: "
    assert re.match(stamp + "revision before: A07$", lines[1]), lines
    assert re.match(stamp + "done: A07 -> A08$", lines[-1]), lines


@pytest.mark.parametrize("runtime", ["cpython", "micropython"])
def test_json_and_log_through_the_cli(runtime, tmp_path):
    # Needs a working engine: a whole update on the simulator.
    data = os.urandom(30_000)
    image = tmp_path / "fw.bin"
    image.write_bytes(data)
    log = tmp_path / "q.log"
    m = Modem(expect_md5=hashlib.md5(data).hexdigest(), timing=FAST, baud=921600, seed=3)
    with PtySimulator(m) as sim:
        cmd = [sys.executable, "-m", "qfota_tools.cli", "update", "--runtime", runtime]
        cmd += ["--port", sim.path, "--image", str(image), "--json", "--log", str(log)]
        cmd += ["--download-urcs", "10", "--timeout", "probe=3"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    objs = [json.loads(x) for x in proc.stdout.splitlines()]
    assert objs[-1]["event"] == "result" and objs[-1]["ok"] is True and objs[-1]["exit"] == 0
    sending = [o["percent"] for o in objs if o.get("activity") == "sending"]
    assert sending[-1] == 100 and sending == sorted(sending)
    assert {"before", "after"} <= {o.get("which") for o in objs if o["event"] == "revision"}
    text = log.read_text()
    assert "qfota: done: EC200TCNDAR02A07M16" in text and "qfota: sending 100%" in text
