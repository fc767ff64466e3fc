"""Property-based tests (hypothesis) of the line framer, the URC parser and the session.

What is claimed, and checked here on arbitrary input:

- Framing: any byte stream split at any points gives the same lines as unsplit, and the
  same as a reference model (any run of CR/LF ends a line, empty lines are skipped, a line
  longer than the buffer is dropped whole and counted); the buffer stays the same object
  of the same size.
- The URC parser, on any line, returns a known kind and a sane value and never raises; it
  reads only ``buf[:n]``; every shape of every URC (docs/FIELD.md, "URC shapes") parses
  to the right kind and value; a truncated FOTA line is never taken for another event.
- The session, given a whole update's conversation with the quirks of real modules
  (echo, noise URCs, garbage, over-long lines, incomplete lines, doubled CR LF), finishes
  it, with the same events however the bytes are split. Fed arbitrary bytes in any state it
  raises nothing but ``FotaError``, and that only on a line that warrants it (a final
  result code, RDY, a FOTA URC), never on noise; silence afterwards always ends (done,
  or a timeout) after a bounded number of polls; memory does not grow with the input.
- The same parser, framer and session run on MicroPython and agree with CPython.

Examples are modest (``max_examples`` 40-150) so the file runs in well under a minute.
"""

import json
import re
import tracemalloc
from typing import Any

import pytest
from conftest import run_micropython
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qfota import at as AT
from qfota import session as S
from qfota import urc as U
from qfota.at import BODY_MAX, AtChannel
from qfota.compat import ticks_add
from qfota.defaults import TIMEOUTS
from qfota.errors import FotaError
from qfota.lines import LINE_MAX, LineFramer
from qfota.report import EXIT_TIMEOUT, exit_code

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FEW = settings(FUZZ, max_examples=40)
MP = settings(FUZZ, max_examples=6)

REV_A = b"EC200TCNDAR02A07M16_01.001.01.001"
REV_B = b"EC200TCNDAR02A08M16_01.001.01.001"
OK = b"\r\nOK\r\n"
VALID_KINDS = {
    U.NONE,
    U.FTPSTART,
    U.FTPEND,
    U.HTTPSTART,
    U.HTTPEND,
    U.FILESTART,
    U.FILEEND,
    U.DOWNLOADING,
    U.START,
    U.UPDATING,
    U.END,
    U.RESTORE,
    U.RDY,
    U.BOOT,
    U.INCOMPLETE,
}
NEEDS_VALUE = {U.FTPEND, U.HTTPEND, U.FILEEND, U.DOWNLOADING, U.UPDATING, U.END}
FOTA_KINDS = list(range(1, len(U.NAMES)))  # FTPSTART .. RESTORE
SEPS = (b"\r\n", b"\r", b"\n", b"\r\r\n", b"\r\n\r\n", b"\n\r")


# ------------------------------------------------------------------ reference framer
def ref_frame(data, size=LINE_MAX):
    """(lines, dropped, pending) of ``LineFramer`` by its documented rule."""
    pieces = re.split(rb"[\r\n]", bytes(data))
    done, last = pieces[:-1], pieces[-1]
    lines = [p for p in done if 0 < len(p) <= size]
    dropped = sum(1 for p in done if len(p) > size)
    return lines, dropped, (len(last) if len(last) <= size else 0)


def chunks_of(data, cuts):
    bounds = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return list(zip(bounds, bounds[1:]))


# ------------------------------------------------------------------ strategies
printable = st.binary(min_size=1, max_size=60).map(
    lambda b: bytes(32 + c % 95 for c in b)
)  # ASCII 32..126, never CR/LF
garbage_line = st.binary(min_size=1, max_size=40).map(
    lambda b: bytes(0x80 | c if c in (10, 13) else c | 0x80 for c in b)
)  # non-UTF-8 bytes >= 0x80, never CR/LF
long_line = st.integers(LINE_MAX + 1, LINE_MAX + 200).map(lambda n: b"#" * n)
edge_line = st.integers(LINE_MAX - 1, LINE_MAX + 1).map(lambda n: b"x" * n)


def _case(draw, text):
    how = draw(st.sampled_from(("upper", "lower", "title", "mixed")))
    if how == "upper":
        return text.upper()
    if how == "lower":
        return text.lower()
    if how == "title":
        return text[:1].upper() + text[1:].lower()
    flips = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    return "".join(c.swapcase() if f else c for c, f in zip(text, flips))


_WORDS = {k: U.NAMES[k].decode() for k in FOTA_KINDS}


@st.composite
def fota_urc(draw, kind=None, value=None):
    """(line without CR LF, kind, value) in any shape of docs/FIELD.md, "URC shapes"."""
    if kind is None:
        kind = draw(st.sampled_from(FOTA_KINDS))
    if value is None:
        if kind in NEEDS_VALUE:
            value = draw(st.one_of(st.integers(0, 100), st.integers(0, 99999)))
        elif kind == U.RESTORE:
            value = draw(st.one_of(st.just(-1), st.integers(0, 100)))
        else:
            value = -1
    word = _WORDS[kind]
    if kind in (U.HTTPSTART, U.HTTPEND) and draw(st.booleans()):
        word = "HTTP " + word[4:]  # "HTTP START" / "HTTP END"
    if kind == U.HTTPEND and draw(st.booleans()):
        word = "HTTPEnd"
    else:
        word = _case(draw, word)
    sp = st.sampled_from(("", " ", "  "))
    q = draw(st.sampled_from(('"', '"', "")))  # quoted (mostly) or bare
    name = q + draw(sp) + word + draw(st.sampled_from(("", "", " "))) + q
    fota = q + _case(draw, "FOTA") + q
    sep = draw(st.sampled_from((",", ", ", " ,", " , ")))
    line = draw(sp) + _case(draw, "+QIND:") + draw(sp) + fota + sep + name
    if value >= 0:
        num = str(value)
        if draw(st.booleans()):
            num = draw(sp) + num
        if draw(st.integers(0, 5)) == 0:
            num = '"' + num + '"'
        if draw(st.booleans()):
            num += draw(st.sampled_from(("%", "%,1,1", ",1,1", ",0", ' ,"x"')))
        line += draw(st.sampled_from((",", ", ", " ,"))) + num
    return line.encode(), kind, value


other_urc = st.sampled_from(
    (
        (b"RDY", U.RDY),
        (b"rdy", U.RDY),
        (b" RDY", U.RDY),
        (b"+CFUN: 1", U.BOOT),
        (b"+CPIN: READY", U.BOOT),
        (b"+QUSIM: 1", U.BOOT),
        (b"+QIND: SMS DONE", U.BOOT),
        (b'+QIND: "SMS DONE"', U.BOOT),
        (b"+QIND: PB DONE", U.BOOT),
        (b"APP RDY", U.BOOT),
        (b"+CREG: 1", U.NONE),
        (b'+QIND: "csq",20,99', U.NONE),
        (b'+QIND: "act","LTE"', U.NONE),
        (b"OK", U.NONE),
        (b"ERROR", U.NONE),
        (b"+CME ERROR: 3", U.NONE),
        (b"AT+QGMR", U.NONE),
        (REV_A, U.NONE),
        (b'+QIND: "FOTA","DOWNLOA', U.INCOMPLETE),
        (b'+QIND: "FOTA"', U.INCOMPLETE),
        (b'+QIND: "FOTA","END"', U.INCOMPLETE),
        (b'+QIND: "FOTA","UPDATING",', U.INCOMPLETE),
        (b'+QIND: "FOTA","BOGUS",1', U.INCOMPLETE),
    )
)

any_line = st.one_of(
    st.binary(max_size=80),
    printable,
    garbage_line,
    fota_urc().map(lambda t: t[0]),
    other_urc.map(lambda t: t[0]),
)

# Modem-ish byte streams: lines and separators of every kind, glued at random.
token = st.one_of(
    st.binary(max_size=40),
    printable,
    garbage_line,
    long_line,
    edge_line,
    fota_urc().map(lambda t: t[0]),
    other_urc.map(lambda t: t[0]),
    st.sampled_from(SEPS),
    st.sampled_from(SEPS),
)
stream = st.lists(token, max_size=30).map(b"".join)
cuts = st.lists(st.integers(0, 1 << 16), max_size=24)


# ------------------------------------------------------------------ framer
@FUZZ
@given(
    data=stream, cuts=cuts, size=st.sampled_from((1, 2, 7, 64, LINE_MAX)), kind=st.integers(0, 2)
)
def test_framer_split_invariant_and_matches_reference(data, cuts, size, kind):
    got = []
    f = LineFramer(lambda buf, n: got.append(bytes(buf[:n])) or seen.append(buf), size)
    seen = []
    buf0 = f.buf
    src = (bytes, bytearray, lambda b: memoryview(bytearray(b)))[kind](data)
    for a, b in chunks_of(data, cuts):
        f.feed(src, a, b)
        assert f.buf is buf0 and len(f.buf) == size  # never grown, never replaced
    lines, dropped, pending = ref_frame(data, size)
    assert got == lines
    assert f.dropped == dropped
    assert f.pending() == pending
    assert all(b is buf0 for b in seen)  # the consumer gets the framer's own buffer


@FUZZ
@given(n=st.integers(LINE_MAX + 1, 5000), before=stream, after=stream, cuts=cuts)
def test_long_line_dropped_counted_then_framing_recovers(n, before, after, cuts):
    data = before + b"\r\n" + bytes(65 + i % 26 for i in range(n)) + b"\r\nOK\r\n" + after
    got = []
    f = LineFramer(lambda buf, k: got.append(bytes(buf[:k])))
    for a, b in chunks_of(data, cuts):
        f.feed(data, a, b)
    assert len(f.buf) == LINE_MAX
    lines, dropped, _ = ref_frame(data)
    assert got == lines and f.dropped == dropped >= 1
    assert b"OK" in got  # the line after the long one is whole


# ------------------------------------------------------------------ URC parser
@FUZZ
@given(line=any_line, junk=st.binary(max_size=300))
def test_parser_total_on_any_line(line, junk):
    p = U.UrcParser()
    kind = p.parse(line, len(line))
    assert kind in VALID_KINDS
    assert p.value == -1 or 0 <= p.value <= 99999
    if kind in NEEDS_VALUE:
        assert p.value >= 0
    if kind in (U.NONE, U.RDY, U.BOOT, U.INCOMPLETE):
        assert p.value == -1
    # Reads only buf[:n]: the framer hands over its whole buffer with stale bytes after n.
    value = p.value
    big = bytearray(line + junk)
    assert p.parse(big, len(line)) == kind and p.value == value
    assert p.parse(line, len(line)) == kind and p.value == value  # no state carried


@FUZZ
@given(
    urc=fota_urc(), lead=st.sampled_from((b"", b"\r\n")), tail=st.sampled_from(SEPS[:2] + SEPS[4:5])
)
def test_parser_round_trip_field_notes_shapes(urc, lead, tail):
    line, kind, value = urc
    p = U.UrcParser()
    assert (p.parse(line, len(line)), p.value) == (kind, value), line
    # ... and through the framer, in bootloader framing (no leading CR LF, doubled after).
    got = []
    f = LineFramer(lambda buf, n: got.append((p.parse(buf, n), p.value)))
    data = lead + line + tail
    f.feed(data, 0, len(data))
    assert got == [(kind, value)]


@FUZZ
@given(
    urcs=st.lists(st.one_of(fota_urc(), other_urc.map(lambda t: (t[0], t[1], -1))), max_size=12),
    seps=st.lists(st.sampled_from(SEPS), min_size=12, max_size=12),
    noise=st.lists(st.one_of(garbage_line, long_line), max_size=4),
    cuts=cuts,
)
def test_urc_events_split_invariant(urcs, seps, noise, cuts):
    data = b""
    want = []
    for i, (line, kind, value) in enumerate(urcs):
        data += line + seps[i]
        want.append((kind, value))
        if i < len(noise):
            data += noise[i] + b"\r\n"
            if len(noise[i]) <= LINE_MAX:
                want.append((U.NONE, -1))  # garbage: a line, but no URC
    p = U.UrcParser()
    got = []
    f = LineFramer(lambda buf, n: got.append((p.parse(buf, n), p.value)))
    for a, b in chunks_of(data, cuts):
        f.feed(data, a, b)
    assert got == want


@FUZZ
@given(urc=fota_urc(), cut=st.integers(0, 200))
def test_truncated_fota_line_never_another_event(urc, cut):
    line, kind, value = urc
    cut = cut % (len(line) + 1)
    p = U.UrcParser()
    got = p.parse(line[:cut], cut)
    assert got in (U.NONE, U.INCOMPLETE, kind), (line[:cut], got)
    if got == kind and value >= 0 and p.value >= 0:
        assert str(value).startswith(str(p.value)), (line[:cut], p.value)


# ------------------------------------------------------------------ conversations
def _reply(lines, final=b"OK"):
    out = b""
    for i, line in enumerate(lines):
        out += (b"\r\n" if i == 0 else b"") + line + b"\r\n"
    return out + b"\r\n" + final + b"\r\n"


def _urc(name, value=None):
    if value is None:
        return b'\r\n+QIND: "FOTA","%s"\r\n' % name
    return b'\r\n+QIND: "FOTA","%s",%d\r\n' % (name, value)


BOOT = b"\r\nRDY\r\n\r\n+CFUN: 1\r\n\r\n+CPIN: READY\r\n\r\n+QIND: SMS DONE\r\n"
VARIANTS = ("file", "file0", "file-usb-ati-cbc", "http", "ftp-setup", "recover")
LENGTH = 20_000


def conversation(variant, dl=0, up=5, filestart_first=False):
    """(Session kwargs, steps) of one whole update from the modem's side.

    A step is ("cmd", line, reply): the session must be sending ``line``, the modem
    answers ``reply`` (echo added by the runner); ("urc", bytes); ("complete",): the
    driver wrote the last byte.
    """
    kw: dict[str, Any] = {"download_urcs": dl, "update_urcs": up}
    steps = []
    if variant != "recover":
        steps += [("cmd", b"AT", OK), ("cmd", b"ATE0", OK)]
        if variant == "file-usb-ati-cbc":
            steps += [
                ("cmd", b"AT+QGMR", b"\r\nERROR\r\n"),
                ("cmd", b"ATI", _reply([b"Quectel", b"EC200T", b"Revision: " + REV_A])),
            ]
        else:
            steps.append(("cmd", b"AT+QGMR", _reply([REV_A])))
        steps.append(
            ("cmd", b"AT+QFOTADL=?", _reply([b"+QFOTADL: <url>,(0,1),(0,5-100),(0,5-100)"]))
        )
    if variant.startswith("file"):
        kw["length"] = LENGTH
        mode = 0 if variant == "file0" else 1
        kw["upgrade_mode"] = mode
        if variant == "file-usb-ati-cbc":
            kw.update(usb=True, min_voltage_mv=3500)
            steps += [
                ("cmd", b"AT+CBC", _reply([b"+CBC: 0,80,3900"])),
                ("cmd", b'AT+QCFG="usbifc",2,2', OK),
                ("cmd", b'AT+QCFG="usbifc"', _reply([b'+QCFG: "usbifc",2,2'])),
            ]
        else:
            steps.append(("cmd", b"AT+IFC=2,2", OK))
        dl_cmd = b'AT+QFOTADL="FILE:%d",%d,%d,%d' % (LENGTH, mode, dl, up)
        fs = _urc(b"FILESTART")
        if filestart_first:
            steps.append(("cmd", dl_cmd, fs + OK))
        else:
            steps += [("cmd", dl_cmd, OK), ("urc", fs)]
        steps.append(("complete",))
        steps += [("urc", _urc(b"DOWNLOADING", k)) for k in range(1, dl + 1)]
        steps.append(("urc", _urc(b"FILEEND", 0)))
        if mode == 0:
            steps.append(("urc", BOOT))
    elif variant in ("http", "ftp-setup"):
        http = variant == "http"
        url = b"http://10.0.0.2/EC200T.bin" if http else b"ftp://u:pw@10.0.0.2/EC200T.bin"
        kw.update(url=url.decode(), cid=1, apn="cmnet")
        # The note's writes, then the context: active already (http) or not (ftp).
        steps += [
            ("cmd", b'AT+QICSGP=1,1,"cmnet","","",1', OK),
            ("cmd", b'AT+QFOTA="fota/cid",1', OK),
        ]
        if http:
            steps.append(("cmd", b"AT+QIACT?", _reply([b'+QIACT: 1,1,1,"10.1.2.3"'])))
        else:
            steps += [("cmd", b"AT+QIACT?", OK), ("cmd", b"AT+QIACT=1", OK)]
        start, end = (b"HTTPSTART", b"HTTPEND") if http else (b"FTPSTART", b"FTPEND")
        steps.append(("cmd", b'AT+QFOTADL="%s",1,%d,%d' % (url, dl, up), OK))
        steps.append(("urc", _urc(start)))
        steps += [("urc", _urc(b"DOWNLOADING", k)) for k in range(1, dl + 1)]
        steps.append(("urc", _urc(end, 0)))
    else:
        kw = {"recover": True, "update_urcs": up}
        steps.append(("urc", _urc(b"UPDATING", 2)))
    if variant != "recover":
        steps.append(("urc", _urc(b"START")))
    steps += [("urc", _urc(b"UPDATING", k)) for k in range(1, up + 1)]
    steps += [("urc", _urc(b"END", 0)), ("urc", BOOT)]
    steps += [("cmd", b"AT", OK), ("cmd", b"ATE0", OK), ("cmd", b"AT+QGMR", _reply([REV_B]))]
    return kw, steps


class Recorder:
    def __init__(self):
        self.events = []


class Driven:
    """A Session driven as ``qfota.driver`` drives it: after each call its events are
    taken (and recorded), and the error that made it terminal is raised from that call."""

    def __init__(self, session, rec=None):
        self.s = session
        self.rec = rec
        self._raised = False

    def __getattr__(self, name):
        return getattr(self.s, name)

    def _after(self):
        ev = self.s.next_event()
        while ev is not None:
            if self.rec is not None:
                self.rec.events.append(ev)
            ev = self.s.next_event()
        if self.s.error is not None and not self._raised:
            self._raised = True
            raise self.s.error

    def start(self, now):
        self.s.start(now)
        self._after()

    def feed(self, data, a, b, now):
        self.s.feed(data, a, b, now)
        self._after()

    def poll(self, now):
        self.s.poll(now)
        self._after()

    def image_complete(self, now):
        self.s.image_complete(now)
        self._after()


def new_session(kw, now=0, events=True):
    rec = Recorder()
    s = S.Session(trace=events, **kw)
    if s.length:
        s.image_sent(s.length)  # the driver is infinitely fast: every byte is out
    d = Driven(s, rec if events else None)
    d.start(now)
    return d, rec


def render(steps, noise=(), echo_on=True):
    """The steps' bytes as one stream, with echo and with ``noise[i]`` before step i."""
    out = b""
    echo = echo_on
    for i, step in enumerate(steps):
        if i < len(noise):
            out += noise[i]
        if step[0] == "cmd":
            if echo:
                out += step[1] + b"\r"
            if step[1] == b"ATE0":
                echo = False
            out += step[2]
        elif step[0] == "urc":
            out += step[1]
            if b"RDY" in step[1]:
                echo = True
    return out


# Noise that must change nothing: unknown URCs, boot URCs, garbage, over-long and
# incomplete lines, blank lines.
noise_token = st.one_of(
    st.just(b""),
    st.just(b""),
    st.sampled_from(
        (
            b"\r\n+CREG: 1\r\n",
            b'\r\n+QIND: "csq",20,99\r\n',
            b"\r\n+CPIN: READY\r\n",
            b"\r\n\r\n",
            b'\r\n+QIND: "FOTA","DOWNLOA\r\n',
            b'+QIND: "FOTA"," DOWNLOA\r\n\r\n',
            b'\r\n+QIND: "FOTA","END"\r\n',
            b'\r\n+QIURC: "pdpdeact",2\r\n',
        )
    ),
    garbage_line.map(lambda b: b"\r\n" + b + b"\r\n"),
    long_line.map(lambda b: b"\r\n" + b + b"\r\n"),
)
variant_st = st.sampled_from(VARIANTS)
conv_args = st.fixed_dictionaries(
    {
        "dl": st.sampled_from((0, 5)),
        "up": st.sampled_from((0, 5, 7)),
        "filestart_first": st.booleans(),
    }
)


@FEW
@given(
    variant=variant_st,
    args=conv_args,
    noise=st.lists(noise_token, max_size=40),
    cuts=cuts,
    now=st.integers(0, (1 << 30) - 1),
)
def test_session_whole_update_split_invariant(variant, args, noise, cuts, now):
    kw, steps = conversation(variant, **args)
    data = render(steps, noise)
    whole, rec_whole = new_session(kw, now)
    whole.feed(data, 0, len(data), now)
    split, rec_split = new_session(kw, now)
    for a, b in chunks_of(data, cuts):
        split.feed(bytearray(data), a, b, now)

    # The session keeps every vital event whatever the feeding; chatty ones (trace, log,
    # progress) are capped per call, so they match whenever the whole feed dropped none.
    def vital(evs):
        return [e for e in evs if e[0] not in AT.CHATTY_EVENTS]

    assert vital(rec_whole.events) == vital(rec_split.events)
    if whole.events_dropped == 0:
        assert rec_whole.events == rec_split.events
    for s in (whole, split):
        assert s.done, (s.stage, rec_whole.events[-5:])
        assert s.revision_after == REV_B.decode()
        if variant != "recover":
            assert s.revision_before == REV_A.decode()
        assert s.reboots == (2 if variant == "file0" else 1)


# ------------------------------------------------------------------ arbitrary bytes in any state
def run_steps(s, steps, now, noise=()):
    """Play ``steps`` against ``s``, checking each command the session sends."""
    echo = True
    for i, step in enumerate(steps):
        if i < len(noise) and noise[i]:
            s.feed(noise[i], 0, len(noise[i]), now)
        if step[0] == "cmd":
            out = s.take_output()
            assert out == step[1] + b"\r", (out, step)
            data = (step[1] + b"\r" if echo else b"") + step[2]
            if step[1] == b"ATE0":
                echo = False
        elif step[0] == "urc":
            data = step[1]
            if b"RDY" in data:
                echo = True
        else:
            s.image_complete(now)
            continue
        s.feed(data, 0, len(data), now)


_WARRANT = re.compile(rb"(OK|ERROR|\+CME ERROR:.*|010003| *RDY)", re.I | re.S)
_QIND_FOTA = re.compile(rb' *\+QIND:[ "]*FOTA[ "]*,', re.I)


def warrants(line, err, stage):
    """Whether ``line`` may end an update in ``stage`` with ``err``."""
    if _WARRANT.fullmatch(line):
        return err.stage in (stage, "PARAMS")
    if _QIND_FOTA.match(line):
        if err.code is not None and str(err.code).encode() not in line:
            return False
        return err.stage in (stage, "FILEEND", "FTPEND", "HTTPEND", "END")
    return False


dangerous_line = st.one_of(
    other_urc.map(lambda t: t[0]),
    fota_urc().map(lambda t: t[0]),
    st.sampled_from(
        (
            b"OK",
            b"ok",
            b"ERROR",
            b"+CME ERROR: 3",
            b"+CME ERROR: \xff\xfe",
            b"010003",
            b"RDY",
            b'+QIND: "FOTA","FILEEND",0',
            b'+QIND: "FOTA","FILEEND",500',
            b'+QIND: "FOTA","END",504',
            b'+QIND: "FOTA","HTTPEND",0',
            b'+QIND: "FOTA","FTPEND",0',
            b'+QIND: "FOTA","START"',
            b"+QFOTADL: <url>,(0,1),(0,5-100),(0,5-100)",
            b"+QFOTADL: (a-b),(,),(((",
            b"+CBC: 0,80,abc",
            b"+CBC: 0",
            b'+QCFG: "usbifc",0,0',
            b'+QIACT: 1,1,1,"10.0.0.1"',
            b"+QIACT:",
            b"Revision:",
            b"Revision: X",
        )
    ),
)
fuzz_stream = st.lists(
    st.one_of(
        st.binary(max_size=30),
        dangerous_line,
        garbage_line,
        printable,
        long_line,
        st.sampled_from(SEPS),
    ),
    max_size=16,
).map(lambda parts: b"\r\n".join(parts))


def _stops():
    out = []
    for v in VARIANTS:
        _kw, steps = conversation(v, dl=5, up=5)
        for k in range(len(steps) + 1):
            out.append((v, k, False))
            if k < len(steps) and steps[k][0] == "cmd":
                out.append((v, k, True))  # the command is out, its answer not yet in
    return out


STOPS = _stops()


def session_at(stop, now):
    """A session stopped at one point of a conversation (every state is reachable)."""
    variant, k, sent = stop
    kw, steps = conversation(variant, dl=5, up=5)
    s, rec = new_session(kw, now)
    run_steps(s, steps[:k], now)
    return s, rec


@FUZZ
@given(stop=st.sampled_from(STOPS), data=fuzz_stream, now=st.integers(0, (1 << 30) - 1))
def test_session_any_bytes_in_any_state(stop, data, now):
    s, rec = session_at(stop, now)
    line = b""
    for i in range(len(data)):  # byte by byte: an error is pinned to the line that ended
        stage = s.stage
        c = data[i]
        try:
            s.feed(data, i, i + 1, now)
        except FotaError as e:
            assert c in (10, 13), "FotaError without a line: %r" % e
            assert warrants(line, e, stage), "%r raised %r in %s (%r)" % (line, e, stage, stop)
            assert not s.streaming
            return
        line = b"" if c in (10, 13) else line + bytes((c,))
    # Silence from here on: the session ends (done or a timeout) within a few deadlines.
    if s.streaming:
        s.image_complete(now)  # every byte is out (new_session): the driver says so
    for _ in range(8):
        if s.done:
            return
        now = ticks_add(now, 2_200_000)
        try:
            s.poll(now)
        except FotaError as e:
            assert e.kind == "timeout", e
            return
    raise AssertionError("no end after 8 deadlines in %s (%r)" % (s.stage, stop))


def test_every_state_reached():
    stages = set()
    for stop in STOPS:
        s, _ = session_at(stop, 0)
        stages.add(s.stage)
    want = {"PREFLIGHT", "POWER", "FLOWCTRL", "PDP", "QFOTADL", "FILESTART", "STREAM"}
    want |= {"FILEEND", "HTTPSTART", "HTTPEND", "FTPSTART", "FTPEND", "START", "UPDATING"}
    want |= {"REBOOT", "VERIFY", "DONE", "RECOVER"}
    assert want <= stages, want - stages


# ------------------------------------------------------------------ memory
def _grown(s, line, n):
    data = line * n
    tracemalloc.start()
    try:
        s.feed(data[: len(line) * 50], 0, len(line) * 50, 0)
        before = tracemalloc.get_traced_memory()[0]
        s.feed(data, 0, len(data), 0)
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return after - before


@FEW
@given(
    stop=st.sampled_from(STOPS),
    line=st.one_of(
        printable,
        garbage_line,
        long_line,
        st.sampled_from((b'+QIND: "FOTA","DOWNLOADING",3', b"+CREG: 1", b"+QFOTADL: x")),
    ),
)
def test_session_memory_bounded(stop, line):
    # 1000 lines of one kind, while the session waits in any state: memory stays flat.
    s, _ = session_at(stop, 0)
    s.rec = None  # events are taken and dropped, as a driver without a listener does
    s.s.trace = False
    grown = _grown(s, b"\r\n" + line + b"\r\n", 1000)
    assert grown < 4000, "%d bytes more after 1000 lines of %r in %s" % (
        grown,
        line[:30],
        s.stage,
    )


# ------------------------------------------------------------------ MicroPython agrees
MP_SCRIPT = r"""
import json, sys, gc
from binascii import hexlify, unhexlify
from qfota.lines import LineFramer
from qfota.urc import UrcParser
from qfota.session import Session
from qfota.errors import FotaError

job = json.load(open(sys.argv[1]))
p = UrcParser()
kinds = []
for h in job["lines"]:
    b = unhexlify(h)
    kinds.append([p.parse(b, len(b)), p.value])
got = []
f = LineFramer(lambda buf, n: got.append(hexlify(bytes(buf[:n])).decode()), job["size"])
data = unhexlify(job["stream"])
for a, b in job["chunks"]:
    f.feed(data, a, b)
outcomes = []
for h in job["sessions"]:
    s = Session(length=1000, trace=True)
    s.start(0)
    b = unhexlify(h)
    try:
        s.feed(b, 0, len(b), 1)
        e = s.error
        outcomes.append("FotaError %s %r" % (e.stage, e.code) if e else "ok %s" % s.stage)
    except Exception as e:
        outcomes.append("EXC %s" % type(e).__name__)
# memory: a session waiting for AT+QGMR fed 3000 lines of text
s = Session(length=1000)
s.start(0)
ok = b"\r\nOK\r\n"
s.feed(ok, 0, len(ok), 0)
s.feed(ok, 0, len(ok), 0)
line = b"\r\nline of text\r\n"
for i in range(50):
    s.feed(line, 0, len(line), 0)
gc.collect()
m0 = gc.mem_alloc()
for i in range(3000):
    s.feed(line, 0, len(line), 0)
gc.collect()
print(json.dumps({"kinds": kinds, "lines": got, "dropped": f.dropped, "outcomes": outcomes,
                  "grown": gc.mem_alloc() - m0}))
"""


def _cpython_outcome(data):
    s = S.Session(length=1000, trace=True)
    s.start(0)
    try:
        s.feed(data, 0, len(data), 1)
        e = s.error
        return "FotaError %s %r" % (e.stage, e.code) if e else "ok %s" % s.stage
    except Exception as e:  # compared, and must not happen
        return "EXC %s" % type(e).__name__


@MP
@given(
    lines=st.lists(any_line, min_size=1, max_size=60),
    data=stream,
    cuts=cuts,
    size=st.sampled_from((7, LINE_MAX)),
    sessions=st.lists(fuzz_stream, min_size=1, max_size=20),
)
def test_micropython_agrees(tmp_path_factory, lines, data, cuts, size, sessions):
    job = {
        "lines": [x.hex() for x in lines],
        "stream": data.hex(),
        "chunks": chunks_of(data, cuts),
        "size": size,
        # Always one non-UTF-8 line: MicroPython's decode() raises on it.
        "sessions": [x.hex() for x in sessions] + [b"\r\n\xff\xfe+\x80\r\n".hex()],
    }
    path = tmp_path_factory.mktemp("mp") / "job.json"
    path.write_text(json.dumps(job))
    script = path.parent / "fuzz_mp.py"
    script.write_text(MP_SCRIPT)
    proc = run_micropython([str(script), str(path)], timeout=60)
    assert proc.returncode == 0, proc.stderr
    mp = json.loads((proc.stdout or "").splitlines()[-1])
    p = U.UrcParser()
    assert mp["kinds"] == [[p.parse(x, len(x)), p.value] for x in lines]
    want, dropped, _ = ref_frame(data, size)
    assert [bytes.fromhex(x) for x in mp["lines"]] == want and mp["dropped"] == dropped
    cp = [_cpython_outcome(x) for x in sessions] + ["ok PREFLIGHT"]
    assert mp["outcomes"] == cp
    assert not any(x.startswith("EXC") for x in cp)
    assert mp["grown"] < 8000, "MicroPython heap grew %d bytes over 3000 lines" % mp["grown"]


# ------------------------------------------------------------------ regressions (found here)
def test_regression_fileend_in_url_and_recover_mode_is_not_a_crash():
    # recovery.on_fota (was session._on_fota): ``sent < length`` with length None raised TypeError
    # (URL mode, or recover mode after the RECOVER state) on a +QIND: "FOTA","FILEEND",0.
    line = b'\r\n+QIND: "FOTA","FILEEND",0\r\n'
    cases: tuple[tuple[dict[str, Any], bytes], ...] = (
        ({"url": "http://10.0.0.2/a.bin"}, b""),
        ({"recover": True}, b"\r\nRDY\r\n"),  # RECOVER -> REBOOT settle: length is None
    )
    for kw, first in cases:
        s = S.Session(**kw)
        s.start(0)
        data = first + line
        s.feed(data, 0, len(data), 0)  # no TypeError; a FotaError is kept in s.error


def test_regression_response_body_bounded():
    # session.py, _response: every printable line while a command waited was kept; a
    # chatty modem (or the wrong port) grew the list without bound until the deadline.
    ch = AtChannel()
    ch.send(b"AT+QGMR")
    line = b"NMEA-like line of text"
    for _ in range(5000):
        assert ch.take(line, len(line)) == 0
    assert ch.waiting and len(ch.body) == BODY_MAX, len(ch.body)


# ------------------------------------------------------------------ every wait has its bound
def stopped(variant, until, dl=5, up=5, answered=True):
    """A session run (at t=0) through the first step whose bytes hold ``until``; with
    ``answered=False``, up to that command sent and unanswered."""
    kw, steps = conversation(variant, dl=dl, up=up)
    hits = [k for k, step in enumerate(steps) if step[0] != "complete" and until in step[1]]
    assert hits, "no step %r in %s" % (until, variant)
    end = hits[0] + 1 if answered else hits[0]
    if answered and end < len(steps) and steps[end][0] == "complete":
        end += 1
    s, _ = new_session(kw, 0)
    run_steps(s, steps[:end], 0)
    return s


T = TIMEOUTS
# wait -> (session factory, ms until it fails, stage, words of the detail)
WAITS = {
    "probe_ms": (
        lambda: stopped("file", b"AT", answered=False),
        T["probe_ms"],
        "PREFLIGHT",
        "did not answer AT",
    ),
    "command_ms": (
        lambda: stopped("file", b"ATE0", answered=False),
        T["command_ms"],
        "PREFLIGHT",
        "no answer to ATE0",
    ),
    "pdp_ms": (
        lambda: stopped("ftp-setup", b"AT+QIACT=1", answered=False),
        T["pdp_ms"],
        "PDP",
        "no answer to AT+QIACT=1",
    ),
    "filestart_ms": (
        lambda: stopped("file", b'AT+QFOTADL="FILE', answered=True),
        T["filestart_ms"],
        "FILESTART",
        '"FILESTART"',
    ),
    "fileend_ms": (
        lambda: stopped("file", b"FILESTART"),
        T["fileend_ms"],
        "FILEEND",
        "after the last byte",
    ),
    "dlstart_ms": (
        lambda: stopped("http", b'AT+QFOTADL="http'),
        T["dlstart_ms"],
        "HTTPSTART",
        '"HTTPSTART"',
    ),
    "download_ms": (
        lambda: stopped("http", b"HTTPSTART", dl=0),
        T["download_ms"],
        "HTTPEND",
        '"HTTPEND"',
    ),
    "progress_ms": (
        lambda: stopped("http", b'"DOWNLOADING",2'),
        T["progress_ms"],
        "HTTPEND",
        '"HTTPEND"',
    ),
    "start_ms": (lambda: stopped("file", b"FILEEND"), T["start_ms"], "START", '"START"'),
    "end_ms": (lambda: stopped("file", b'"START"', up=0), T["end_ms"], "UPDATING", '"END"'),
    "reboot_ms": (
        lambda: stopped("file", b'"END",0'),
        T["reboot_ms"] + T["settle_ms"],
        "REBOOT",
        "after its reboot",
    ),
    "settle_ms": (lambda: stopped("file", b"RDY"), T["settle_ms"], "REBOOT", "after its reboot"),
    "recover": (
        lambda: new_session({"recover": True}, 0)[0],
        T["fileend_ms"] + T["end_ms"],
        "RECOVER",
        "neither finished",
    ),
}


@pytest.mark.parametrize("wait", sorted(WAITS))
def test_every_wait_ends_in_its_timeout(wait):
    # Each wait of the session, in the state that uses it: silent until 1 ms before its
    # bound, a FotaError at the bound: the stage that waited, "timeout", exit status 4.
    make, ms, stage, words = WAITS[wait]
    s = make()
    t = 0
    while t < ms - 1:  # polls as a driver would (the probes' resends happen on the way)
        t = min(t + 1000, ms - 1)
        s.poll(t)
    with pytest.raises(FotaError) as info:
        s.poll(ms)
    e = info.value
    assert (e.stage, e.code, e.kind) == (stage, None, "timeout"), str(e)
    assert words in str(e), str(e)
    assert exit_code(e) == EXIT_TIMEOUT


@pytest.mark.parametrize(
    "until,repeat",
    [
        (b'"START"', b'\r\n+QIND: "FOTA","UPDATING",37\r\n'),
        (b'"DOWNLOADING",2', b'\r\n+QIND: "FOTA","DOWNLOADING",2\r\n'),
    ],
    ids=["updating", "downloading"],
)
def test_repeated_progress_urc_is_bounded(until, repeat):
    # A module stuck in a loop (a bootloader that retries: 505/507 "the module may
    # retry", docs/FIELD.md, "Error codes beyond the note") prints the same progress
    # line again and again, just inside progress_ms.
    # A progress URC re-arms the wait only when its index goes further than any before,
    # so this must end in a FotaError within a bounded time (here, a generous
    # 10 x end_ms + download_ms of virtual time).
    s = stopped("http", until)
    t = 0
    limit = 10 * T["end_ms"] + T["download_ms"]
    with pytest.raises(FotaError):
        while t < limit:
            t += T["progress_ms"] - 1000
            s.feed(repeat, 0, len(repeat), t)
            s.poll(t)
