"""The EC200T model, driven directly with bytes and a fake clock."""

import hashlib
import os
import re
import shutil
import subprocess
import sys

import pytest

from qfota_tools.simulators.ec200 import model as model_mod
from qfota_tools.simulators.ec200.model import FAST, FAULT_NAMES, Modem

QUIET = dict(FAST, noise_ms=0)
FOTA_RE = re.compile(rb'\+QIND:\s*"FOTA"\s*,\s*"\s*(\w+)"(?:\s*,\s*(\d+))?', re.I)
IMAGE = bytes(range(256)) * 24  # 6144 bytes
IMAGE_MD5 = hashlib.md5(IMAGE).hexdigest()
IMAGE_LEN = len(IMAGE)


class Drv:
    """A host on a fake clock: writes bytes, steps time, collects what the modem says."""

    def __init__(self, m, now=1000):
        self.m = m
        self.now = now
        self.out = bytearray()

    def run(self, ms):
        end = self.now + ms
        while True:
            due = self.m.next_due_ms(self.now)
            if due is None or due > end:
                self.now = end
                self.out += self.m.read(end)
                return
            self.now = max(self.now, due)
            self.out += self.m.read(self.now)

    def send(self, data, ms=5):
        n = self.m.write(data, self.now)
        self.run(ms)
        return n

    def cmd(self, line, ms=20):
        start = len(self.out)
        self.send(line.encode() + b"\r", ms)
        return bytes(self.out[start:])

    def run_until(self, pred, limit_ms=20000):
        for _ in range(limit_ms // 5):
            if pred(self.m):
                return True
            self.run(5)
        return pred(self.m)

    def stream(self, data, rate_bps=15000, piece=4096):
        """Send all of ``data``: with flow control as room allows, else ``piece``-sized
        writes paced at ``rate_bps`` (on the fake clock)."""
        off = 0
        t0 = self.now
        while off < len(data):
            if self.m.flow_hw:
                n = self.m.write(data[off : off + piece], self.now)
                off += n
                if not n:
                    due = self.m.room_due_ms(self.now, 256)
                    assert due is not None, "stalled"
                    self.run(max(1, due - self.now))
            else:
                due = t0 + off * 1000 // rate_bps
                if due > self.now:
                    self.run(due - self.now)
                off += self.m.write(data[off : off + piece], self.now)
        self.run(1)

    def events(self):
        return [(w.decode().upper(), int(n) if n else None) for w, n in FOTA_RE.findall(self.out)]

    def words(self):
        return [w for w, _ in self.events()]


def start_file(d, length=IMAGE_LEN, args=",1,10,10", flow=True):
    if flow:
        assert b"OK" in d.cmd("AT+IFC=2,2")
    r = d.cmd('AT+QFOTADL="FILE:%d"%s' % (length, args), ms=100)
    assert b"OK" in r and b"FILESTART" in r
    return r


# ---- commands ----------------------------------------------------------------------


def test_echo_on_by_default_and_ate0():
    d = Drv(Modem(timing=QUIET))
    assert d.cmd("AT") == b"AT\r\r\nOK\r\n"
    assert d.cmd("ATE0") == b"ATE0\r\r\nOK\r\n"
    assert d.cmd("AT") == b"\r\nOK\r\n"
    assert d.m.echo is False
    assert d.cmd("ate1") == b"\r\nOK\r\n"
    assert d.cmd("at") == b"at\r\r\nOK\r\n"
    assert d.m.commands == ["AT", "ATE0", "AT", "ate1", "at"]


def test_identity_and_info_commands():
    d = Drv(Modem(timing=QUIET, voltage_mv=3900))
    d.cmd("ATE0")
    assert d.cmd("ATI") == b"\r\nQuectel\r\nEC200T\r\nRevision: EC200TCNDAR02A07M16\r\n\r\nOK\r\n"
    assert d.cmd("AT+QGMR") == b"\r\nEC200TCNDAR02A07M16_01.001.01.001\r\n\r\nOK\r\n"
    assert d.cmd("at+qgmr") == b"\r\nEC200TCNDAR02A07M16_01.001.01.001\r\n\r\nOK\r\n"
    assert d.cmd("AT+CBC") == b"\r\n+CBC: 0,66,3900\r\n\r\nOK\r\n"
    assert d.cmd("AT+FOO") == b"\r\nERROR\r\n"
    assert d.cmd("AT+QFOTADL=?") == b"\r\n+QFOTADL: <url>,(0,1),(0,5-100),(0,5-100)\r\n\r\nOK\r\n"
    assert d.cmd("garbage without prefix") == b""


def test_flow_control_commands():
    d = Drv(Modem(timing=QUIET))
    d.cmd("ATE0")
    assert d.cmd("AT+IFC?") == b"\r\n+IFC: 0,0\r\n\r\nOK\r\n"
    assert d.cmd("AT+IFC=2,2") == b"\r\nOK\r\n" and d.m.flow_hw
    assert d.cmd("AT+IFC?") == b"\r\n+IFC: 2,2\r\n\r\nOK\r\n"
    assert d.cmd("AT+IFC=0,0") == b"\r\nOK\r\n" and not d.m.flow_hw
    assert d.cmd('AT+QCFG="usbifc",2,2') == b"\r\nOK\r\n" and d.m.flow_hw
    assert d.cmd('AT+QCFG="USBIFC"') == b'\r\n+QCFG: "usbifc",2,2\r\n\r\nOK\r\n'
    assert d.cmd("AT+IFC=1,1") == b"\r\nERROR\r\n"


def test_cmee_turns_parameter_errors_into_cme_errors():
    d = Drv(Modem(timing=QUIET))
    d.cmd("ATE0")
    assert d.cmd('AT+QFOTADL="FILE:10",3') == b"\r\nERROR\r\n"
    assert d.cmd("AT+CMEE=2") == b"\r\nOK\r\n"
    assert d.cmd('AT+QFOTADL="FILE:10",3') == b"\r\n+CME ERROR: 50\r\n"
    assert d.cmd("AT+NOPE") == b"\r\nERROR\r\n"  # unknown commands stay plain ERROR


@pytest.mark.parametrize(
    "args",
    [
        '"FILE:10",2,10,10',  # mode 2 takes no more args
        '"FILE:10",1,3',  # dl 1..4 invalid
        '"FILE:10",1,0,101',
        '"FILE:x"',
        "FILE:10",  # unquoted
        '"tftp://host/x"',
        '"http://h/' + "x" * 250 + '"',  # > 255 bytes
    ],
)
def test_qfotadl_rejects_bad_arguments(args):
    d = Drv(Modem(timing=QUIET))
    d.cmd("ATE0")
    assert d.cmd("AT+QFOTADL=" + args) == b"\r\nERROR\r\n"
    d.run(200)
    assert d.events() == []


def test_qfotadl_defaults():
    d = Drv(Modem(timing=QUIET))
    d.cmd('AT+QFOTADL="FILE:100"')
    assert d.m.fotadl == {
        "url": "FILE:100",
        "kind": "FILE",
        "length": 100,
        "mode": 1,
        "dl": 0,
        "up": 100,
    }


# ---- FILE mode --------------------------------------------------------------------


@pytest.mark.parametrize("mode", [1, 0])
def test_file_mode_happy_path(mode):
    m = Modem(timing=FAST, expect_md5=IMAGE_MD5, seed=7)
    d = Drv(m)
    start_file(d, args=",%d,10,20" % mode)
    d.stream(IMAGE)
    assert d.run_until(lambda m: m.updates_completed == 1)
    assert bytes(m.received) == IMAGE and m.received_md5 == IMAGE_MD5
    assert m.image_bytes_before_filestart == 0
    assert m.outcome == "END 0"
    assert m.revision == "EC200TCNDAR02A08M16_01.001.01.001"
    ev = d.events()
    assert ev[0] == ("FILESTART", None)
    assert [n for w, n in ev if w == "DOWNLOADING"] == list(range(1, 11))
    assert ("FILEEND", 0) in ev and ("END", 0) in ev
    assert [n for w, n in ev if w == "UPDATING"] == list(range(1, 21))
    assert ev.index(("FILEEND", 0)) < ev.index(("START", None)) < ev.index(("END", 0))
    assert m.reboots == (2 if mode == 0 else 1)
    assert d.out.count(b"\r\nRDY\r\n") == m.reboots
    h = m.history
    if mode == 0:  # rebooted between FILEEND and START
        assert h.index("FILEEND 0") < h.index("REBOOT") < h.index("RDY") < h.index("START")
    else:
        assert h.index("FILEEND 0") < h.index("START") < h.index("END 0") < h.index("REBOOT")
    # echo on again after the reboot, flow control back to its default
    assert m.echo and not m.flow_hw
    assert d.cmd("AT+QGMR").startswith(b"AT+QGMR\r\r\nEC200TCNDAR02A08M16")


def test_boot_urcs_after_reboot():
    m = Modem(timing=QUIET, quirks=False)
    d = Drv(m)
    start_file(d, args=",1,0,0")
    d.stream(IMAGE)
    d.run_until(lambda m: m.updates_completed == 1)
    tail = bytes(d.out[d.out.index(b"RDY") :])
    for urc in (
        b"+CFUN: 1",
        b"+CPIN: READY",
        b"+QUSIM: 1",
        b"+QIND: SMS DONE",
        b"+QIND: PB DONE",
        b"APP RDY",
    ):
        assert urc in tail
    assert "DOWNLOADING" not in d.words() and "UPDATING" not in d.words()


def test_bytes_before_filestart_are_lost():
    m = Modem(timing=QUIET, expect_md5=IMAGE_MD5)
    d = Drv(m)
    d.cmd("AT+IFC=2,2")
    m.write(b'AT+QFOTADL="FILE:%d",1,5,5\r' % len(IMAGE), d.now)
    d.run(2)
    assert m.write(IMAGE[:100], d.now) == 100  # too early: before FILESTART
    d.run(100)
    assert m.image_bytes_before_filestart == 100 and len(m.received) == 0
    d.stream(IMAGE)
    assert d.run_until(lambda m: m.outcome == "END 0")


def test_md5_mismatch_gives_end_506_and_keeps_revision():
    m = Modem(timing=QUIET, expect_md5=hashlib.md5(b"other").hexdigest())
    d = Drv(m)
    start_file(d)
    d.stream(IMAGE)
    assert d.run_until(lambda m: m.outcome == "END 506")
    d.run(500)
    assert ("FILEEND", 0) in d.events() and ("END", 506) in d.events()
    assert "UPDATING" not in d.words()
    assert m.reboots == 0 and m.revision.startswith("EC200TCNDAR02A07")
    assert b"OK" in d.cmd("AT")


def test_quiet_line_with_missing_bytes_ends_in_fileend_500():
    m = Modem(timing=QUIET)
    d = Drv(m)
    start_file(d)
    d.stream(IMAGE[:1000])
    d.run(FAST["download_idle_ms"] - 50)
    assert m.outcome is None
    d.run(100)
    assert m.outcome == "FILEEND 500" and ("FILEEND", 500) in d.events()
    assert b"OK" in d.cmd("AT")


# ---- flow control and overflow ----------------------------------------------------


def test_flow_control_room_follows_line_rate():
    m = Modem(timing=QUIET, baud=115200)  # 11520 bytes/s, bucket of 1024
    d = Drv(m)
    start_file(d, length=100000)
    t = d.now
    assert m.room(t) == 1024
    assert m.write(b"x" * 3000, t) == 1024  # takes at most room
    assert m.room(t) == 0
    assert m.room(t + 50) == 576  # 50 ms of line rate
    assert m.room(t + 10000) == 1024  # capped
    assert m.room_due_ms(t + 10000, 256) == t + 10000
    # a writer pushing as hard as it can for 2 s gets line rate
    d2 = Drv(Modem(timing=QUIET, baud=115200))
    start_file(d2, length=100000)
    t0 = d2.now
    taken = 0
    for ms in range(2000):
        taken += d2.m.write(b"y" * 512, t0 + ms)
    assert abs(taken - (1024 + 1999 * 11.52)) <= 2


def test_room_is_large_without_flow_control():
    m = Modem(timing=QUIET)
    assert m.room(0) >= 1 << 20
    assert m.write(b"z" * 5000, 0) == 5000  # takes all (and loses what overflows)


@pytest.mark.parametrize("rate, lost", [(15000, False), (15360, False), (20000, True)])
def test_no_flow_control_overflow_depends_on_rate(rate, lost):
    data = bytes(range(256)) * 120  # 30720 bytes: 2 s at 15 KB/s
    m = Modem(timing=QUIET, expect_md5=hashlib.md5(data).hexdigest())
    d = Drv(m)
    start_file(d, length=len(data), flow=False)
    d.stream(data, rate_bps=rate, piece=32)
    assert d.run_until(lambda m: m.outcome is not None and m.outcome != "FILEEND 0")
    if lost:
        assert m.overflow_bytes > 0
        assert m.outcome == "FILEEND 500" and ("FILEEND", 500) in d.events()
        assert "START" not in d.words()
    else:
        assert m.overflow_bytes == 0
        assert d.run_until(lambda m: m.outcome == "END 0")
        assert bytes(m.received) == data


def test_settable_receive_buffer_and_drain():
    m = Modem(timing=QUIET, rx_buffer=64, rx_drain_bps=1000)
    assert m.write(b"A" * 100, 0) == 100
    assert m.overflow_bytes == 36
    m.write(b"B" * 10, 10)  # 10 ms drained 10 bytes
    assert m.overflow_bytes == 36


# ---- faults ------------------------------------------------------------------------


def run_fault(fault, args=",1,10,10", **kw):
    m = Modem(timing=QUIET, faults=(fault,), expect_md5=IMAGE_MD5, **kw)
    d = Drv(m)
    d.cmd("AT+IFC=2,2")
    return m, d, d.cmd('AT+QFOTADL="FILE:%d"%s' % (len(IMAGE), args), ms=100)


def test_fault_names_are_documented():
    doc = (model_mod.__doc__ or "") + "".join(row[1] for row in model_mod.FAULTS)
    assert len(FAULT_NAMES) == 19
    for name in FAULT_NAMES:
        assert "``%s``" % name in (model_mod.__doc__ or "")
    assert "708" in doc and "605" in doc
    with pytest.raises(ValueError):
        Modem(faults=("nope",))


def test_fault_qfotadl_error_and_cme_error():
    m, d, r = run_fault("qfotadl-error")
    assert r.endswith(b"\r\nERROR\r\n") and "FILESTART" not in d.words()
    m, d, r = run_fault("cme-error")
    assert r.endswith(b"\r\n+CME ERROR: 3\r\n") and "FILESTART" not in d.words()


def test_fault_no_filestart():
    m, d, r = run_fault("no-filestart")
    assert r.endswith(b"\r\nOK\r\n")
    d.stream(IMAGE)
    d.run(300)
    assert d.words() == [] and m.image_bytes_before_filestart == len(IMAGE)
    d.run(FAST["download_idle_ms"])
    assert b"OK" in d.cmd("AT")  # back to commands once the line is quiet


def test_fault_fileend_500():
    m, d, _ = run_fault("fileend-500")
    d.stream(IMAGE)
    d.run(500)
    assert ("FILEEND", 500) in d.events() and "START" not in d.words()
    assert len(m.received) == len(IMAGE)
    assert b"OK" in d.cmd("AT")


def test_fault_end_504():
    m, d, _ = run_fault("end-504", args=",1,10,20")
    d.stream(IMAGE)
    assert d.run_until(lambda m: m.outcome == "END 504")
    d.run(500)
    assert [n for w, n in d.events() if w == "UPDATING"] == list(range(1, 11))
    assert m.reboots == 0 and m.revision.startswith("EC200TCNDAR02A07")


def test_fault_end_506():
    m, d, _ = run_fault("end-506")
    d.stream(IMAGE)
    assert d.run_until(lambda m: m.outcome == "END 506")
    assert m.received_md5 == IMAGE_MD5  # the image was right; the module says otherwise


def test_fault_reset_mid_transfer():
    m, d, _ = run_fault("reset-mid-transfer")
    d.stream(IMAGE)
    d.run(300)
    assert m.outcome == "RESET" and len(m.received) == len(IMAGE) // 2
    assert m.reboots == 1 and b"\r\nRDY\r\n" in d.out
    assert "FILEEND" not in d.words()
    assert m.dropped > 0  # the rest of the package fell into the reboot
    assert m.echo and b"OK" in d.cmd("AT")


def test_fault_silent_after_reboot():
    m, d, _ = run_fault("silent-after-reboot")
    d.stream(IMAGE)
    assert d.run_until(lambda m: m.outcome == "END 0")
    d.run(300)
    n = len(d.out)
    assert d.cmd("AT") == b"" and len(d.out) == n
    d.run(1000)
    assert len(d.out) == n and b"RDY" not in d.out and m.updates_completed == 0


def test_fault_garbage():
    m = Modem(timing=dict(FAST, noise_ms=20), faults=("garbage",), expect_md5=IMAGE_MD5)
    d = Drv(m)
    start_file(d)
    d.stream(IMAGE)
    assert d.run_until(lambda m: m.updates_completed == 1)
    with pytest.raises(UnicodeDecodeError):
        bytes(d.out).decode()
    assert max(len(x) for x in d.out.split(b"\r\n")) > 2000
    assert d.events().count(("END", 0)) == 1


def test_fault_no_start():
    m, d, _ = run_fault("no-start")
    d.stream(IMAGE)
    d.run(1000)
    assert ("FILEEND", 0) in d.events() and "START" not in d.words()
    assert b"OK" in d.cmd("AT")


def test_fault_stall():
    m, d, _ = run_fault("stall")
    t = d.now
    off = 0
    for ms in range(3000):
        off += m.write(IMAGE[off : off + 256], t + ms)
    assert off == len(IMAGE) // 2
    d.now = t + 3000
    d.run(2000)
    assert m.room(d.now) == 0 and m.room_due_ms(d.now) is None
    assert "FILEEND" not in d.words()


def test_fault_incomplete_urc():
    m, d, _ = run_fault("incomplete-urc")
    d.stream(IMAGE)
    assert d.run_until(lambda m: m.outcome == "END 0")
    assert d.out.count(b'+QIND: "FOTA","DOWNLOA\r\n') == 1  # cut, then the next line
    assert d.events().count(("FILEEND", 0)) == 1


def test_fault_no_qgmr():
    d = Drv(Modem(timing=QUIET, faults=("no-qgmr",)))
    assert d.cmd("AT+QGMR").endswith(b"\r\nERROR\r\n")
    assert b"Revision: EC200TCNDAR02A07M16" in d.cmd("ATI")


def test_fault_dead():
    d = Drv(Modem(timing=FAST, faults=("dead",)))
    assert d.cmd("AT") == b""
    d.run(2000)
    assert d.out == b"" and d.m.commands == []


def test_protocol_download_mode_answers_010003():
    m = Modem(timing=QUIET)
    d = Drv(m)
    d.cmd("ATE0")
    assert d.cmd('AT+QFOTADL="FILE:1000",2') == b"\r\n010003\r\n"
    assert m.fotadl is not None and m.fotadl["mode"] == 2
    assert d.cmd("AT") == b""  # framing unknown: it ignores what comes
    d.run(FAST["download_idle_ms"] + 10)
    assert d.cmd("AT") == b"\r\nOK\r\n"
    s = Drv(Modem(revision="EC200SCNAAR01A01M08_01.001", timing=QUIET))
    assert s.cmd('AT+QFOTADL="FILE:1000",2').endswith(b"\r\nERROR\r\n")  # EC200T only


# ---- URL modes ---------------------------------------------------------------------


def setup_pdp(d, cid=2):
    assert b"\r\nOK\r\n" in d.cmd('AT+QICSGP=%d,1,"cmnet","","",1' % cid)
    assert b"\r\nOK\r\n" in d.cmd('AT+QFOTA="fota/cid",%d' % cid)
    start = len(d.out)
    d.cmd("AT+QIACT=%d" % cid, ms=5)
    assert b"OK" not in d.out[start:]  # activation takes a while
    d.run(FAST["pdp_ms"] + 5)
    assert b"\r\nOK\r\n" in d.out[start:] and cid in d.m.active


def test_pdp_context_commands():
    d = Drv(Modem(timing=QUIET))
    d.cmd("ATE0")
    assert d.cmd("AT+QICSGP=2") == b'\r\n+QICSGP: 1,"","","",0\r\n\r\nOK\r\n'
    assert d.cmd('AT+QFOTA="fota/cid"') == b'\r\n+QFOTA: "fota/cid",1\r\n\r\nOK\r\n'
    setup_pdp(d)
    assert d.cmd("AT+QICSGP=2") == b'\r\n+QICSGP: 1,"cmnet","","",1\r\n\r\nOK\r\n'
    assert d.cmd('AT+QFOTA="fota/cid"') == b'\r\n+QFOTA: "fota/cid",2\r\n\r\nOK\r\n'
    assert re.fullmatch(
        rb'\r\n\+QIACT: 2,1,1,"10\.\d+\.\d+\.\d+"\r\n\r\nOK\r\n', d.cmd("AT+QIACT?")
    )
    assert d.cmd("AT+QIACT=2") == b"\r\nERROR\r\n"  # already active
    assert d.cmd("AT+QICSGP=16") == b"\r\nERROR\r\n"


@pytest.mark.parametrize("scheme, word", [("http", "HTTP"), ("https", "HTTP"), ("ftp", "FTP")])
def test_url_mode_happy_path(scheme, word):
    m = Modem(timing=QUIET, expect_md5=IMAGE_MD5)
    d = Drv(m)
    setup_pdp(d)
    url = "%s://u:p@127.0.0.1:2121/fw.bin" % scheme
    assert d.cmd('AT+QFOTADL="%s",1,5,10' % url, ms=50).count(b"OK") == 1
    assert d.words() == [word + "START"]
    assert m.fetch_request == url
    assert m.take_fetch() == url and m.take_fetch() is None
    assert b"OK" in d.cmd("AT")  # commands work while it downloads
    assert d.cmd('AT+QFOTADL="%s"' % url).endswith(b"ERROR\r\n")
    m.fetch_done(0, IMAGE, d.now)
    assert d.run_until(lambda m: m.updates_completed == 1)
    ev = d.events()
    assert [n for w, n in ev if w == "DOWNLOADING"] == [1, 2, 3, 4, 5]
    assert (word + "END", 0) in ev and ("END", 0) in ev
    assert m.received_md5 == IMAGE_MD5 and m.revision.startswith("EC200TCNDAR02A08")


def test_url_mode_fetch_failure_code_is_reported():
    m = Modem(timing=QUIET)
    d = Drv(m)
    setup_pdp(d)
    d.cmd('AT+QFOTADL="ftp://u:bad@127.0.0.1/fw.bin"', ms=50)
    m.fetch_done(625, None, d.now)
    d.run(100)
    assert ("FTPEND", 625) in d.events() and "START" not in d.words()
    assert m.outcome == "FTPEND 625"


@pytest.mark.parametrize(
    "url, end", [("http://h/x.bin", ("HTTPEND", 708)), ("ftp://h/x.bin", ("FTPEND", 605))]
)
def test_url_mode_without_active_context(url, end):
    m = Modem(timing=QUIET)
    d = Drv(m)
    d.cmd('AT+QFOTADL="%s"' % url, ms=200)
    assert end in d.events() and m.fetch_request is None


def test_fault_pdp_inactive():
    m = Modem(timing=QUIET, faults=("pdp-inactive",))
    d = Drv(m)
    setup_pdp(d)
    d.cmd('AT+QFOTADL="https://h/x.bin"', ms=200)
    assert b'+QIURC: "pdpdeact",2' in d.out
    assert ("HTTPEND", 708) in d.events() and m.fetch_request is None
    assert b"OK\r\n" == d.cmd("AT+QIACT?")[-4:] and 2 not in m.active


def test_url_mode_reset_mid_download():
    m = Modem(timing=QUIET, faults=("reset-mid-transfer",))
    d = Drv(m)
    setup_pdp(d)
    d.cmd('AT+QFOTADL="http://h/x.bin",1,10', ms=50)
    m.fetch_done(0, IMAGE, d.now)
    d.run(300)
    assert m.outcome == "RESET" and "HTTPEND" not in d.words() and b"RDY" in d.out


# ---- shapes, noise, determinism ---------------------------------------------------


def full_update_output(seed, quirks=True, url=False):
    m = Modem(timing=dict(FAST, noise_ms=40), seed=seed, quirks=quirks)
    d = Drv(m)
    if url:
        setup_pdp(d, 1)
        d.cmd('AT+QFOTADL="http://h/x.bin",1,10,10', ms=50)
        m.fetch_done(0, IMAGE, d.now)
    else:
        start_file(d)
        d.stream(IMAGE)
    assert d.run_until(lambda m: m.updates_completed == 1)
    return bytes(d.out)


def test_urc_shapes_vary_with_seed():
    outs = b"".join(full_update_output(s) + full_update_output(s, url=True) for s in range(6))
    assert b'"FOTA", "' in outs and b'"FOTA","' in outs
    assert b'" DOWNLOADING"' in outs
    assert re.search(rb'"UPDATING", \d', outs)
    assert b'"HTTPEnd"' in outs and b'"HTTPEND"' in outs
    # bootloader framing: no CRLF of its own before the line, two after it
    assert re.search(rb'[^\n]\r\n\+QIND: "FOTA", ?"UPDATING", ?\d+\r\n\r\n', outs)
    for urc in (b"+CREG: 1", b'+QIND: "csq"'):
        assert urc in outs


def test_plain_shapes_without_quirks():
    out = full_update_output(3, quirks=False) + full_update_output(3, quirks=False, url=True)
    for line in out.split(b"\r\n"):
        if b'"FOTA"' in line:
            assert re.fullmatch(rb'\+QIND: "FOTA","[A-Za-z]+"(,\d+)?', line), line


NOISE_RE = re.compile(rb'\r\n(\+C(G|E)?REG: 1|\+QIND: "(csq|act)",[^\r]*|\+CTZE: [^\r]*)\r\n')


def test_noise_between_response_lines_and_during_transfer():
    hits = 0
    for seed in range(40):
        r = Drv(Modem(timing=FAST, seed=seed)).cmd("ATI", ms=2)  # before any timed noise
        body = r[r.index(b"Quectel") : r.index(b"\r\nOK\r\n")]
        hits += bool(NOISE_RE.search(body))
    assert 0 < hits < 40
    d = Drv(Modem(timing=FAST, seed=1))
    start_file(d)
    d.stream(IMAGE)
    d.run(20)
    assert NOISE_RE.search(d.out[d.out.index(b"FILESTART") : d.out.index(b"FILEEND")])


def test_same_seed_same_bytes():
    assert full_update_output(5) == full_update_output(5)
    assert full_update_output(5) != full_update_output(6)


# ---- MicroPython ---------------------------------------------------------------------

MPY_SCRIPT = r"""
import sys
sys.path.insert(0, %r)
from model import Modem, FAST
img = bytes(range(256)) * 8
m = Modem(timing=FAST, seed=2)
now = 0
out = bytearray()
def step(ms):
    global now
    end = now + ms
    while now < end:
        now += 1
        out.extend(m.read(now))
m.write(b"AT+IFC=2,2\r", now)
step(5)
m.write(b'AT+QFOTADL="FILE:%%d",0,5,5\r' %% len(img), now)
step(50)
off = 0
while off < len(img):
    off += m.write(img[off:off + 100], now)
    step(1)
step(1000)
print(m.outcome, m.revision, m.reboots, m.received_md5, len(out) > 0, m.history[-1])
"""


def micropython_bin():
    cand = os.path.join(os.path.dirname(sys.executable), "micropython")
    return cand if os.path.exists(cand) else shutil.which("micropython")


@pytest.mark.skipif(micropython_bin() is None, reason="no micropython interpreter")
def test_model_runs_on_micropython():
    sim_dir = os.path.dirname(model_mod.__file__)
    mpy = micropython_bin()
    assert mpy is not None
    r = subprocess.run(
        [mpy, "-c", MPY_SCRIPT % sim_dir], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr + r.stdout
    md5 = hashlib.md5(bytes(range(256)) * 8).hexdigest()
    assert r.stdout.split() == [
        "END",
        "0",
        "EC200TCNDAR02A08M16_01.001.01.001",
        "2",
        md5,
        "True",
        "COMPLETED",
    ]


def test_fault_stall_waits_for_half_not_for_an_empty_bucket():
    # An empty flow-control bucket is the line's normal state at full speed: it is not
    # the stall. The model takes bytes at line rate until half the package, then stalls.
    m, d, _ = run_fault("stall")
    t = d.now
    assert m.write(IMAGE[:1024], t) == 1024
    assert m.room(t) == 0  # the bucket is empty...
    assert "STALL" not in m.history  # ...and the model is not stalled
    assert m.room_due_ms(t, 256) == t + 23  # 256 bytes at 11520 bytes/s
    off = 1024
    for ms in range(1, 3000):
        off += m.write(IMAGE[off : off + 256], t + ms)
        m.room(t + ms)  # a driver asking again at once (the pty simulator does)
    assert off == len(IMAGE) // 2 and m.history.count("STALL") == 1


def test_fault_stall_room_due_counts_only_the_room_left_before_it():
    m, d, _ = run_fault("stall")
    half = len(IMAGE) // 2
    t = d.now
    assert m.write(IMAGE[:1024], t) == 1024
    assert m.write(IMAGE[1024:2048], t + 100) == 1024
    assert m.write(IMAGE[2048:2624], t + 150) == 576  # bucket empty again
    assert m.write(IMAGE[2624:3024], t + 185) == 400
    left = half - 3024  # 48 bytes, less than any driver's read chunk
    now = t + 185
    # room() never reaches 256 before the stall: room_due_ms says when it reaches the 48
    due = m.room_due_ms(now, 256)
    assert due is not None and due > now
    assert m.room(due - 1) < left
    assert m.room(due) == left
    assert m.room_due_ms(due, 256) == due
    assert m.write(IMAGE[3024 : 3024 + 256], due) == left
    assert "STALL" in m.history
    assert m.room(due) == 0 and m.room_due_ms(due, 256) is None
    # stalled: nothing more from the transfer, even after the line has been quiet
    d.now = due
    d.run(QUIET["download_idle_ms"] * 4)
    assert "FILEEND" not in d.words() and m.outcome is None
    assert len(m.received) == half and m.room(d.now) == 0


# ---------------------------------------------------------------- profile "note"
NOTE_OK = [
    "AT",
    "ATI",
    "AT+QFOTADL=?",
    "AT+IFC=2,2",
    'AT+QCFG="usbifc",2,2',
    'AT+QCFG="USBIFC",2,2',
    'AT+QCFG="usbifc"',
    'AT+QICSGP=2,1,"cmnet","","",1',
    'AT+QFOTA="fota/cid",2',
    "AT+QIACT=2",
]
NOTE_ERROR = [
    "ATE0",
    "ATE1",
    "AT&W",
    "AT+QGMR",
    "AT+GMR",
    "AT+CBC",
    "AT+CMEE=1",
    "AT+CSQ",
    "AT+IFC=0,0",
    "AT+IFC?",
    "AT+IFC=?",
    'AT+QCFG="usbifc",0,0',
    "AT+QIACT?",
    "AT+QIACT=?",
    "AT+QICSGP=1",
    'AT+QICSGP=1,1,"cmnet"',
    'AT+QICSGP=1,1,"cmnet","u","p",1',
    "AT+QICSGP=?",
    'AT+QFOTA="fota/cid"',
    "AT+QFOTA?",
    "AT+QIDEACT=1",
]


@pytest.mark.parametrize("line", NOTE_OK)
def test_note_profile_answers_documented_commands(line):
    d = Drv(Modem(timing=QUIET, profile="note"))
    out = d.cmd(line, ms=FAST["pdp_ms"] + 20)
    assert out.endswith(b"\r\nOK\r\n"), out
    # The default profile answers them too.
    d = Drv(Modem(timing=QUIET))
    assert d.cmd(line, ms=FAST["pdp_ms"] + 20).endswith(b"\r\nOK\r\n")


@pytest.mark.parametrize("line", NOTE_ERROR)
def test_note_profile_refuses_everything_else(line):
    m = Modem(timing=QUIET, profile="note")
    d = Drv(m)
    echo = (line + "\r").encode()
    out = d.cmd(line, ms=FAST["pdp_ms"] + 20)
    assert out == echo + b"\r\nERROR\r\n", out
    assert m.echo and m.cmee == 0 and not m.flow_hw and m.active == {}
    assert m.commands == [line]


def test_note_profile_error_for_undocumented_forms_the_default_profile_answers():
    # The difference the profile makes (else both could answer ERROR to everything).
    for line in ("ATE0", "AT+QGMR", "AT+CBC", "AT+QIACT?", "AT+QICSGP=1", 'AT+QFOTA="fota/cid"'):
        assert Drv(Modem(timing=QUIET)).cmd(line).endswith(b"OK\r\n"), line


def test_note_profile_pdp_and_reads():
    m = Modem(timing=QUIET, profile="note")
    d = Drv(m)
    assert d.cmd('AT+QCFG="usbifc"').endswith(b'+QCFG: "usbifc",0,0\r\n\r\nOK\r\n')
    assert d.cmd("AT+IFC=2,2").endswith(b"OK\r\n") and m.flow_hw
    assert d.cmd('AT+QCFG="usbifc"').endswith(b'+QCFG: "usbifc",2,2\r\n\r\nOK\r\n')
    assert b"Revision: EC200TCNDAR02A07M16" in d.cmd("ATI")
    assert d.cmd('AT+QICSGP=1,1,"internet","","",1').endswith(b"OK\r\n")
    assert m.contexts[1] == [1, "internet", "", "", 1]
    assert d.cmd('AT+QFOTA="fota/cid",1').endswith(b"OK\r\n") and m.fota_cid == 1
    assert d.cmd("AT+QIACT=1", ms=FAST["pdp_ms"] + 20).endswith(b"OK\r\n")
    assert 1 in m.active
    # Already active: ERROR, as in the default profile.
    assert d.cmd("AT+QIACT=1", ms=FAST["pdp_ms"] + 20).endswith(b"\r\nERROR\r\n")


def test_note_profile_file_update_with_documented_commands_only():
    m = Modem(timing=QUIET, expect_md5=IMAGE_MD5, profile="note")
    d = Drv(m)
    assert d.cmd("AT+IFC=2,2").endswith(b"OK\r\n")
    d.cmd('AT+QFOTADL="FILE:%d",1,5,10' % IMAGE_LEN, ms=FAST["filestart_ms"] + 20)
    d.stream(IMAGE)
    assert d.run_until(lambda mm: mm.updates_completed == 1)
    assert m.outcome == "END 0" and m.received_md5 == IMAGE_MD5


def test_unknown_profile_refused():
    with pytest.raises(ValueError, match="unknown profile"):
        Modem(profile="nope")


def test_fast_idle_is_robust():
    # A loaded 2-core machine paused the line 0.5 s mid-transfer: the FAST preset must
    # not end the transfer (FILEEND 500) on such a pause.
    m = Modem(timing=QUIET, expect_md5=IMAGE_MD5)
    d = Drv(m)
    d.cmd("AT+IFC=2,2")
    d.cmd('AT+QFOTADL="FILE:%d",1,0,10' % IMAGE_LEN, ms=FAST["filestart_ms"] + 20)
    d.stream(IMAGE[:3000])
    d.run(1500)
    d.stream(IMAGE[3000:])
    assert d.run_until(lambda mm: mm.outcome is not None and mm.outcome.startswith("END"))
    assert m.outcome == "END 0"
