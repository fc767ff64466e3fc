"""Nothing beside the update may cost it (issue 20, "Reliability"): a log that cannot be
written, a JSON reader that goes away, a state directory that takes no journal. Each on
the real CLI against the EC200 simulator on a pty, on both runtimes.

A disk that fills in the middle of an update is a child under ``RLIMIT_FSIZE``: its
writes past the limit fail with EFBIG (CPython ignores SIGXFSZ, and so does the
MicroPython child, which inherits that), no mount needed.
"""

import hashlib
import os
import re
import resource
import signal
import subprocess
import sys
import time

import pytest
from cli_rig import qfota, stopped, streaming

from qfota_tools.simulators.ec200 import model as sim_model
from qfota_tools.simulators.ec200.pty_sim import PtySimulator

pytestmark = pytest.mark.timeout(180)
RUNTIMES = ("cpython", "micropython")
PACKAGE = bytes((i * 13 + i // 253) & 0xFF for i in range(60_000))
MD5 = hashlib.md5(PACKAGE).hexdigest()


@pytest.fixture
def image(tmp_path):
    p = tmp_path / "EC200T.bin"
    p.write_bytes(PACKAGE)
    return str(p)


def modem(md5=MD5, seed=5, **kw):
    kw.setdefault("baud", 921_600)
    return sim_model.Modem(expect_md5=md5, timing=sim_model.FAST, seed=seed, **kw)


def update_cmd(runtime, port, image, *extra):
    waits = sim_model.wait_args(sim_model.FILE_WAITS)
    return qfota("update", "--runtime", runtime, "--port", port, "--image", image, *waits, *extra)


def fsize_limit(nbytes):
    """preexec_fn: every file this child writes stops growing at ``nbytes`` (EFBIG)."""

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))

    return limit


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_log_that_cannot_be_written_is_refused_before_anything_is_sent(runtime, image):
    m = modem()
    with PtySimulator(m) as sim:
        proc = subprocess.run(
            update_cmd(runtime, sim.path, image, "--log", "/dev/full"),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert sim.bytes_in == 0
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stdout.splitlines() == [
        "qfota: failed: PARAMS: --log /dev/full: cannot write it (No space left on device)"
    ]
    assert proc.stderr == ""
    assert m.commands == []


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_log_that_fills_mid_update_does_not_stop_it(runtime, image, tmp_path):
    log = tmp_path / "q.log"
    m = modem(baud=230_400)  # a few seconds of streaming: the log fills during it
    with PtySimulator(m) as sim:
        proc = subprocess.run(
            update_cmd(runtime, sim.path, image, "--log", str(log)),
            capture_output=True,
            text=True,
            timeout=120,
            preexec_fn=fsize_limit(400),
        )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert m.outcome == "END 0" and m.received_md5 == MD5, m.history
    lines = proc.stdout.splitlines()
    notes = [x for x in lines if "stopped at line" in x]
    assert len(notes) == 1, proc.stdout  # said once, at the end
    n = int(re.search(r"the log \S+ stopped at line (\d+) \(\[Errno 27\] EFBIG", notes[0])[1])
    assert "the update went on" in notes[0]
    assert lines[-2] == notes[0] and lines[-1].startswith("qfota: done: "), lines
    # The log holds the check line and the n - 1 lines written before it stopped (the
    # n-th perhaps cut at the limit); nothing after.
    text = log.read_text()
    assert len(text.encode()) <= 400
    assert text.count("\n") == n, text
    assert "done:" not in text


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_json_reader_that_goes_away_does_not_stop_the_update(runtime, image):
    m = modem(baud=230_400)
    with PtySimulator(m) as sim:
        cmd = update_cmd(runtime, sim.path, image, "--json")
        with streaming(sim, cmd, None, stderr=subprocess.PIPE) as proc, proc.stderr:
            first = proc.stdout.readline()  # as `| head -1` does
            proc.stdout.close()
            err = proc.stderr.read()
            status = proc.wait(120)
    assert first.startswith('{"event": "stage"'), first
    assert status == 0, err  # the update's status, not the pipe's
    assert m.outcome == "END 0" and m.received_md5 == MD5, m.history
    assert "Traceback" not in err and "Exception ignored" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert re.match(r"qfota: output stopped at line \d+ \(\[Errno 32\] EPIPE", lines[0]), err
    assert "the update went on without it: done: " in lines[0], err


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_state_dir_that_takes_no_journal_is_said_once(runtime, image, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("QFOTA_STATE_DIR", str(blocker / "state"))  # ENOTDIR, even for root
    m = modem()
    with PtySimulator(m) as sim:
        proc = subprocess.run(
            update_cmd(runtime, sim.path, image), capture_output=True, text=True, timeout=60
        )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert m.outcome == "END 0" and m.received_md5 == MD5
    notes = [x for x in proc.stdout.splitlines() if "journal" in x]
    assert len(notes) == 1, proc.stdout
    assert "cannot write the port's journal" in notes[0] and "ENOTDIR" in notes[0], notes
    assert proc.stdout.splitlines()[-1].startswith("qfota: done: ")


def test_full_state_dir_is_said_once(image, tmp_path):
    m = modem()
    with PtySimulator(m) as sim:
        proc = subprocess.run(
            update_cmd("cpython", sim.path, image),
            capture_output=True,
            text=True,
            timeout=60,
            preexec_fn=fsize_limit(8),  # the journal's JSON is longer: EFBIG
        )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert m.outcome == "END 0" and m.received_md5 == MD5
    notes = [x for x in proc.stdout.splitlines() if "journal" in x]
    assert len(notes) == 1 and "EFBIG" in notes[0], proc.stdout
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())  # no half file


def test_reporter_survives_its_log_and_its_output(tmp_path):
    # The Reporter alone: a log whose writes fail and an out that raises EPIPE do not
    # raise into the engine; the end says once where each stopped.
    from qfota.errors import FotaError
    from qfota.report import Reporter

    class Out:
        def __init__(self, fail_at):
            self.lines, self.fail_at = [], fail_at

        def __call__(self, text="", end="\n"):
            if len(self.lines) + 1 >= self.fail_at:
                raise BrokenPipeError(32, "Broken pipe")
            self.lines.append(text)

    out = Out(fail_at=1_000)
    r = Reporter(out, log="/dev/full")
    r.line("one")
    r.line("two")
    assert r.result(err=FotaError("STREAM", None, "cut")) == 1
    assert out.lines[-2] == (
        "qfota: the log /dev/full stopped at line 1 ([Errno 28] ENOSPC (no space left on "
        "device)); the update went on without it"
    )
    out = Out(fail_at=2)
    r = Reporter(out)
    r.line("one")
    r.line("two")  # raises inside out: swallowed, out is not called again
    r.line("three")
    assert out.lines == ["qfota: one"]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_info_right_after_a_cut_transfer_listens_first(runtime, image):
    # A cut transfer, then `qfota info` at once: an AT sent into the transfer would be
    # package data (and keep it alive); info listens for the modem to end it, then reads.
    m = modem(baud=115_200)
    with PtySimulator(m) as sim:
        with streaming(sim, update_cmd(runtime, sim.path, image), 10_000) as first:
            first.send_signal(signal.SIGINT)
            out, _ = first.communicate(timeout=30)
        assert first.returncode == 130, out
        sent = int(re.search(r"\((\d+) of \d+ bytes sent\)", out)[1])
        cmd = qfota("info", "--runtime", runtime, "--port", sim.path)
        cmd += ["--timeout", "fileend=8", "--timeout", "probe=3"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
        # Nothing of info's went into the transfer: the modem ended it with exactly what
        # the cut run had written.
        assert sim.inspect(lambda mm: mm.package_bytes) == sent
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("qfota: the last run on this port stopped in STREAM: listening")
    assert lines[1].split() == ["revision", "EC200TCNDAR02A07M16_01.001.01.001"], lines
    assert "FILEEND 500" in m.history


BIG = bytes((i * 7 + i // 251) & 0xFF for i in range(150_000))
BIG_MD5 = hashlib.md5(BIG).hexdigest()


@pytest.fixture
def big_image(tmp_path):
    p = tmp_path / "EC200T-big.bin"
    p.write_bytes(BIG)
    return str(p)


def _settled(sim):
    """``sim.bytes_in`` once the pty has nothing more in flight."""
    last = -1
    for _ in range(100):
        now = sim.bytes_in
        if now == last:
            return now
        last = now
        time.sleep(0.2)
    return last


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_stopped_mid_transfer_then_continued_sends_nothing_more(runtime, big_image):
    # Ctrl-Z, then fg: while qfota is stopped the modem ends the transfer (FILEEND 500
    # after its quiet time); on SIGCONT qfota must not go on sending into it.
    m = modem(BIG_MD5, seed=7, baud=115_200)
    # On micropython with the stream under heap_lock: the gap's path unlocks first.
    extra = ["--lock-heap"] if runtime == "micropython" else []
    with PtySimulator(m) as sim:
        with streaming(sim, update_cmd(runtime, sim.path, big_image, *extra), 20_000) as proc:
            with stopped(proc):  # and micropython's engine, its child
                assert sim.wait_for(lambda mm: "FILEEND 500" in mm.history, 30), m.history
                before = _settled(sim)
            out, _ = proc.communicate(timeout=60)
        after = _settled(sim)
    assert after - before < 2048, (before, after, out)  # a write at most, not ~20 KB
    last = out.strip().splitlines()[-1]
    assert proc.returncode == 3, out  # the modem's code: FILEEND 500
    assert last.startswith("qfota: failed: STREAM: 500: File download error: qfota did not run"), (
        last
    )
    assert "the modem ended the transfer meanwhile (FILEEND 500)" in last, last
    assert "qfota recover" in last, last


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_short_stop_the_modem_sits_out_goes_on(runtime, big_image):
    # Stopped for less than the modem's quiet window (FAST: 2.5 s): the stream notices the
    # gap, finds no FILEEND, and goes on to a whole update.
    m = modem(BIG_MD5, seed=7, baud=115_200)
    # The stall wait bounds a gap too: the default 10 s here, not the tests' short one.
    extra = ["--timeout", "stall=10"] + (["--lock-heap"] if runtime == "micropython" else [])
    with PtySimulator(m) as sim:
        with streaming(sim, update_cmd(runtime, sim.path, big_image, *extra), 20_000) as proc:
            with stopped(proc):
                time.sleep(1.3)  # the length of the stop itself, not a synchronisation
            out, _ = proc.communicate(timeout=90)
    assert proc.returncode == 0, out
    assert m.outcome == "END 0" and m.received_md5 == BIG_MD5
    assert "FILEEND 500" not in m.history


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_image_that_shrinks_while_streamed_says_what_the_modem_does(runtime, big_image):
    m = modem(BIG_MD5, seed=8, baud=115_200)
    with PtySimulator(m) as sim:
        with streaming(sim, update_cmd(runtime, sim.path, big_image), 10_000) as proc:
            os.truncate(big_image, 100_000)
            out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1, out
    last = out.strip().splitlines()[-1]
    assert last.startswith(
        "qfota: failed: STREAM: the image changed while it was sent (it ended at 100000 of "
        "150000 bytes); 100000 of 150000 bytes sent; the modem may still be inside the FILE "
        "transfer"
    ), last
    assert "qfota recover" in last, last
    assert m.outcome != "END 0"


def test_image_modified_while_streamed_is_not_sent_whole(big_image):
    m = modem(BIG_MD5, seed=9, baud=115_200)
    with PtySimulator(m) as sim:
        with streaming(sim, update_cmd("cpython", sim.path, big_image), 10_000) as proc:
            st = os.stat(big_image)
            os.utime(big_image, (st.st_atime, st.st_mtime + 60))  # rewritten in place
            out, _ = proc.communicate(timeout=60)
        got = sim.inspect(lambda mm: mm.package_bytes)
    assert proc.returncode == 1, out
    last = out.strip().splitlines()[-1]
    assert last.startswith(
        "qfota: failed: STREAM: the image changed while it was sent (150000 bytes, modified"
    ), last
    assert "inside the FILE transfer" in last and "qfota recover" in last, last
    assert got < len(BIG)  # its last chunk never went out


def _eacces_path():
    """A file even root may not open for writing (a read-only sysfs attribute)."""
    for p in (
        "/sys/kernel/mm/transparent_hugepage/hpage_pmd_size",
        "/sys/devices/system/cpu/online",
        "/sys/kernel/uevent_seqnum",
    ):
        try:
            os.close(os.open(p, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK))
        except PermissionError:
            return p
        except OSError:
            continue
    return None


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("how", ["missing", "regular file", "directory", "/dev/null", "eacces"])
def test_every_bad_port_is_one_refusal_exit_2(runtime, how, image, tmp_path):
    port, words = {
        "missing": (str(tmp_path / "ttyUSB9"), "cannot open %s: [Errno 2] ENOENT (no such file"),
        "regular file": (image, "%s: not a serial device ([Errno 25] ENOTTY)"),
        "directory": (str(tmp_path), "cannot open %s: [Errno 21] EISDIR (is a directory)"),
        "/dev/null": ("/dev/null", "%s: not a serial device ([Errno 25] ENOTTY)"),
        "eacces": (_eacces_path(), "cannot open %s: [Errno 13] EACCES (permission denied)"),
    }[how]
    if port is None:
        pytest.skip("no file here that root may not open for writing")
    for command in (["update", "--image", image], ["info"]):
        cmd = [sys.executable, "-m", "qfota_tools.cli", *command, "--runtime", runtime]
        proc = subprocess.run(cmd + ["--port", port], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        lines = proc.stdout.splitlines()
        assert len(lines) == 1 and proc.stderr == "", proc.stdout + proc.stderr
        assert lines[0].startswith("qfota: failed: PORT: " + words % port), lines[0]


def test_micropython_port_errors_speak_words(micropython, tmp_path):
    # The engine on the real MicroPython interpreter, whose errno module names no ENOTTY
    # and whose OSError has no text: the same words as on CPython.
    from conftest import run_micropython

    plain = tmp_path / "plain"
    plain.write_bytes(b"")
    script = (
        "from qfota import driver\n"
        "from qfota.tty import TtyPort\n"
        "from qfota.errors import FotaError\n"
        "for p in (%r, %r):\n"
        "    try:\n"
        "        driver.open_port(lambda: TtyPort(p))\n"
        "    except FotaError as e:\n"
        "        print(e.exit_status, e)\n"
    ) % (str(plain), str(tmp_path / "none"))
    proc = run_micropython(["-c", script], timeout=60)
    assert proc.stdout.splitlines() == [
        "2 PORT: cannot open the port: [Errno 25] ENOTTY (not a serial device)",
        "2 PORT: cannot open the port: [Errno 2] ENOENT (no such file or directory)",
    ], proc.stdout + proc.stderr
