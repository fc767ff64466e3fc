"""DDI client, SWU reader and server mode: cases that run unchanged on CPython (pytest,
tests/test_ddi.py) and on MicroPython (tests/mp_run.py).

The server is scripted here (``Server``): a transport whose answers are shaped as
hawkBit's DDI documentation shows them (root poll with ``config.polling.sleep`` and
``_links``; ``deploymentBase`` with chunks, artifacts, hashes and ``download`` /
``download-http`` links; ``cancelAction`` with ``stopId``; 206 answers to ``Range``).
The modem is a fake ``Updater`` where the engine is not the point, and the real
``qfota.driver`` over the scripted modem where it is (the SWU window). Plain asserts.
"""

import binascii
import hashlib
import json
import os

import machine
from engine_cases import FAST, REV_A, REV_B, content, modem
from scripted import ScriptedModem  # noqa: F401 - engine_cases builds it

from qfota import ddi, fleet, fleetdl, swu
from qfota.errors import FotaError
from qfota.uart import UartPort

SERVER = "http://10.0.0.1:8080"
BASE = SERVER + "/DEFAULT/controller/v1/dev1"
A = REV_A.decode().split("_")[0]
B = REV_B.decode().split("_")[0]
_TMP = "/tmp"


class Reset(Exception):
    """An MCU reset: everything in RAM is lost, the flash stays."""


def _hex(h):
    return binascii.hexlify(h.digest()).decode()


def _digest(alg, data):
    h = getattr(hashlib, alg)()
    h.update(data)
    return _hex(h)


def pattern(n, seed=7):
    return bytes((i * seed + i // 251) & 0xFF for i in range(n))


def folder(name):
    path = "%s/qfota_ddi_%s_%d" % (_TMP, name, os.getpid() if hasattr(os, "getpid") else 0)
    try:
        os.mkdir(path)
    except OSError:
        for f in os.listdir(path):
            os.remove(path + "/" + f)
    return path


# ---------------------------------------------------------------- SWU (cpio newc) writer
def _member(name, data, ino):
    nb = name.encode() + b"\0"
    fields = (ino, 0o100644, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(nb), 0)
    head = b"070701" + b"".join(b"%08X" % f for f in fields)
    out = head + nb
    out += b"\0" * (-len(out) % 4)
    out += data
    out += b"\0" * (-len(out) % 4)
    return out


def make_swu(image_name, image, sha=True, extra=(), version="0.0.0+" + B):
    entry = 'filename = "%s"; type = "raw";' % image_name
    if sha:
        entry += ' sha256 = "%s";' % _digest("sha256", image)
    desc = 'software = { version = "%s"; images: ( { %s } ); }' % (version, entry)
    out = _member("sw-description", desc.encode(), 1)
    out += _member(image_name, image, 2)
    for i, (n, d) in enumerate(extra):
        out += _member(n, d, 3 + i)
    return out + _member("TRAILER!!!", b"", 0)


# ---------------------------------------------------------------- the scripted server
class Server:
    """hawkBit as its DDI documentation shows it, behind ``request()``."""

    def __init__(self, artifact=b"", filename="EC200T_A07_A08.bin", hashes=("sha256",)):
        self.artifact = artifact
        self.sleep = "00:00:30"
        self.action = None  # the deploymentBase answer while the action is open
        self.aid = "7"
        self.cancel = None
        self.requests = []
        self.feedback = []  # (action id, status dict)
        self.cancel_feedback = []
        self.config = []
        self.polls = []  # bodies for the next polls (bad JSON, odd shapes)
        self.faults = []  # for the next requests: a status, a FotaError, or None
        self.cut = None  # (range number, bytes): a reset after that many bytes of that range
        self.ranges = 0
        self.ignore_range = False
        self.fail_range = None  # (range number, status): that range answered with the status
        if artifact:
            self.offer(filename, hashes)

    def offer(
        self,
        filename,
        hashes=("sha256",),
        aid="7",
        download="forced",
        update="forced",
        window=None,
        link=None,
    ):
        self.aid = aid
        link = (
            link or SERVER + "/DEFAULT/controller/v1/dev1/softwaremodules/3/artifacts/" + filename
        )
        dep = {
            "download": download,
            "update": update,
            "chunks": [
                {
                    "part": "os",
                    "version": "0.0.0+" + B,
                    "name": "modem",
                    "artifacts": [
                        {
                            "filename": filename,
                            "size": len(self.artifact),
                            "hashes": {a: _digest(a, self.artifact) for a in hashes},
                            "_links": {
                                "download": {"href": link},
                                "download-http": {"href": link.replace("https:", "http:")},
                            },
                        }
                    ],
                }
            ],
        }
        if window is not None:
            dep["maintenanceWindow"] = window
        self.action = {"id": aid, "deployment": dep}

    def _json(self, d, status=200):
        return status, json.dumps(d).encode()

    def request(self, method, url, headers=(), body=None, sink=None, limit=4096):
        self.requests.append((method, url, headers, body))
        if self.faults:
            f = self.faults.pop(0)
            if isinstance(f, FotaError):
                raise f
            if f is not None:
                return f, b"{}"
        if url == BASE:
            if self.polls:
                return 200, self.polls.pop(0)
            links = {}
            if self.cancel is not None:
                links["cancelAction"] = {"href": BASE + "/cancelAction/" + self.cancel}
            elif self.action is not None:
                links["deploymentBase"] = {
                    "href": BASE + "/deploymentBase/%s?c=-2129030598" % self.aid
                }
            return self._json({"config": {"polling": {"sleep": self.sleep}}, "_links": links})
        if url.startswith(BASE + "/deploymentBase/") and method == "GET":
            return self._json(self.action) if self.action else (404, b"")
        if url.endswith("/feedback") and "/deploymentBase/" in url:
            d = json.loads(body)
            self.feedback.append((url.split("/")[-2], d["status"]))
            if d["status"]["execution"] == "closed" and url.split("/")[-2] == self.aid:
                self.action = None
            return self._json({"id": url.split("/")[-2]})
        if url.startswith(BASE + "/cancelAction/") and method == "GET":
            return self._json({"id": self.cancel, "cancelAction": {"stopId": self.cancel}})
        if url.endswith("/feedback") and "/cancelAction/" in url:
            d = json.loads(body)
            self.cancel_feedback.append((url.split("/")[-2], d["status"]))
            self.cancel = None
            if d["status"]["execution"] == "closed":
                self.action = None
            return 200, b""
        if url == BASE + "/configData" and method == "PUT":
            self.config.append(json.loads(body))
            return 200, b""
        if "/artifacts/" in url:
            return self._download(headers, sink)
        return 404, b""

    def _download(self, headers, sink):
        data = self.artifact
        a, b, status = 0, len(data) - 1, 200
        for k, v in headers:
            if k == "Range" and not self.ignore_range:
                a, b = [int(x) for x in v[6:].split("-")]
                status = 206
        self.ranges += 1
        if self.fail_range is not None and self.fail_range[0] == self.ranges:
            return self.fail_range[1], 0
        piece = data[a : b + 1]
        if self.cut is not None and self.cut[0] == self.ranges:
            sink.write(piece, 0, self.cut[1])
            raise Reset()
        off = 0
        while off < len(piece):
            off += sink.write(piece, off, min(1000, len(piece) - off))
        return status, len(piece)

    def executions(self):
        return [(aid, st["execution"], st["result"]["finished"]) for aid, st in self.feedback]

    def closed(self):
        return [x for x in self.executions() if x[1] == "closed"]


class Updater:
    """The modem's part, faked: records the image it was given."""

    def __init__(self):
        self.rev = REV_A.decode()
        self.after = REV_B.decode()
        self.images = []
        self.urls = []
        self.fail = None
        self.reset = False
        self.recovers = 0

    def revision(self):
        return self.rev

    def update(self, path, offset, length, source, target):
        with open(path, "rb") as f:
            f.seek(offset)
            self.images.append(f.read(length))
        return self._run(source, target)

    def update_url(self, url, source, target):
        self.urls.append(url)
        return self._run(source, target)

    def _run(self, source, target):
        assert source == A and target == B, (source, target)
        if self.reset:
            self.reset = False
            raise Reset()
        if self.fail is not None:
            raise self.fail
        self.rev = self.after
        return self.rev

    def recover(self):
        self.recovers += 1
        return self.rev


class Clock:
    def __init__(self):
        self.t = 1000

    def __call__(self):
        return self.t


def make(srv, upd, path, clock=None, **kw):
    kw.setdefault("room", 1 << 20)
    kw.setdefault("range_size", 1024)
    return fleet.Fleet(
        srv,
        upd,
        SERVER,
        "DEFAULT",
        "dev1",
        token="t0ken",
        folder=path,
        clock=clock or Clock(),
        **kw,
    )


def run_until_quiet(f, clock, rounds=20, step_ms=31000):
    for _ in range(rounds):
        f.step()
        clock.t += step_ms


# ---------------------------------------------------------------- the core alone
def case_ddi_sleep_parsed_and_bounded():
    assert ddi.parse_sleep("00:00:30") == 30000
    assert ddi.parse_sleep("00:00:01") == ddi.SLEEP_MIN  # below the product's floor
    assert ddi.parse_sleep("99:00:00") == ddi.SLEEP_MAX
    for bad in ("0:0", "aa:00:00", "00:61:00", "", None, 30, "00:00:3x", "-1:00:00"):
        assert ddi.parse_sleep(bad) == ddi.SLEEP_DEFAULT, bad


def case_ddi_poll_then_deployment_event():
    srv = Server(pattern(3000))
    c = ddi.Client(SERVER, "DEFAULT", "dev1", now=0)
    req = c.next_request(0)
    assert req == ("GET", BASE, None), req
    c.response(*srv.request(*req), 0)
    assert c.due == 30000, c.due
    req = c.next_request(0)
    assert req[1] == BASE + "/deploymentBase/7?c=-2129030598", req
    c.response(*srv.request(*req), 0)
    ev = c.next_event()
    assert ev[0] == "deployment", ev
    info = ev[1]
    assert info["id"] == "7" and info["size"] == 3000 and info["download"] == "forced"
    assert info["hashes"][0][0] == "sha256" and info["link"].endswith(".bin"), info
    assert c.next_request(100) is None and c.wait_ms(100) == 29900


def case_ddi_bad_json_is_a_failed_poll_then_polling_goes_on():
    srv = Server(pattern(100))
    srv.polls = [b"{not json", b'{"_links": []}', b"[1]", b"x" * 5000]
    c = ddi.Client(SERVER, "DEFAULT", "dev1", retry_ms=60000, now=0)
    now = 0
    for want in ("not JSON", "_links", "not an object", "over 4096"):
        c.response(*srv.request(*c.next_request(now)), now)
        ev = c.next_event()
        assert ev[0] == "failed" and ev[1] == ddi.POLL and want in str(ev[3]), (ev, want)
        assert "DDI" == ev[3].stage
        assert c.next_request(now) is None  # the next poll waits
        now = c.due
    c.response(*srv.request(*c.next_request(now)), now)
    req = c.next_request(now)
    assert req is not None and "/deploymentBase/7" in req[1], req


def case_ddi_409_429_retried_other_errors_stated():
    srv = Server()
    c = ddi.Client(SERVER, "DEFAULT", "dev1", now=0)
    srv.faults = [429, 409]
    c.response(*srv.request(*c.next_request(0)), 0)
    assert c.next_event() is None and c.next_request(0) is None
    c.response(*srv.request(*c.next_request(ddi.RETRY_MS)), ddi.RETRY_MS)
    c.response(*srv.request(*c.next_request(2 * ddi.RETRY_MS)), 2 * ddi.RETRY_MS)
    assert c.next_event() == ("idle", 30000)
    srv.faults = [500]
    now = c.due
    c.response(*srv.request(*c.next_request(now)), now)
    ev = c.next_event()
    assert ev[0] == "failed" and "HTTP 500" in str(ev[3]), ev


def case_ddi_injected_ids_and_links_refused():
    srv = Server(pattern(100))
    bad = [
        BASE + "/deploymentBase/7%0D%0AAT+QPOWD",  # not letters/digits
        BASE + '/deploymentBase/7"',
        BASE + "/deploymentBase/7\r\nAT+QPOWD=1",
        BASE + "/deploymentBase/a b",
        "http://evil.example/DEFAULT/controller/v1/dev1/deploymentBase/7",  # the token would go there
        BASE + "/deploymentBase/" + "9" * 40,
    ]
    for href in bad:
        c = ddi.Client(SERVER, "DEFAULT", "dev1", now=0)
        body = json.dumps({"_links": {"deploymentBase": {"href": href}}}).encode()
        c.next_request(0)
        c.response(200, body, 0)
        ev = c.next_event()
        assert ev[0] == "failed", (href, ev)
        req = c.next_request(0)
        assert req is None, (href, req)
    # an artifact link with a quote, and an id that differs from the link's
    c = ddi.Client(SERVER, "DEFAULT", "dev1", now=0)
    c.response(*srv.request(*c.next_request(0)), 0)
    srv.action["deployment"]["chunks"][0]["artifacts"][0]["_links"]["download"]["href"] = (
        'http://x/a"b'
    )
    c.response(*srv.request(*c.next_request(0)), 0)
    ev = c.next_event()
    assert ev[0] == "failed" and "download link" in str(ev[3]), ev
    for name in ("../etc/passwd", ".hidden", "a\r\nb", "x" * 70):
        c = ddi.Client(SERVER, "DEFAULT", "dev1", now=0)
        c.response(*srv.request(*c.next_request(0)), 0)
        srv.offer(name)
        c.response(*srv.request(*c.next_request(0)), 0)
        ev = c.next_event()
        assert ev[0] == "failed" and "file name" in str(ev[3]), (name, ev)


def case_ddi_feedback_and_config_shapes():
    c = ddi.Client(SERVER, "DEFAULT", "dev1", now=0)
    c.feedback("7", "proceeding", "none", ["download"], 1, 3)
    c.feedback("7", "proceeding", "none", ["check"], 2, 3)  # replaces the one not yet sent
    c.feedback("7", "closed", "failure", ["END: 506: FOTA firmware MD5 check error"])
    c.config({"hw_boardname": "EC200T", "hw_revision": A, "sw_version": A})
    m, url, body = c.next_request(0)
    assert m == "POST" and url == BASE + "/deploymentBase/7/feedback", url
    d = json.loads(body)
    assert d == {
        "id": "7",
        "status": {
            "execution": "proceeding",
            "result": {"finished": "none", "progress": {"cnt": 2, "of": 3}},
            "details": ["check"],
        },
    }, d
    c.response(200, b"", 0)
    assert c.next_event() == ("sent", ddi.FEEDBACK, "7", "proceeding")
    m, url, body = c.next_request(0)
    assert json.loads(body)["status"]["result"] == {"finished": "failure"}
    c.failed(FotaError("HTTP", None, "no route"), 0)  # kept: a result is not lost
    assert c.next_event()[0] == "failed"
    m, url, body = c.next_request(0)
    assert m == "PUT" and url == BASE + "/configData"
    assert json.loads(body) == {
        "mode": "merge",
        "data": {"hw_boardname": "EC200T", "hw_revision": A, "sw_version": A},
    }
    c.response(404, b"", 0)
    assert c.next_event()[0] == "failed" and c.next_event() == ("dropped", ddi.CONFIG, None, None)
    m, url, body = c.next_request(0)  # the first poll
    assert url == BASE
    c.response(200, b"{}", 0)
    m, url, body = c.next_request(ddi.RETRY_WAIT_MS)
    assert url.endswith("/7/feedback") and json.loads(body)["status"]["execution"] == "closed"
    try:
        c.feedback("7\r\n", "closed", "success")
    except FotaError:
        pass
    else:
        raise AssertionError("a bad action id was taken")


# ---------------------------------------------------------------- SWU
def case_swu_finds_the_image_and_checks_its_sha256():
    img = pattern(5001)
    path = folder("swu") + "/p.swu"
    with open(path, "wb") as f:
        f.write(make_swu("modem.bin", img, extra=(("sw-description.sig", b"sig"),)))
    assert swu.is_swu(path)
    name, off, length, sha = swu.find_image(path)
    assert name == "modem.bin" and length == 5001 and sha == _digest("sha256", img)
    assert content(path)[off : off + length] == img
    bad = bytearray(make_swu("modem.bin", img))
    bad[-300] ^= 1  # a byte of the image changed
    with open(path, "wb") as f:
        f.write(bad)
    try:
        swu.find_image(path)
    except FotaError as e:
        assert e.stage == "SWU" and "sha256" in str(e), e
    else:
        raise AssertionError("a changed image passed")


def case_swu_several_images_named_or_refused():
    img = pattern(300)
    path = folder("swu2") + "/p.swu"
    with open(path, "wb") as f:
        f.write(make_swu("modem.bin", img, sha=False, extra=(("notes.txt", b"x" * 10),)))
    name, off, length, sha = swu.find_image(path)
    assert name == "modem.bin" and sha is None and length == 300
    desc = b'software = { images: ( { filename = "a.bin"; }, { filename = "b.bin"; } ); }'
    with open(path, "wb") as f:
        f.write(
            _member("sw-description", desc, 1)
            + _member("a.bin", b"a", 2)
            + _member("b.bin", b"b", 3)
            + _member("TRAILER!!!", b"", 0)
        )
    try:
        swu.find_image(path)
    except FotaError as e:
        assert "2 candidate images" in str(e), e
    else:
        raise AssertionError("two images taken")
    with open(path, "wb") as f:
        f.write(
            _member("modem.bin", img, 2)
            + _member("sw-description", b"{}", 1)
            + _member("TRAILER!!!", b"", 0)
        )
    try:
        swu.find_image(path)
    except FotaError as e:
        assert "first member" in str(e), e
    else:
        raise AssertionError("sw-description not first taken")
    with open(path, "wb") as f:
        f.write(make_swu("modem.bin", img)[:200])
    try:
        swu.find_image(path)
    except FotaError as e:
        assert e.stage == "SWU", e
    else:
        raise AssertionError("a truncated archive taken")


def case_driver_streams_only_the_window():
    # The real engine over the scripted modem: the modem receives the image, not the wrapper.
    img = pattern(4000, 13)
    path = folder("win") + "/p.swu"
    with open(path, "wb") as f:
        f.write(make_swu("modem.bin", img))
    name, off, length, sha = swu.find_image(path)
    m = modem()
    upd = fleet.DriverUpdater(UartPort(machine.UART(1, 115200, peer=m)), timeouts=FAST)
    rev = upd.update(path, off, length, A, B)
    assert bytes(m.data) == img, (len(m.data), len(img))
    assert rev == REV_B.decode(), rev
    assert any(c.startswith(b'AT+QFOTADL="FILE:4000"') for c in m.commands), m.commands
    from qfota.driver import update

    for o, n in ((off, length + 10_000), (-1, 10), (0, 0)):
        try:
            update(
                UartPort(machine.UART(1, 115200, peer=modem())),
                path,
                image_offset=o,
                image_length=n,
            )
        except FotaError as e:
            assert e.stage == "PARAMS", e
        else:
            raise AssertionError("window %d+%d taken" % (o, n))


# ---------------------------------------------------------------- server mode
def case_fleet_file_mode_success_reported_once():
    art = pattern(3000)
    srv, upd, path, clk = Server(art), Updater(), folder("ok"), Clock()
    f = make(srv, upd, path, clk)
    f.start()
    assert srv.config == [] and len(srv.requests) == 0  # queued, sent with the first step
    run_until_quiet(f, clk, 4)
    assert upd.images == [art], len(upd.images)
    assert srv.closed() == [("7", "closed", "success")], srv.executions()
    assert srv.feedback[-1][1]["details"] == ["revision " + B, "checked: sha256"]
    assert [c["data"]["hw_revision"] for c in srv.config] == [REV_A.decode(), REV_B.decode()]
    assert srv.config[0]["data"] == {
        "hw_boardname": "EC200T",
        "hw_revision": REV_A.decode(),
        "sw_version": REV_A.decode(),
    }
    assert ("Authorization", "TargetToken t0ken") in srv.requests[0][2]
    ranges = [h for m, u, h, b in srv.requests if "/artifacts/" in u]
    assert len(ranges) == 3 and ("Range", "bytes=0-1023") in ranges[0], ranges
    assert f.journal.load()["state"] == fleet.REPORTED
    assert not os.listdir(path) == [] and "7.bin" not in os.listdir(path)


def case_fleet_end_506_reported_with_stage_code_meaning():
    srv, upd, path, clk = Server(pattern(2000)), Updater(), folder("506"), Clock()
    upd.fail = FotaError("END", 506)
    f = make(srv, upd, path, clk)
    f.start()
    run_until_quiet(f, clk, 4)
    assert srv.closed() == [("7", "closed", "failure")], srv.executions()
    details = srv.feedback[-1][1]["details"]
    assert details[0] == "END: 506: FOTA firmware MD5 check error", details
    assert len(upd.images) == 1
    # the server offers it again (its decision, e.g. force_update): run again
    srv.offer("EC200T_A07_A08.bin")
    upd.fail = None
    run_until_quiet(f, clk, 3)
    assert len(upd.images) == 2 and srv.closed()[-1] == ("7", "closed", "success"), srv.executions()


def case_fleet_reset_mid_download_resumes_from_flash():
    art = pattern(5000)
    srv, upd, path, clk = Server(art), Updater(), folder("dl"), Clock()
    srv.cut = (3, 500)  # the third range: 500 bytes reach the flash, then the MCU resets
    f = make(srv, upd, path, clk)
    f.start()
    try:
        run_until_quiet(f, clk, 3)
    except Reset:
        pass
    else:
        raise AssertionError("no reset")
    assert os.stat(path + "/7.bin")[6] == 2048 + 500
    srv.cut = None
    f = make(srv, upd, path, clk)  # after the reset: RAM is new, the flash is not
    f.start()
    run_until_quiet(f, clk, 4)
    ranges = [dict(h).get("Range") for m, u, h, b in srv.requests if "/artifacts/" in u]
    assert ranges[3] == "bytes=2548-3571", ranges
    assert upd.images == [art]
    assert srv.closed() == [("7", "closed", "success")], srv.executions()


def case_fleet_http_error_mid_download_stated_then_resumed():
    art = pattern(5000)
    srv, upd, path, clk = Server(art), Updater(), folder("503"), Clock()
    srv.fail_range = (2, 503)  # the second range: the server is unavailable, nothing written
    said = []
    f = make(srv, upd, path, clk, on_event=lambda name, text: said.append((name, text)))
    f.start()
    run_until_quiet(f, clk, 6)
    assert ("failed", "action 7: DOWNLOAD: HTTP 503; 1024 of 5000 bytes on flash") in said, said
    ranges = [dict(h).get("Range") for m, u, h, b in srv.requests if "/artifacts/" in u]
    assert ranges[:3] == ["bytes=0-1023", "bytes=1024-2047", "bytes=1024-2047"], ranges
    assert upd.images == [art]
    assert srv.closed() == [("7", "closed", "success")], srv.executions()


def case_fleet_reset_mid_upgrade_recovered_one_result():
    srv, upd, path, clk = Server(pattern(2000)), Updater(), folder("up"), Clock()
    upd.reset = True
    f = make(srv, upd, path, clk)
    f.start()
    try:
        run_until_quiet(f, clk, 3)
    except Reset:
        pass
    else:
        raise AssertionError("no reset")
    assert f.journal.load()["state"] == fleet.UPDATE and srv.closed() == []
    upd.rev = upd.after  # the modem finished the upgrade while the MCU was down
    f = make(srv, upd, path, clk)
    f.start()  # follows the modem (recover), records and posts the result
    run_until_quiet(f, clk, 4)
    assert upd.recovers == 1 and len(upd.images) == 1
    assert srv.closed() == [("7", "closed", "success")], srv.executions()
    f = make(srv, upd, path, clk)  # another reset: nothing is posted twice
    f.start()
    run_until_quiet(f, clk, 3)
    assert srv.closed() == [("7", "closed", "success")], srv.executions()


def case_fleet_reset_before_the_result_was_taken_posts_it_once():
    srv, upd, path, clk = Server(pattern(2000)), Updater(), folder("rep"), Clock()
    upd.fail = FotaError("END", 504)
    f = make(srv, upd, path, clk)
    f.start()
    f.step()  # poll, deployment, download, update: failure recorded and queued
    srv.faults = [FotaError("HTTP", None, "no route")]
    f.step()  # ... the closed feedback fails to go out, then the MCU resets
    n = len([r for r in srv.requests if r[1].endswith("/7/feedback")])
    f = make(srv, upd, path, clk)
    f.start()
    run_until_quiet(f, clk, 3)
    assert srv.closed() == [("7", "closed", "failure")], srv.executions()
    assert len(upd.images) == 1, "a failed action ran again"
    assert n >= 1


def case_fleet_cancel_before_transfer_accepted():
    art = pattern(5000)
    srv, upd, path, clk = Server(art), Updater(), folder("cancel"), Clock()
    f = make(srv, upd, path, clk)

    orig = srv._download

    def download(headers, sink):
        clk.t += 2000  # a range takes 2 s: the action's polls come every 5 s
        if srv.ranges == 1:
            srv.cancel = "7"  # the operator cancels while the download runs
        return orig(headers, sink)

    srv._download = download
    f.start()
    run_until_quiet(f, clk, 3)
    assert upd.images == [], "updated after a cancel"
    assert srv.cancel_feedback == [
        (
            "7",
            {
                "execution": "closed",
                "result": {"finished": "success"},
                "details": ["cancelled before the transfer"],
            },
        )
    ], srv.cancel_feedback
    assert "7.bin" not in os.listdir(path)
    assert f.journal.load()["state"] == fleet.CANCELLED


def case_fleet_cancel_after_transfer_rejected():
    srv, upd, path, clk = Server(pattern(1000)), Updater(), folder("cancel2"), Clock()
    f = make(srv, upd, path, clk)
    f.start()
    run_until_quiet(f, clk, 2)
    srv.cancel = "7"
    run_until_quiet(f, clk, 2)
    assert srv.cancel_feedback[0][1]["execution"] == "rejected", srv.cancel_feedback
    assert srv.closed() == [("7", "closed", "success")]


def case_fleet_skip_and_attempt_and_window():
    art = pattern(1500)
    srv, upd, path, clk = Server(art), Updater(), folder("skip"), Clock()
    srv.offer("m.bin", download="skip", update="skip")
    f = make(srv, upd, path, clk)
    f.start()
    run_until_quiet(f, clk, 2)
    assert (
        upd.images == []
        and srv.feedback == []
        and not [r for r in srv.requests if "/artifacts/" in r[1]]
    )
    srv.offer("m.bin", download="attempt", update="forced", window="unavailable")
    run_until_quiet(f, clk, 2)
    assert upd.images == [] and ("7", "downloaded", "none") in srv.executions(), srv.executions()
    n = len([r for r in srv.requests if "/artifacts/" in r[1]])
    srv.offer("m.bin", download="attempt", update="attempt", window="available")
    run_until_quiet(f, clk, 2)
    assert upd.images == [art] and srv.closed() == [("7", "closed", "success")], srv.executions()
    assert len([r for r in srv.requests if "/artifacts/" in r[1]]) == n, "downloaded twice"


def case_fleet_hash_strongest_checked_and_mismatch_refused():
    art = pattern(1200)
    srv, upd, path, clk = (
        Server(art, hashes=("md5", "sha1", "sha256")),
        Updater(),
        folder("hash"),
        Clock(),
    )
    said = []
    f = make(srv, upd, path, clk, on_event=lambda n, t: said.append((n, t)))
    f.start()
    run_until_quiet(f, clk, 2)
    assert ("checked", "action 7: sha256") in said, said
    srv2, upd2 = Server(art, hashes=("sha1",)), Updater()
    srv2.action["deployment"]["chunks"][0]["artifacts"][0]["hashes"]["sha1"] = "0" * 40
    f = make(srv2, upd2, folder("hash2"), clk)
    f.start()
    run_until_quiet(f, clk, 2)
    assert upd2.images == [] and srv2.closed() == [("7", "closed", "failure")]
    assert "sha1 of the artifact" in srv2.feedback[-1][1]["details"][0], srv2.feedback


def case_fleet_too_big_refused_naming_both_numbers():
    srv, upd, path, clk = Server(pattern(3000)), Updater(), folder("big"), Clock()
    f = make(srv, upd, path, clk, room=2000)
    f.start()
    run_until_quiet(f, clk, 2)
    assert upd.images == [] and srv.closed() == [("7", "closed", "failure")]
    d = srv.feedback[-1][1]["details"][0]
    assert "3000 bytes" in d and "room for 2000" in d, d
    assert not [r for r in srv.requests if "/artifacts/" in r[1]]


def case_fleet_swu_unwrapped_modem_gets_the_image():
    img = pattern(2500, 11)
    art = make_swu("modem.bin", img)
    srv, upd, path, clk = (
        Server(art, filename="p.swu", hashes=("sha1",)),
        Updater(),
        folder("swuf"),
        Clock(),
    )
    f = make(srv, upd, path, clk, url_mode=True, download_auth=False)  # an SWU never goes by URL
    f.start()
    run_until_quiet(f, clk, 3)
    assert upd.urls == [] and upd.images == [img], [len(i) for i in upd.images]
    assert srv.closed() == [("7", "closed", "success")]


def case_fleet_url_mode_takes_download_http():
    art = pattern(800)
    srv, upd, path, clk = Server(), Updater(), folder("url"), Clock()
    srv.artifact = art
    srv.offer(
        "m.bin",
        link="https://10.0.0.1/DEFAULT/controller/v1/dev1/softwaremodules/3/artifacts/m.bin",
    )
    f = make(srv, upd, path, clk, url_mode=True, download_auth=False)
    f.start()
    run_until_quiet(f, clk, 2)
    assert upd.urls == [
        "http://10.0.0.1/DEFAULT/controller/v1/dev1/softwaremodules/3/artifacts/m.bin"
    ], upd.urls
    assert upd.images == [] and srv.closed() == [("7", "closed", "success")]
    # with download authentication the modem cannot fetch it (no header): FILE mode
    srv2, upd2 = Server(art), Updater()
    f = make(srv2, upd2, folder("url2"), clk, url_mode=True)
    f.start()
    run_until_quiet(f, clk, 2)
    assert upd2.urls == [] and upd2.images == [art]


def case_fleet_bad_json_then_good_poll():
    srv, upd, path, clk = Server(pattern(900)), Updater(), folder("json"), Clock()
    srv.polls = [b'{"config": 5, "_links": {"deploymentBase": 7}}']
    said = []
    f = make(srv, upd, path, clk, on_event=lambda n, t: said.append((n, t)), retry_ms=40000)
    f.start()
    run_until_quiet(f, clk, 4)
    assert said[0][0] == "failed" and "deploymentBase" in said[0][1], said
    assert srv.closed() == [("7", "closed", "success")]


def case_fleet_token_never_in_events_and_bad_token_refused():
    srv, upd, path, clk = Server(pattern(900)), Updater(), folder("tok"), Clock()
    said = []
    upd.fail = FotaError("END", 504)
    srv.faults = [FotaError("HTTP", None, "refused"), 500]
    f = make(srv, upd, path, clk, on_event=lambda n, t: said.append(t))
    f.start()
    run_until_quiet(f, clk, 4)
    assert said and not [t for t in said if "t0ken" in t], said
    for bad in ("a b", "t\r\nX-Evil: 1", 'a"', ""):
        try:
            fleet.Fleet(srv, upd, SERVER, "DEFAULT", "dev1", token=bad, folder=path)
        except FotaError as e:
            assert bad not in str(e) or not bad, e
        else:
            raise AssertionError("token %r taken" % bad)


def case_fleet_an_older_result_goes_out_before_a_new_action():
    srv, upd, path, clk = Server(pattern(700)), Updater(), folder("older"), Clock()
    from qfota.journal import Journal

    # a reset left action 5's result unreported; the server already offers action 7
    j = Journal(path + "/action.json")
    j.save(id="5", state=fleet.REPORT, ok=False, details=["END: 504: FOTA upgrade failed"])
    srv.faults = [FotaError("HTTP", None, "no route")]  # its first post is lost
    f = make(srv, upd, path, clk)
    f.start()
    f.step()  # the poll offers action 7: action 5's result goes out first, 7 waits
    assert srv.closed() == [("5", "closed", "failure")], srv.executions()
    assert len([r for r in srv.requests if r[1].endswith("/5/feedback")]) == 2
    assert upd.images == []
    run_until_quiet(f, clk, 3)
    assert srv.closed()[-1] == ("7", "closed", "success") and len(upd.images) == 1


def case_fleet_target_from_the_version():
    assert fleetdl.target_of("0.0.0+EC200TCNDAR02A08M16.01.001.01.001", A) == B
    assert fleetdl.target_of("EC200TCNDAR02A08M16_01.001.01.001", A) == B
    assert fleetdl.target_of(B, A) == B
    for v in ("1.0.75", "0.0.0+EG912YXXX", None, "0.0.0+EC200T a"):
        assert fleetdl.target_of(v, A) is None, v


def case_window_stream_allocates_nothing():
    # The SWU window streams under heap_lock like a whole file (a MemoryError on
    # MicroPython if the stream allocated); the modem's running check sums the image only.
    from engine_cases import LockPort

    from qfota.driver import update

    img = pattern(120_000, 47)
    path = folder("lock") + "/p.swu"
    with open(path, "wb") as f:
        f.write(make_swu("modem.bin", img, sha=False))
    name, off, length, sha = swu.find_image(path)
    port = LockPort(length)
    s = update(port, path, image_offset=off, image_length=length, lock_heap=True, timeouts=FAST)
    acc = 0
    for c in img:
        acc = (acc * 31 + c) & 0xFFFF
    assert port.count == length and port.sum == acc, (port.count, length)
    assert s.revision_after == REV_B.decode()


def case_fleet_no_checkable_hash_refused():
    srv, upd, path, clk = Server(pattern(600), hashes=()), Updater(), folder("nohash"), Clock()
    f = make(srv, upd, path, clk)
    f.start()
    run_until_quiet(f, clk, 2)
    assert upd.images == [] and srv.closed() == [("7", "closed", "failure")]
    d = srv.feedback[-1][1]["details"][0]
    assert d == "CHECK: no hash this device can check (the server gave: none)", d
    assert "7.bin" not in os.listdir(path)


def case_fleet_revision_unknown_nothing_begun_until_read():
    srv, upd, path, clk = Server(pattern(700)), Updater(), folder("norev"), Clock()
    said = []
    upd.revision = lambda: (_ for _ in ()).throw(FotaError("PREFLIGHT", None, "no answer"))
    f = make(srv, upd, path, clk, on_event=lambda n, t: said.append((n, t)))
    f.start()
    run_until_quiet(f, clk, 2)
    assert upd.images == [] and srv.feedback == [] and srv.config == [], srv.executions()
    assert ("failed", "reading the revision: PREFLIGHT: no answer") in said, said
    del upd.revision  # the modem answers again
    run_until_quiet(f, clk, 3)
    assert srv.closed() == [("7", "closed", "success")] and srv.config, srv.executions()


def case_fleet_a_journal_that_fails_is_reported_and_the_update_goes_on():
    srv, upd, path, clk = Server(pattern(700)), Updater(), folder("jfail"), Clock()
    said = []
    f = make(srv, upd, path, clk, on_event=lambda n, t: said.append((n, t)))

    def broken(**kw):
        raise OSError(28)  # ENOSPC

    f.journal.save = broken
    f.start()
    run_until_quiet(f, clk, 3)
    assert upd.images and srv.closed() == [("7", "closed", "success")], srv.executions()
    assert [t for n, t in said if n == "failed" and t.startswith("journal not written")], said


def case_fleet_without_tls_downloads_from_download_http():
    art = pattern(900)
    srv, upd, path, clk = Server(), Updater(), folder("notls"), Clock()
    srv.artifact = art
    https = "https://10.0.0.1:8080/DEFAULT/controller/v1/dev1/softwaremodules/3/artifacts/m.bin"
    srv.offer("m.bin", link=https)
    f = make(srv, upd, path, clk, tls=False)
    f.start()
    run_until_quiet(f, clk, 2)
    got = [u for m, u, h, b in srv.requests if "/artifacts/" in u]
    assert got and all(u.startswith("http://") for u in got), got
    assert upd.images == [art]
    # only an https link and no TLS: refused, stated
    srv2, upd2 = Server(), Updater()
    srv2.artifact = art
    srv2.offer("m.bin", link=https)
    del srv2.action["deployment"]["chunks"][0]["artifacts"][0]["_links"]["download-http"]
    f = make(srv2, upd2, folder("notls2"), clk, tls=False)
    f.start()
    run_until_quiet(f, clk, 2)
    assert upd2.images == [] and srv2.closed() == [("7", "closed", "failure")]
    assert "TLS is off" in srv2.feedback[-1][1]["details"][0]


def case_driver_updater_reads_the_revision_without_host_modules():
    # qfota.info is not shipped to a board: reading the revision must not need it.
    import sys

    m = modem()
    upd = fleet.DriverUpdater(UartPort(machine.UART(1, 115200, peer=m)), timeouts=FAST)
    assert upd.revision() == REV_A.decode()
    assert b"AT+QGMR" in m.commands and b"AT+IFC?" not in m.commands, m.commands
    if sys.implementation.name == "micropython":  # alone in its process there
        assert "qfota.info" not in sys.modules


CASES = [k for k in sorted(globals()) if k.startswith("case_")]
