"""Engine tests that run unchanged on CPython (pytest) and on MicroPython (tests/mp_run.py).

Each ``case_*`` function sets up a scripted modem behind the fake ``machine.UART`` and
runs a whole ``qfota.update``. Plain asserts only: no pytest features.
"""

import os
import sys

import machine
from scripted import ScriptedModem

from qfota import at as AT
from qfota import session as S
from qfota.driver import Driver, update
from qfota.errors import FotaError
from qfota.uart import UartPort

MICROPYTHON = sys.implementation.name == "micropython"
REV_A = b"EC200TCNDAR02A07M16_01.001.01.001"
REV_B = b"EC200TCNDAR02A08M16_01.001.01.001"
OK = b"\r\nOK\r\n"
FAST = {
    "probe_ms": 400,
    "command_ms": 400,
    "filestart_ms": 400,
    "fileend_ms": 400,
    "start_ms": 400,
    "progress_ms": 400,
    "end_ms": 400,
    "reboot_ms": 300,
    "settle_ms": 500,
    "stall_ms": 300,
    "dlstart_ms": 400,
    "download_ms": 600,
    "pdp_ms": 400,
}
_TMP = "/tmp"


def image(name, size=3000):
    path = "%s/qfota_case_%s_%d.bin" % (_TMP, name, os.getpid() if hasattr(os, "getpid") else 0)
    with open(path, "wb") as f:
        # A pattern, not zeros: a lost or repeated byte shows.
        f.write(bytes((i * 7 + i // 251) & 0xFF for i in range(size)))
    return path


def content(path):
    with open(path, "rb") as f:
        return f.read()


def urc(name, value=None):
    if value is None:
        return b'\r\n+QIND: "FOTA","%s"\r\n' % name
    return b'\r\n+QIND: "FOTA","%s",%d\r\n' % (name, value)


def upgrade_tail(updating=100, end=0, reboot=True):
    out = urc(b"START")
    for i in range(1, updating + 1):
        out += urc(b"UPDATING", i)
    out += urc(b"END", end)
    if reboot:
        out += b"\r\nRDY\r\n\r\n+CFUN: 1\r\n\r\n+CPIN: READY\r\n\r\n+QIND: SMS DONE\r\n"
    return out


def replies(over=None):
    r = {
        b"AT": OK,
        b"ATE0": OK,
        b"AT+QGMR": [b"\r\n" + REV_A + b"\r\n" + OK, b"\r\n" + REV_B + b"\r\n" + OK],
        b"AT+QFOTADL=?": b"\r\n+QFOTADL: <url>,(0,1),(0,5-100),(0,5-100)\r\n" + OK,
        b"AT+IFC=2,2": OK,
        b"AT+IFC=0,0": OK,
        b'AT+QFOTADL="FILE:*': OK + urc(b"FILESTART"),
    }
    r.update(over or {})
    return r


def modem(after=None, **kw):
    if after is None:
        after = urc(b"FILEEND", 0) + upgrade_tail()
    rep = kw.pop("replies", None) or replies()
    return ScriptedModem(rep, after_image=after, **kw)


class Events:
    def __init__(self):
        self.seen = []

    def __call__(self, ev, a, b):
        self.seen.append((ev, a, b))

    def kinds(self, ev):
        return [(a, b) for e, a, b in self.seen if e == ev]

    def text(self):
        return "\n".join("%r %r %r" % x for x in self.seen)


def run(m, img, uart_kw=None, **kw):
    uart = machine.UART(1, 115200, peer=m, **(uart_kw or {}))
    ev = Events()
    kw.setdefault("timeouts", FAST)
    kw.setdefault("on_event", ev)
    kw.setdefault("trace", True)
    s = update(UartPort(uart), img, **kw)
    return s, ev, uart


def expect_error(m, img, stage, code=None, detail=None, **kw):
    try:
        run(m, img, **kw)
    except FotaError as e:
        assert e.stage == stage, "stage %r != %r (%s)" % (e.stage, stage, e)
        assert e.code == code, "code %r != %r (%s)" % (e.code, code, e)
        if detail is not None:
            assert detail in str(e), "%r not in %r" % (detail, str(e))
        return e
    raise AssertionError("no FotaError; expected %s" % stage)


# ---------------------------------------------------------------- the table of steps
def _own_table(row):
    # A step of one's own: the table's rows plus "ccid", placed after the revision steps
    # by a plan of one's own. The session takes both as arguments: the real table and
    # plan are not touched.
    from qfota import steps

    table = dict(steps.STEPS)
    table["ccid"] = row

    def plan(s):
        from qfota import steps

        p = steps.plan(s)
        return p[:4] + ["ccid"] + p[4:]

    return table, plan


def case_a_step_added_to_the_table_runs():
    # What DEVELOPERS.md tells a newcomer: a row (stage, command, prefix, wait, on ERROR,
    # reader, cut) and its place in a plan. Here the SIM's ICCID (AT+QCCID), read by a
    # function of the row's own that returns what it read.
    from qfota import steps

    read = []

    def got_ccid(body):
        read.append(body)
        return "ccid", body[0][8:].strip()

    row = ("SIM", b"AT+QCCID", b"+QCCID:", "command_ms", steps.FAIL, got_ccid, steps.SAFE)
    table, plan = _own_table(row)
    img = image("ccid")
    m = modem(replies=replies({b"AT+QCCID": b"\r\n+QCCID: 89860012345678901234\r\n" + OK}))
    s, ev, _u = run(m, img, table=table, plan=plan)
    assert read == [["+QCCID: 89860012345678901234"]], read
    assert getattr(s, "ccid") == "89860012345678901234"  # noqa: B009 - set by its reader
    assert "ccid" not in steps.STEPS
    sent = m.commands
    assert sent.index(b"AT+QCCID") == sent.index(b"AT+QGMR") + 1, sent
    assert sent.index(b"AT+QFOTADL=?") == sent.index(b"AT+QCCID") + 1, sent
    assert ("AT+QCCID", None) in ev.kinds(AT.EV_TX), ev.text()
    assert ("SIM", None) in ev.kinds(AT.EV_STAGE), ev.text()
    assert s.revision_after == REV_B.decode() and bytes(m.data) == content(img)


def case_a_step_added_to_the_table_fails_as_its_row_says():
    # The same row with on ERROR = FAIL: the modem's ERROR stops the update in the row's
    # stage, before AT+QFOTADL, naming the command; a cut there is safe, as the row says.
    from qfota import steps
    from qfota.cut import advice

    row = ("SIM", b"AT+QCCID", b"+QCCID:", "command_ms", steps.FAIL, None, steps.SAFE)
    table, plan = _own_table(row)
    m = modem(replies=replies({b"AT+QCCID": b"\r\nERROR\r\n"}))
    e = expect_error(
        m, image("ccid_err"), "SIM", detail="ERROR to AT+QCCID", table=table, plan=plan
    )
    assert e.kind == "failed", e.kind
    assert not any(c.startswith(b'AT+QFOTADL="') for c in m.commands), m.commands
    s = S.Session(length=10, table=table, plan=plan)
    s._set_stage("SIM")
    assert "nothing was sent" in advice(s), advice(s)


# ---------------------------------------------------------------- an option with its step
def case_min_rssi_refused_below():
    # --min-rssi / min_rssi: one row in qfota.checks.OPTIONS, one row ("csq") in STEPS.
    m = modem(replies=replies({b"AT+CSQ": b"\r\n+CSQ: 7,99\r\n" + OK}))
    e = expect_error(m, image("csq_low"), "SIGNAL", None, "rssi 7 below 10", min_rssi=10)
    assert e.kind == "refused" and e.exit_status == 2, e.kind
    assert b"AT+CSQ" in m.commands
    assert not any(c.startswith(b'AT+QFOTADL="') for c in m.commands), m.commands


def case_min_rssi_ok_and_only_when_given():
    m = modem(replies=replies({b"AT+CSQ": b"\r\n+CSQ: 20,99\r\n" + OK}))
    s, ev, _u = run(m, image("csq_ok"), min_rssi=10)
    rssi = getattr(s, "rssi", None)  # kept by the session as its reader named it
    assert rssi == 20 and s.revision_after == REV_B.decode(), rssi
    assert m.commands.index(b"AT+CSQ") < m.commands.index(b"AT+IFC=2,2"), m.commands
    m = modem()
    s, ev, _u = run(m, image("csq_none"))
    assert b"AT+CSQ" not in m.commands and getattr(s, "rssi", None) is None, m.commands


def case_min_rssi_unknown_signal_refused():
    # rssi 99: "not known or not detectable": not a signal to update on.
    m = modem(replies=replies({b"AT+CSQ": b"\r\n+CSQ: 99,99\r\n" + OK}))
    expect_error(m, image("csq_99"), "SIGNAL", None, "cannot read the rssi", min_rssi=5)


def case_min_rssi_checked_before_sending():
    _refused(image("csq_bad"), "min_rssi must be 0-31, not 40", min_rssi=40)


# ---------------------------------------------------------------- happy paths
def case_happy_flow_hw_mode1():
    img = image("hw1")
    m = modem()
    s, ev, uart = run(m, img, download_urcs=50)
    assert s.revision_before == REV_A.decode(), s.revision_before
    assert s.revision_after == REV_B.decode(), s.revision_after
    assert bytes(m.data) == content(img)
    assert m.bytes_before_filestart == 0
    assert b"AT+IFC=2,2" in m.commands
    assert b'AT+QFOTADL="FILE:3000",1,50,100' in m.commands, m.commands
    assert ev.kinds(AT.EV_UPDATING)[-1] == (100, 100)
    assert ev.kinds(AT.EV_DONE) == [(REV_B.decode(), None)]
    assert s.end_code == 0 and s.reboots == 1


def case_each_phase_loads_only_its_modules():
    # On MicroPython code and tables are heap: the checks and the step table go once the
    # session is made, the readers once AT+QFOTADL goes out, and the URC phase's tables
    # and rules (qfota.recovery) are loaded only after the AT plan and not while the
    # package streams (compat.release is a no-op on CPython).
    if not MICROPYTHON:
        return
    from qfota.compat import release

    # The cases share one interpreter: an earlier session may have left a module loaded
    # (a RDY heard after VERIFY loads the URC rules again), which says nothing of this one.
    phases = ("checks", "steps", "answers", "recovery")
    for n in phases:
        release(n)
    seen = []

    def on_event(ev, a, b):
        loaded = [n for n in phases if "qfota." + n in sys.modules]
        seen.append((ev, a, loaded))

    img = image("phases", 20_000)
    size = len(content(img))
    s, _ev, _uart = run(modem(), img, on_event=on_event)
    assert s.result == "updated", s.result
    stages = [a for ev, a, _l in seen if ev == AT.EV_STAGE]
    assert stages[:2] == ["PREFLIGHT", "FLOWCTRL"] and "STREAM" in stages, stages
    at_phase = True
    for ev, a, loaded in seen:
        if ev == AT.EV_STAGE and a in ("FILESTART", "STREAM"):
            at_phase = False
        assert "checks" not in loaded and "steps" not in loaded, (ev, a, loaded)
        if at_phase:
            assert "recovery" not in loaded, (ev, a, loaded)
        if ev == AT.EV_SENT and a < size:  # streaming
            assert "recovery" not in loaded and "answers" not in loaded, (ev, a, loaded)
        if ev == AT.EV_STAGE and a == "QFOTADL":
            assert "answers" not in loaded, loaded
    assert any("recovery" in loaded for _e, _a, loaded in seen), seen


def case_happy_flow_none_paced():
    img = image("none", 4000)
    m = modem()
    uart_sizes = []
    uart = machine.UART(1, 115200, peer=m)
    orig = uart.write

    def spy(buf, off=0, n=-1):
        uart_sizes.append(n)
        return orig(buf, off, n)

    uart.write = spy
    s = update(UartPort(uart), img, flow="none", timeouts=FAST, rate=64000, rate_above_note=True)
    assert s.revision_after == REV_B.decode()
    assert bytes(m.data) == content(img)
    assert b"AT+IFC=0,0" in m.commands and b"AT+IFC=2,2" not in m.commands
    data_writes = uart_sizes[-(4000 // 32) :]
    assert max(data_writes) <= 32, max(data_writes)


def case_happy_mode0_reboots_before_upgrade():
    img = image("mode0")
    rdy = b"\r\nRDY\r\n\r\n+CFUN: 1\r\n\r\n+QUSIM: 1\r\n\r\n+QIND: PB DONE\r\nAPP RDY\r\n"
    m = modem(after=urc(b"FILEEND", 0) + rdy + upgrade_tail())
    s, ev, uart = run(m, img, upgrade_mode=0)
    assert b'AT+QFOTADL="FILE:3000",0,0,100' in m.commands
    assert s.reboots == 2, s.reboots
    assert s.revision_after == REV_B.decode()


def case_echo_on():
    img = image("echo")
    m = modem(echo=True)
    s, ev, uart = run(m, img)
    assert s.revision_before == REV_A.decode()
    assert s.revision_after == REV_B.decode()
    assert bytes(m.data) == content(img)


def case_urcs_interleaved_and_quirky():
    img = image("quirky", 5000)
    qgmr = (
        b'\r\n+QIND: "csq",20,99\r\n'
        + REV_A
        + b'\r\n+CREG: 1\r\n\r\n+QIND: "FOTA","DOWNLOA\r\n'
        + OK
    )
    rep = replies({b"AT+QGMR": [qgmr, b"\r\n" + REV_B + b"\r\n" + OK]})
    mid = {
        1000: b'\r\n+QIND: "FOTA"," DOWNLOADING",1\r\n\r\n\r\n',
        2500: b'+QIND:"fota","downloading", 2\r\n+QIND: "csq",18,99\r\n',
    }
    tail = (
        b'\r\n+qind: "FOTA", "FILEEND", 0\r\n'
        + b'+QIND: "FOTA","START"\r\n\r\n'
        + b'+QIND: "FOTA","UPDATING", 50\r\n\r\n'
        + b'+QIND: "FOTA","UPDATING",37%,1,1\r\n\r\n'
        + b'\r\n+QIND: "FOTA","END"\r\n'  # incomplete: logged, not fatal
        + urc(b"END", 0)
        + b"RDY\r\n"
    )
    m = ScriptedModem(rep, after_image=tail, at_bytes=mid)
    s, ev, uart = run(m, img, download_urcs=5, update_urcs=100)
    assert s.revision_before == REV_A.decode(), s.revision_before
    assert ev.kinds(AT.EV_DOWNLOADING) == [(1, 5), (2, 5)], ev.kinds(AT.EV_DOWNLOADING)
    logs = [a for a, b in ev.kinds(AT.EV_LOG)]
    assert any("incomplete" in x for x in logs), logs
    assert s.revision_after == REV_B.decode()


def case_filestart_before_ok():
    img = image("fsfirst")
    m = modem(replies=replies({b'AT+QFOTADL="FILE:*': urc(b"FILESTART") + OK}))
    s, ev, uart = run(m, img)
    assert bytes(m.data) == content(img)


def case_no_byte_before_filestart():
    img = image("late")
    m = modem(replies=replies({b'AT+QFOTADL="FILE:*': OK}))
    uart = machine.UART(1, 115200, peer=m)
    sess = S.Session(length=3000, timeouts=FAST)
    d = Driver(UartPort(uart), sess)
    with open(img, "rb") as f:
        d.image = f
        try:
            d.run()
        except FotaError as e:
            assert e.stage == "FILESTART" and e.kind == "timeout", str(e)
        else:
            raise AssertionError("ran without FILESTART")
    assert m.bytes_before_filestart == 0 and len(m.data) == 0


def case_partial_and_none_writes():
    img = image("partial", 6000)
    m = modem()
    s, ev, uart = run(m, img, uart_kw={"max_write": 7, "none_every": 3})
    assert bytes(m.data) == content(img)
    assert s.revision_after == REV_B.decode()


def case_flow_control_pushback():
    img = image("room", 5000)
    m = modem(room=5)  # the modem takes 5 bytes a write: CTS-like pushback
    s, ev, uart = run(m, img)
    assert bytes(m.data) == content(img)


def case_qgmr_error_falls_back_to_ati():
    img = image("ati")
    ati_a = b"\r\nQuectel\r\nEC200T\r\nRevision: EC200TCNDAR02A07M16\r\n" + OK
    ati_b = b"\r\nQuectel\r\nEC200T\r\nRevision: EC200TCNDAR02A08M16\r\n" + OK
    rep = replies({b"AT+QGMR": b"\r\nERROR\r\n", b"ATI": [ati_a, ati_b]})
    s, ev, uart = run(modem(replies=rep), img)
    assert s.revision_before == "EC200TCNDAR02A07M16"
    assert s.revision_after == "EC200TCNDAR02A08M16"


def case_usb_port_flow_control():
    img = image("usb")
    rep = replies(
        {
            b'AT+QCFG="USBIFC",2,2': OK,
            b'AT+QCFG="USBIFC"': b'\r\n+QCFG: "usbifc",2,2\r\n' + OK,
        }
    )
    m = modem(replies=rep)
    s, ev, uart = run(m, img, usb=True)
    assert b'AT+QCFG="usbifc",2,2' in m.commands and b"AT+IFC=2,2" not in m.commands


def case_usb_flow_readback_wrong():
    rep = replies(
        {
            b'AT+QCFG="USBIFC",2,2': OK,
            b'AT+QCFG="USBIFC"': b'\r\n+QCFG: "usbifc",0,0\r\n' + OK,
        }
    )
    m = modem(replies=rep)
    expect_error(m, image("usbbad"), "FLOWCTRL", None, "0,0", usb=True)
    assert not any(c.startswith(b'AT+QFOTADL="') for c in m.commands)


def case_qfotadl_test_ranges_enforced():
    rep = replies({b"AT+QFOTADL=?": b"\r\n+QFOTADL: <url>,(1),(0,5-50),(0,5-100)\r\n" + OK})
    m = modem(replies=rep)
    expect_error(m, image("ranges"), "PARAMS", None, "download_URC_max 60", download_urcs=60)
    assert not any(c.startswith(b'AT+QFOTADL="') for c in m.commands)


def case_min_voltage_refused():
    rep = replies({b"AT+CBC": b"\r\n+CBC: 0,20,3300\r\n" + OK})
    m = modem(replies=rep)
    expect_error(m, image("volt"), "POWER", None, "3300 mV below 3500 mV", min_voltage_mv=3500)
    assert not any(c.startswith(b'AT+QFOTADL="') for c in m.commands)


def case_min_voltage_ok():
    rep = replies({b"AT+CBC": b"\r\n+CBC: 0,80,3900\r\n" + OK})
    s, ev, uart = run(modem(replies=rep), image("voltok"), min_voltage_mv=3500)
    assert s.voltage_mv == 3900


# ---------------------------------------------------------------- modem errors
def case_qfotadl_error():
    m = modem(replies=replies({b'AT+QFOTADL="FILE:*': b"\r\nERROR\r\n"}))
    expect_error(m, image("err"), "QFOTADL", None, "ERROR")
    assert len(m.data) == 0


def case_qfotadl_cme_error():
    m = modem(replies=replies({b'AT+QFOTADL="FILE:*': b"\r\n+CME ERROR: 3\r\n"}))
    expect_error(m, image("cme"), "QFOTADL", None, "+CME ERROR: 3")


def case_fileend_500():
    e = expect_error(modem(after=urc(b"FILEEND", 500)), image("fe500"), "FILEEND", 500)
    assert str(e) == "FILEEND: 500: File download error", str(e)


def case_fileend_500_mid_stream():
    m = modem(at_bytes={1024: urc(b"FILEEND", 500)})
    expect_error(m, image("fe500mid", 300_000), "FILEEND", 500)
    assert len(m.data) < 300_000


def case_end_504():
    e = expect_error(
        modem(after=urc(b"FILEEND", 0) + upgrade_tail(end=504)), image("e504"), "END", 504
    )
    assert str(e) == "END: 504: FOTA upgrade failed", str(e)


def case_end_506():
    e = expect_error(
        modem(after=urc(b"FILEEND", 0) + upgrade_tail(end=506)), image("e506"), "END", 506
    )
    assert str(e) == "END: 506: FOTA firmware MD5 check error", str(e)


def case_end_unknown_code():
    e = expect_error(
        modem(after=urc(b"FILEEND", 0) + upgrade_tail(end=999)), image("e999"), "END", 999
    )
    assert "unknown error code 999" in str(e), str(e)


def case_reset_mid_transfer():
    m = modem(at_bytes={2048: b"\r\nRDY\r\n"})
    expect_error(m, image("rdy", 300_000), "STREAM", None, "rebooted")


def case_protocol_download_refused_before_sending():
    m = modem()
    e = expect_error(
        m, image("proto"), "PARAMS", None, "framing is not published", protocol_download=True
    )
    assert e.kind == "refused", e.kind
    assert m.commands == [] and len(m.data) == 0, m.commands


def case_010003_answer_is_a_stated_failure():
    # A modem that answers the note's protocol-download reply to the FILE command anyway.
    m = modem(replies=replies({b'AT+QFOTADL="FILE:*': b"\r\n010003\r\n"}))
    expect_error(m, image("proto2"), "QFOTADL", None, "010003")
    assert len(m.data) == 0


# ---------------------------------------------------------------- timeouts
def case_timeout_no_answer():
    m = modem(replies={})
    m.replies = {b"AT": b""}  # silent modem
    expect_error(m, image("silent"), "PREFLIGHT", None, "timeout")


def case_timeout_no_filestart():
    m = modem(replies=replies({b'AT+QFOTADL="FILE:*': OK}))
    expect_error(m, image("nofs"), "FILESTART", None, "timeout")
    assert len(m.data) == 0 and m.bytes_before_filestart == 0


def case_timeout_no_fileend():
    expect_error(modem(after=b""), image("nofe"), "FILEEND", None, "timeout")


def case_timeout_no_start():
    expect_error(modem(after=urc(b"FILEEND", 0)), image("nost"), "START", None, "timeout")


def case_timeout_no_end():
    tail = urc(b"FILEEND", 0) + urc(b"START") + urc(b"UPDATING", 1)
    expect_error(modem(after=tail), image("noend"), "UPDATING", None, "timeout")


def case_no_rdy_but_modem_answers():
    tail = urc(b"FILEEND", 0) + upgrade_tail(reboot=False)
    s, ev, uart = run(modem(after=tail), image("nordy"))
    assert s.revision_after == REV_B.decode()
    assert any("no RDY" in a for a, b in ev.kinds(AT.EV_LOG))


def case_silent_after_reboot():
    rep = replies({b"AT": [OK, b""], b"ATE0": [OK, b""]})
    m = modem(replies=rep)
    expect_error(m, image("silentrb"), "REBOOT", None, "did not answer AT after its reboot")


def case_stall_cts_held():
    m = modem()
    m.room = 0

    class Stall:  # takes 2000 bytes, then never another
        def __init__(self, inner):
            self.inner = inner

        def read(self, now):
            return self.inner.read(now)

        def write(self, data, now):
            if self.inner.data_mode and len(self.inner.data) >= 2000:
                return 0
            return self.inner.write(data, now)

    expect_error(Stall(m), image("stall", 10000), "STREAM", None, "took no byte")


def case_a_stop_inside_a_write_is_a_gap_not_a_stall():
    # Ctrl-Z lands inside a write while the line is full: when the process runs again
    # the stall's clock has run out too, but what happened is a stop, and it is said so
    # (a CI run failed as "took no byte (CTS held)").
    import time

    m = modem()
    m.room = 0

    class StopInWrite:  # 2000 bytes, then the line full; the second refusal is a stop
        def __init__(self, inner):
            self.inner = inner
            self.refused = 0

        def read(self, now):
            return self.inner.read(now)

        def write(self, data, now):
            if self.inner.data_mode and len(self.inner.data) >= 2000:
                self.refused += 1
                if self.refused == 2:
                    time.sleep(1.2)  # longer than the gap's 1 s and FAST's stall of 0.3 s
                return 0
            return self.inner.write(data, now)

    e = expect_error(StopInWrite(m), image("stop", 10000), "STREAM", None, "did not run for")
    assert "took no byte" not in str(e), e


# ---------------------------------------------------------------- refusals
def _refused(img, detail, **kw):
    m = modem()
    expect_error(m, img, "PARAMS", None, detail, **kw)
    assert m.commands == [] and len(m.data) == 0, m.commands


def case_refuse_missing_image():
    _refused("/tmp/qfota-no-such-image.bin", "image not found")


def case_refuse_empty_image():
    _refused(image("empty", 0), "image is empty")


def case_refuse_bad_mode():
    _refused(image("badmode"), "upgrade_mode must be 0 or 1", upgrade_mode=2)


def case_refuse_bad_download_urcs():
    _refused(image("baddl"), "download_URC_max must be 0 or 5-100", download_urcs=3)


def case_refuse_bad_update_urcs():
    _refused(image("badup"), "update_URC_max must be 0 or 5-100", update_urcs=101)


def case_refuse_unknown_timeout():
    _refused(image("badto"), "unknown timeout", timeouts={"forever_ms": 1})


# ---------------------------------------------------------------- URL mode
def _url_replies(end_name=b"HTTPEND", end_code=0, active=True, **over):
    r = replies()
    del r[b'AT+QFOTADL="FILE:*']
    # Only the note's write forms, and AT+QIACT? (the read forms are undocumented).
    r[b'AT+QICSGP=1,1,"CMNET","","",1'] = OK
    r[b'AT+QFOTA="FOTA/CID",1'] = OK
    r[b"AT+QIACT?"] = (b'\r\n+QIACT: 1,1,1,"10.1.2.3"\r\n' if active else b"") + OK
    r[b"AT+QIACT=1"] = OK
    start = b"HTTPSTART" if end_name == b"HTTPEND" else b"FTPSTART"
    tail = urc(b"DOWNLOADING", 5) + urc(end_name, end_code)
    if end_code == 0:
        tail += upgrade_tail()
    r[b'AT+QFOTADL="HTTP*'] = OK + urc(start) + tail
    r[b'AT+QFOTADL="FTP*'] = OK + urc(start) + tail
    r.update(over)
    return r


def _run_url(m, url, **kw):
    uart = machine.UART(1, 115200, peer=m)
    ev = Events()
    kw.setdefault("timeouts", FAST)
    s = update(UartPort(uart), url=url, on_event=ev, trace=True, **kw)
    return s, ev


def case_url_http_happy_pdp_in_place():
    m = ScriptedModem(_url_replies())
    s, ev = _run_url(m, "http://10.0.0.2:8080/EC200T.bin", cid=1, apn="cmnet", download_urcs=5)
    assert s.revision_after == REV_B.decode()
    assert b'AT+QFOTADL="http://10.0.0.2:8080/EC200T.bin",1,5,100' in m.commands, m.commands
    assert not any(c.startswith(b"AT+QIACT=") for c in m.commands), "PDP activated although active"
    # The note's sequence: AT+QICSGP (an APN was given), AT+QFOTA="fota/cid", then the context.
    pdp = [c for c in m.commands if c.startswith((b"AT+QICSGP", b"AT+QFOTA=", b"AT+QIACT"))]
    assert pdp == [b'AT+QICSGP=1,1,"cmnet","","",1', b'AT+QFOTA="fota/cid",1', b"AT+QIACT?"], pdp


def case_url_pdp_setup_when_missing():
    m = ScriptedModem(_url_replies(active=False))
    s, ev = _run_url(m, "http://10.0.0.2/EC200T.bin", cid=1, apn="cmnet")
    for cmd in (b'AT+QICSGP=1,1,"cmnet","","",1', b'AT+QFOTA="fota/cid",1', b"AT+QIACT=1"):
        assert cmd in m.commands, (cmd, m.commands)


def case_url_without_apn_still_brings_the_context_up():
    # Without --apn the fota context must still be named and active before AT+QFOTADL.
    m = ScriptedModem(_url_replies(active=False))
    s, ev = _run_url(m, "http://10.0.0.2/EC200T.bin")
    pdp = [c for c in m.commands if c.startswith((b"AT+QICSGP", b"AT+QFOTA=", b"AT+QIACT"))]
    assert pdp == [b'AT+QFOTA="fota/cid",1', b"AT+QIACT?", b"AT+QIACT=1"], pdp
    assert s.revision_after == REV_B.decode()


def case_url_note_only_modem_pdp():
    # A modem that answers ERROR to AT+QIACT? (not in the note) and to AT+QIACT=1 (its
    # context is active already): qfota goes on with the documented writes and downloads.
    rep = _url_replies()
    rep[b"AT+QIACT?"] = b"\r\nERROR\r\n"
    rep[b"AT+QIACT=1"] = b"\r\nERROR\r\n"
    m = ScriptedModem(rep)
    s, ev = _run_url(m, "http://10.0.0.2/EC200T.bin", apn="cmnet")
    assert s.revision_after == REV_B.decode()
    assert b"AT+QIACT=1" in m.commands
    assert any("may be active already" in a for a, b in ev.kinds(AT.EV_LOG)), ev.kinds(AT.EV_LOG)


def case_url_qiact_error_when_known_inactive_fails():
    rep = _url_replies(active=False)
    rep[b"AT+QIACT=1"] = b"\r\nERROR\r\n"
    m = ScriptedModem(rep)
    try:
        _run_url(m, "http://10.0.0.2/EC200T.bin")
    except FotaError as e:
        assert e.stage == "PDP" and "AT+QIACT=1" in str(e), str(e)
    else:
        raise AssertionError("no error")
    assert not any(c.startswith(b'AT+QFOTADL="') for c in m.commands)


def case_apn_injection_refused():
    m = ScriptedModem(_url_replies())
    for apn in ("x\rATI", 'a"b', "caf\u00e9", "a\nb"):
        try:
            _run_url(m, "http://10.0.0.2/EC200T.bin", apn=apn)
        except FotaError as e:
            assert e.stage == "PARAMS" and e.kind == "refused" and "apn" in str(e), str(e)
        else:
            raise AssertionError("accepted APN %r" % apn)
    assert m.commands == [], m.commands


def case_url_ftp_login_failed_redacted():
    m = ScriptedModem(_url_replies(b"FTPEND", 625), echo=True)
    try:
        _run_url(m, "ftp://test:s3cretpw@10.0.0.2:2121/EC200T.bin", cid=1)
    except FotaError as e:
        assert e.stage == "FTPEND" and e.code == 625, str(e)
        assert str(e) == "FTPEND: 625: Failed to login FTP", str(e)
    else:
        raise AssertionError("no error")


def case_url_password_never_in_events():
    m = ScriptedModem(_url_replies(b"FTPEND", 0), echo=True)
    s, ev = _run_url(m, "ftp://test:s3cretpw@10.0.0.2:2121/EC200T.bin", cid=1)
    assert "s3cretpw" not in ev.text(), "password leaked into events"
    assert "***" in ev.text()


def case_url_password_with_a_comma_never_in_events():
    m = ScriptedModem(_url_replies(b"FTPEND", 0), echo=True)
    s, ev = _run_url(m, "ftp://test:s3c,retpw@10.0.0.2:2121/EC200T.bin", cid=1)
    assert "s3c,retpw" not in ev.text() and "retpw" not in ev.text(), "password leaked"
    assert "test:***@10.0.0.2" in ev.text()


def case_url_http_error_code():
    m = ScriptedModem(_url_replies(b"HTTPEND", 711))
    try:
        _run_url(m, "https://example.invalid/a.bin")
    except FotaError as e:
        assert str(e) == "HTTPEND: 711: HTTP(S) URL error", str(e)
    else:
        raise AssertionError("no error")


def case_url_refusals():
    long_url = "http://h/" + "a" * 250
    cases = (
        ("gopher://h/a.bin", "must start with ftp://, http:// or https://"),
        (long_url, "longer than 255 bytes"),
        ("ftp://u:p@h/dir/a.bin", "at the server's root"),
        ("ftp://u:p@h:70000/a.bin", "port must be 1-65535"),
        ("ftp://" + "u" * 51 + ":p@h/a.bin", "user name longer than 50"),
        ("ftp://u:" + "p" * 51 + "@h/a.bin", "password longer than 50"),
        ("ftp://u:p@" + "h" * 51 + "/a.bin", "server longer than 50"),
        ("ftp://u:p@h/" + "a" * 51, "file path longer than 50"),
    )
    for url, why in cases:
        m = ScriptedModem(_url_replies())
        try:
            _run_url(m, url)
        except FotaError as e:
            assert e.stage == "PARAMS" and why in str(e), (url, str(e))
            assert "p" * 51 not in str(e)
        else:
            raise AssertionError("accepted " + url)
        assert m.commands == []


# ---------------------------------------------------------------- revision gate
REV_C = b"EC200TCNDAR02A09M16_01.001.01.001"


def _after_qgmr(m):
    cmds = m.commands
    return cmds[cmds.index(b"AT+QGMR") + 1 :]


def case_gate_already_at_target_sends_nothing_more():
    m = modem(replies=replies({b"AT+QGMR": b"\r\n" + REV_B + b"\r\n" + OK}))
    s, ev, uart = run(m, image("gate1"), expect_source=REV_A.decode(), target=REV_B.decode())
    assert s.result == "current" and s.revision_before == REV_B.decode(), s.result
    assert _after_qgmr(m) == [], m.commands
    assert len(m.data) == 0


def case_gate_running_neither_is_refused():
    m = modem(replies=replies({b"AT+QGMR": b"\r\n" + REV_C + b"\r\n" + OK}))
    e = expect_error(
        m,
        image("gate2"),
        "REVISION",
        None,
        "runs " + REV_C.decode(),
        expect_source=REV_A.decode(),
        target=REV_B.decode(),
    )
    assert e.kind == "refused" and e.exit_status == 2, (e.kind, e.exit_status)
    assert _after_qgmr(m) == [], m.commands


def case_revision_unchanged_after_end0_fails():
    m = modem(replies=replies({b"AT+QGMR": b"\r\n" + REV_A + b"\r\n" + OK}))
    e = expect_error(m, image("gate3"), "VERIFY", None, "still runs " + REV_A.decode())
    assert e.kind == "failed", e.kind


def case_target_differs_after_update_fails():
    rep = replies({b"AT+QGMR": [b"\r\n" + REV_A + b"\r\n" + OK, b"\r\n" + REV_C + b"\r\n" + OK]})
    expect_error(
        modem(replies=rep),
        image("gate4"),
        "VERIFY",
        None,
        "not " + REV_B.decode(),
        target=REV_B.decode(),
    )


def case_gate_takes_the_short_ati_revision_for_the_long_one():
    # A modem without AT+QGMR: ATI gives "Revision: EC200TCNDAR02A07M16"; the manifest has
    # AT+QGMR's long form. The same revision: the update goes on (and ends on the target).
    short_a = REV_A.split(b"_")[0]
    ati = [b"\r\nQuectel\r\nEC200T\r\nRevision: " + r + b"\r\n" + OK for r in (short_a, REV_B)]
    rep = replies({b"AT+QGMR": b"\r\nERROR\r\n", b"ATI": ati})
    s, ev, uart = run(
        modem(replies=rep), image("gate5"), expect_source=REV_A.decode(), target=REV_B.decode()
    )
    assert s.result == "updated" and s.revision_before == short_a.decode(), s.revision_before
    assert AT.same_revision(REV_A.decode(), short_a.decode())
    assert not AT.same_revision(REV_A.decode(), "EC200TCNDAR02A07")  # no partial names


# ---------------------------------------------------------------- interruption
def _interrupt_on(kind, value=None):
    # One Ctrl-C, at the first event of ``kind`` (a user presses it once).
    pressed = []

    def on_event(ev, a, b):
        if ev == kind and (value is None or a == value) and not pressed:
            pressed.append(ev)
            raise KeyboardInterrupt

    return on_event


def case_interrupted_in_transfer_says_how_to_get_out():
    m = modem()
    e = expect_error(
        m,
        image("int1", 200_000),
        "STREAM",
        None,
        "inside the FILE transfer",
        on_event=_interrupt_on(AT.EV_STAGE, "STREAM"),
    )
    assert e.kind == "interrupted" and e.exit_status == 130, e.kind
    assert "qfota recover" in str(e), str(e)


def case_interrupted_during_upgrade_says_keep_power():
    e = expect_error(
        modem(),
        image("int2"),
        "UPDATING",
        None,
        "do not power it off",
        on_event=_interrupt_on(AT.EV_UPDATING),
    )
    assert "chapter 5" in str(e) and e.kind == "interrupted", str(e)


def case_interrupted_in_preflight_nothing_changed():
    expect_error(
        modem(),
        image("int3"),
        "PREFLIGHT",
        None,
        "runs its old firmware",
        on_event=_interrupt_on(AT.EV_REVISION),
    )


# ---------------------------------------------------------------- info
def case_info_reads_and_changes_nothing():
    from qfota.driver import info

    rep = replies(
        {
            b"AT+IFC?": b"\r\n+IFC: 2,2\r\n" + OK,
            b"AT+CBC": b"\r\n+CBC: 0,80,3900\r\n" + OK,
            b"AT+QIACT?": b'\r\n+QIACT: 1,1,1,"10.1.2.3"\r\n' + OK,
            b"AT+CGSN": b"\r\n867531000000014\r\n" + OK,
        }
    )
    m = ScriptedModem(rep)
    uart = machine.UART(1, 115200, peer=m)
    s = info(UartPort(uart), timeouts=FAST)
    assert s.imei == "867531000000014", s.imei
    assert s.result == "info" and s.revision_before == REV_A.decode()
    assert s.flow_setting == "2,2" and s.voltage_mv == 3900 and s.pdp == [(1, 1)], (
        s.flow_setting,
        s.voltage_mv,
        s.pdp,
    )
    assert s.supported == [[(0, 0), (1, 1)], [(0, 0), (5, 100)], [(0, 0), (5, 100)]], s.supported
    # Reads only: no write form of any command went out.
    assert all(
        c in (b"AT", b"ATE0", b"AT+QGMR", b"AT+CGSN")
        or c.endswith(b"?")
        or c == b"AT+CBC"
        or c.endswith(b"=?")
        for c in m.commands
    ), m.commands


# ---------------------------------------------------------------- allocation
class LockPort:
    """A FILE-mode modem as a port that allocates nothing while it takes the package:
    answers commands (the driver writes those unlocked), then counts package bytes and
    hands out prepared bytes with a plain loop, so a whole ``update(lock_heap=True)``
    runs through the public API with the stream under ``heap_lock``."""

    def __init__(self, length):
        self.length = length
        self.count = 0
        self.sum = 0  # a running check of what arrived: a lost or repeated byte shows
        self.data_mode = False
        self.out = b""
        self.pos = 0
        self.line = bytearray()
        self.revs = [REV_A, REV_B]
        self.after = urc(b"FILEEND", 0) + upgrade_tail(updating=5) + b"\r\nRDY\r\n"

    def readinto(self, buf):
        out = self.out
        i = self.pos
        n = 0
        m = len(buf)
        while i < len(out) and n < m:
            buf[n] = out[i]
            n += 1
            i += 1
        self.pos = i
        return n

    def write(self, buf, off, n):
        if self.data_mode:
            k = self.length - self.count
            if n < k:
                k = n
            i = off
            end = off + k
            acc = self.sum
            while i < end:
                acc = (acc * 31 + buf[i]) & 0xFFFF
                i += 1
            self.sum = acc
            self.count += k
            if self.count >= self.length:
                self.data_mode = False
                self.out = self.after  # an existing object: no allocation
                self.pos = 0
            return n
        for i in range(off, off + n):
            c = buf[i]
            if c == 13:
                self._command(bytes(self.line))
                self.line = bytearray()
            elif c != 10:
                self.line.append(c)
        return n

    def _command(self, cmd):
        reply = OK
        if cmd == b"AT+QGMR":
            reply = b"\r\n" + self.revs.pop(0) + b"\r\n" + OK
        elif cmd == b"AT+QFOTADL=?":
            reply = b"\r\n+QFOTADL: <url>,(0,1),(0,5-100),(0,5-100)\r\n" + OK
        elif cmd.startswith(b'AT+QFOTADL="FILE:'):
            reply = OK + urc(b"FILESTART")
            self.data_mode = True
        self.out = self.out[self.pos :] + reply
        self.pos = 0

    def wait(self, ms):
        return self.pos < len(self.out)

    def wait_writable(self, ms):
        return True

    def close(self):
        pass


def _expected_sum(path):
    acc = 0
    for c in content(path):
        acc = (acc * 31 + c) & 0xFFFF
    return acc


def _update_locked(flow, size, **kw):
    img = image("lock" + flow, size)
    port = LockPort(size)
    # raises MemoryError (an internal error) on MicroPython if the stream allocates
    s = update(port, img, flow=flow, lock_heap=True, timeouts=FAST, chunk=1024, **kw)
    assert port.count == size, port.count
    assert port.sum == _expected_sum(img), "the package arrived changed"
    assert s.sent == size and s.revision_after == REV_B.decode(), (s.sent, s.revision_after)


def case_stream_hw_allocates_nothing():
    _update_locked("hw", 300_000)


def case_stream_paced_allocates_nothing():
    _update_locked("none", 20_000, rate=200_000, rate_above_note=True)


def case_heap_lock_is_real():
    # The lock must bite on MicroPython, or the two cases above prove nothing.
    if not MICROPYTHON:
        return
    import micropython

    micropython.heap_lock()
    try:
        bytearray(64)
    except MemoryError:
        return
    finally:
        micropython.heap_unlock()
    raise AssertionError("heap_lock did not stop an allocation")


# ---------------------------------------------------------------- recovery after an MCU reset
def _recover(m, fileend_ms=300, **kw):
    from qfota.driver import recover

    uart = machine.UART(1, 115200, peer=m)
    timeouts = dict(FAST)
    timeouts.update({"fileend_ms": fileend_ms, "end_ms": 1500, "reboot_ms": 500})
    return recover(UartPort(uart), timeouts=timeouts, **kw)


def case_recover_mid_upgrade():
    m = modem()
    m.say(urc(b"UPDATING", 60) + upgrade_tail(updating=3), machine._ticks() + 50)
    m.replies[b"AT+QGMR"] = b"\r\n" + REV_B + b"\r\n" + OK
    s = _recover(m)
    assert s.revision_after == REV_B.decode() and s.reboots == 1


def case_recover_idle_modem_probed_after_quiet_window():
    m = modem()
    s = _recover(m)
    assert s.revision_after == REV_A.decode()
    assert s.recovered is None


def case_recover_without_listening_says_no_update_at_once():
    # `qfota recover` when nothing was cut on this port: it probes at once, and a modem
    # that answers AT with no FOTA URC is not updating: said so, then its revision.
    from qfota.compat import ticks_diff, ticks_ms

    m = modem()
    t0 = ticks_ms()
    ev = Events()
    s = _recover(m, listen_first=False, on_event=ev, fileend_ms=20_000)
    ms = ticks_diff(ticks_ms(), t0)
    assert ms < 10_000, "took %d ms: waited out the quiet window" % ms
    assert m.commands[0] == b"AT", m.commands
    assert any("no update under way" in a for a, b in ev.kinds(AT.EV_LOG)), ev.text()
    assert s.revision_after == REV_A.decode() and s.result == "recovered"


def case_rdy_while_listening_moves_on_at_once():
    # A rerun after a modem reset: RDY while listening ends the wait (the transfer it
    # listened for is over), for an update and for a recover, not fileend_ms later.
    from qfota.compat import ticks_diff, ticks_ms

    for job in ("update", "recover"):
        m = modem()
        m.say(b"\r\nRDY\r\n", machine._ticks() + 100)
        t0 = ticks_ms()
        if job == "recover":
            s = _recover(m, fileend_ms=20_000)
            assert s.revision_after == REV_A.decode(), s.revision_after
        else:
            timeouts = dict(FAST, fileend_ms=20_000)
            s, ev, _u = run(m, image("rdylisten"), listen_first=True, timeouts=timeouts)
            assert s.revision_after == REV_B.decode(), s.revision_after
        ms = ticks_diff(ticks_ms(), t0)
        assert ms < 10_000, "%s took %d ms: waited out the quiet window" % (job, ms)


class _HalfSent(ScriptedModem):
    """A modem still in a FILE transfer the MCU abandoned: bytes are package data until FILEEND."""

    def write(self, data, now):
        if self.data_mode:
            self.data.extend(data)
            return len(data)
        return ScriptedModem.write(self, data, now)

    def read(self, now):
        out = ScriptedModem.read(self, now)
        if b"FILEEND" in out:
            self.data_mode = False
        return out


def case_recover_half_sent_transfer():
    m = _HalfSent(replies())
    m.data_mode = True
    m.say(urc(b"FILEEND", 500), machine._ticks() + 150)
    s = _recover(m)
    assert len(m.data) == 0, "sent %d bytes into the dead transfer" % len(m.data)
    assert s.recovered == "FILEEND 500", s.recovered
    assert s.revision_after == REV_A.decode()


def case_recover_end_error():
    m = modem()
    m.say(urc(b"UPDATING", 10) + urc(b"END", 504), machine._ticks() + 50)
    try:
        _recover(m)
    except FotaError as e:
        assert str(e) == "END: 504: FOTA upgrade failed", str(e)
    else:
        raise AssertionError("no error")


def case_recover_silent_modem():
    m = modem(replies={})
    m.replies = {}
    try:
        _recover(m)
    except FotaError as e:
        assert e.stage == "RECOVER" and e.kind == "timeout", str(e)
    else:
        raise AssertionError("no error")


def case_garbage_bytes_are_logged_not_fatal():
    img = image("garbage")
    junk = b"\r\n\xff\xfe\x80garbage\x01\r\n" + b"x" * 600 + b"\r\n"
    qgmr = junk + REV_A + b"\r\n" + OK
    m = modem(
        replies=replies({b"AT+QGMR": [qgmr, b"\r\n" + REV_B + b"\r\n" + OK]}), at_bytes={500: junk}
    )
    s, ev, uart = run(m, img)
    assert s.revision_before == REV_A.decode(), s.revision_before
    assert bytes(m.data) == content(img)
    rx = [a for a, b in ev.kinds(AT.EV_RX)]
    assert any("\\xff\\xfe\\x80garbage\\x01" in x for x in rx), rx


def case_cme_error_with_garbage_code():
    m = modem(replies=replies({b'AT+QFOTADL="FILE:*': b"\r\n+CME ERROR: \xff\r\n"}))
    expect_error(m, image("cmejunk"), "QFOTADL", None, "+CME ERROR: \\xff")


def case_stale_fota_urcs_before_qfotadl_ignored():
    # Left over from an aborted update: a FILEEND,500 and END,504 during preflight.
    stale = b'\r\n+QIND: "FOTA","FILEEND",500\r\n\r\n+QIND: "FOTA","END",504\r\n'
    rep = replies({b"ATE0": [stale + OK, OK]})
    s, ev, uart = run(modem(replies=rep), image("stale"))
    assert s.revision_after == REV_B.decode()
    assert any("before AT+QFOTADL ignored" in a for a, b in ev.kinds(AT.EV_LOG))


def case_url_mode_ignores_fileend():
    rep = _url_replies()
    tail = urc(b"FILEEND", 0) + urc(b"DOWNLOADING", 5) + urc(b"HTTPEND", 0) + upgrade_tail()
    rep[b'AT+QFOTADL="HTTP*'] = OK + urc(b"HTTPSTART") + tail
    m = ScriptedModem(rep)
    s, ev = _run_url(m, "http://10.0.0.2/EC200T.bin")
    assert s.revision_after == REV_B.decode()
    assert any("FILEEND ignored" in a for a, b in ev.kinds(AT.EV_LOG)), ev.kinds(AT.EV_LOG)


def case_on_event_raising_stops_before_qfotadl():
    class WrongRevision(Exception):
        pass

    def stop_on_revision(ev, a, b):
        if ev == AT.EV_REVISION and a == "before":
            raise WrongRevision(b)

    m = modem()
    try:
        run(m, image("stopearly"), on_event=stop_on_revision)
    except WrongRevision:
        pass
    else:
        raise AssertionError("the update went on")
    assert not any(c.startswith(b"AT+IFC") or c.startswith(b'AT+QFOTADL="') for c in m.commands), (
        m.commands
    )
    assert len(m.data) == 0


def case_slow_modem_late_probe_answers_not_misread():
    # The modem answers after 1.1 s: two probes go out, the second's OK comes while
    # ATE0 waits. It must not be taken for ATE0's (nor ATE0's for AT+QGMR's).
    m = modem(slow={b"AT": 1100, b"ATE0": 1100, b"AT+QGMR": 1100})
    timeouts = dict(FAST)
    timeouts.update({"probe_ms": 5000, "settle_ms": 5000, "command_ms": 3000, "reboot_ms": 3000})
    s, ev, uart = run(m, image("slow"), timeouts=timeouts)
    assert s.revision_before == REV_A.decode(), s.revision_before
    assert s.revision_after == REV_B.decode(), s.revision_after
    assert m.commands.count(b"AT") >= 2, m.commands


def case_a_late_echo_is_not_read_as_the_answer():
    # After the upgrade's reboot the modem echoes again (ATE0 is not kept): the echo of
    # an earlier probe that comes after AT+QGMR went out is not its answer. It was read
    # as the revision ("the modem runs AT"): make soak, seed 12071.
    late = b"\r\nAT\r\n\r\nATE0\r\n\r\n" + REV_B + b"\r\n" + OK
    m = modem(replies=replies({b"AT+QGMR": [b"\r\n" + REV_A + b"\r\n" + OK, late]}))
    s, ev, uart = run(m, image("late-echo"))
    assert s.error is None, s.error
    assert s.revision_after == REV_B.decode(), s.revision_after


CASES = [k for k in sorted(globals()) if k.startswith("case_")]
