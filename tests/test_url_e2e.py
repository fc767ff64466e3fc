"""URL modes end to end: `qfota update --url` (the real CLI, both runtimes) against the
EC200 simulator, which really fetches the package from real HTTP and FTP servers that
this test starts on 127.0.0.1. Failures must come back as the note's codes; the FTP
password must never appear in anything qfota prints.

Every test runs against two modems: the simulator's default profile, and the ``note``
profile, which answers only the commands the Application Note documents (ERROR to read
forms such as ``AT+QIACT?``, ``AT+QICSGP=<cid>``, ``AT+QFOTA="fota/cid"``, and to
``ATE0``, ``AT+QGMR``): qfota must not depend on anything the note does not show.
"""

import hashlib
import os
import subprocess
import sys

import pytest
from http_rig import Server, static

from qfota_tools.simulators.ec200 import model as sim_model
from qfota_tools.simulators.ec200.pty_sim import PtySimulator

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pyftpdlib's asyncore

RUNTIMES = ("cpython", "micropython")
PROFILES = ("default", "note")
PASSWORD = "s3cret:pw@42"
PACKAGE = os.urandom(40_000)
WAITS = [
    "probe=3",
    "command=2",
    "pdp=3",
    "dlstart=3",
    "download=10",
    "start=2",
    "progress=3",
    "reboot=2",
    "settle=3",
]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("www")
    (root / "EC200T.bin").write_bytes(PACKAGE)
    return root


@pytest.fixture(scope="module")
def http_url(files):
    with Server(static(files)) as srv:
        yield srv.base


@pytest.fixture(scope="module")
def ftp_port(files):
    from ftp_server import FtpServer

    with FtpServer(files, users=[("fota", PASSWORD)]) as port:
        yield port


APN = ("--cid", "1", "--apn", "internet")


def update(url, runtime, *extra, faults=(), profile="default", seed=5, prepare=None):
    """``qfota update --url`` on a modem of ``profile`` (``prepare(modem)`` first, if
    given); (the modem, the run, its last line as ``proc.last``)."""
    m = sim_model.Modem(
        expect_md5=hashlib.md5(PACKAGE).hexdigest(),
        faults=faults,
        timing=sim_model.FAST,
        seed=seed,
        profile=profile,
    )
    if prepare:
        prepare(m)
    cmd = [sys.executable, "-m", "qfota_tools.cli", "update", "--runtime", runtime, "--url", url]
    for w in WAITS:
        cmd += ["--timeout", w]
    with PtySimulator(m, fetch_timeout=5) as sim:
        cmd += ["--port", sim.path, *extra]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    proc.last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    return m, proc


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_http_happy(runtime, profile, http_url):
    m, proc = update(http_url + "/EC200T.bin", runtime, *APN, "--download-urcs", "10",
                     profile=profile)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.last.startswith("qfota: done: EC200TCNDAR02A07M16") and "A08M16" in proc.last
    assert m.received_md5 == hashlib.md5(PACKAGE).hexdigest()
    assert m.outcome == "END 0"
    # The PDP context was set up as in the note's example, then the URL sent as given.
    cmds = [c.upper() for c in m.commands]
    assert 'AT+QICSGP=1,1,"INTERNET","","",1' in cmds, cmds
    assert "AT+QIACT=1" in cmds
    assert any(c.startswith('AT+QFOTADL="HTTP://127.0.0.1:') for c in cmds)


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_ftp_happy_and_password_never_printed(runtime, profile, ftp_port):
    url = "ftp://fota:%s@127.0.0.1:%d/EC200T.bin" % (PASSWORD, ftp_port)
    m, proc = update(url, runtime, *APN, "--verbose", "--mode", "0", profile=profile)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert m.received_md5 == hashlib.md5(PACKAGE).hexdigest()
    assert "AT+QFOTADL=" in proc.stdout  # --verbose printed the command ...
    assert "fota:***@127.0.0.1" in proc.stdout  # ... redacted
    assert PASSWORD not in proc.stdout + proc.stderr
    assert "s3cret" not in proc.stdout + proc.stderr


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize(
    "user,password,path,code,meaning",
    [
        ("fota", "wrong", "EC200T.bin", 625, "Failed to login FTP"),
        ("fota", PASSWORD, "missing.bin", 627, "Requested action not taken"),
    ],
    ids=["wrong-login", "missing-file"],
)
def test_ftp_failures(runtime, profile, ftp_port, user, password, path, code, meaning):
    url = "ftp://%s:%s@127.0.0.1:%d/%s" % (user, password, ftp_port, path)
    m, proc = update(url, runtime, *APN, "--verbose", profile=profile)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert proc.last == "qfota: failed: FTPEND: %d: %s" % (code, meaning), proc.last
    assert password not in proc.stdout + proc.stderr


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_ftp_refused_connection(runtime, profile):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    url = "ftp://fota:x@127.0.0.1:%d/EC200T.bin" % port
    m, proc = update(url, runtime, *APN, profile=profile)
    assert proc.returncode == 3, proc.stdout
    assert proc.last == "qfota: failed: FTPEND: 605: Network error", proc.last


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_http_not_found(runtime, profile, http_url):
    m, proc = update(http_url + "/nope.bin", runtime, *APN, profile=profile)
    assert proc.returncode == 3, proc.stdout
    assert proc.last == "qfota: failed: HTTPEND: 711: HTTP(S) URL error", proc.last


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_http_without_apn_brings_the_fota_context_up(runtime, profile, http_url):
    # No --apn, no --cid, and the module's context is down: qfota makes sure the fota
    # context (cid 1 by default) is active before AT+QFOTADL, as the note's examples do,
    # instead of letting the module end with HTTPEnd 708 (issue 11).
    m, proc = update(http_url + "/EC200T.bin", runtime, profile=profile)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert m.outcome == "END 0"
    cmds = [c.upper() for c in m.commands]
    assert 'AT+QFOTA="FOTA/CID",1' in cmds, cmds
    assert "AT+QIACT=1" in cmds, cmds
    assert not any(c.startswith("AT+QICSGP=1,") for c in cmds), cmds  # no APN given
    assert cmds.index("AT+QIACT=1") < next(
        i for i, c in enumerate(cmds) if c.startswith('AT+QFOTADL="HTTP')
    )


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_pdp_deactivated_during_download(runtime, profile, http_url):
    m, proc = update(http_url + "/EC200T.bin", runtime, *APN, faults=("pdp-inactive",),
                     profile=profile)  # fmt: skip
    assert proc.returncode == 3, proc.stdout
    assert proc.last == "qfota: failed: HTTPEND: 708: HTTP(S) network not configured", proc.last


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_pdp_steps_skipped_when_in_place(runtime, profile, http_url):
    # Second update on the same modem: context configured and active already.
    def in_place(m):
        m.contexts[1] = [1, "internet", "", "", 1]
        m.active[1] = "10.0.0.7"

    url = http_url + "/EC200T.bin"
    m, proc = update(url, runtime, *APN, profile=profile, seed=9, prepare=in_place)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cmds = [c.upper() for c in m.commands]
    # The note's writes go out (an APN was given); no undocumented read forms.
    assert 'AT+QICSGP=1,1,"INTERNET","","",1' in cmds, cmds
    assert 'AT+QFOTA="FOTA/CID",1' in cmds, cmds
    assert not any(c in ("AT+QICSGP=1", 'AT+QFOTA="FOTA/CID"') for c in cmds), cmds
    if profile == "default":
        # AT+QIACT? showed the context active: it is not activated again.
        assert "AT+QIACT=1" not in cmds, cmds
    else:
        # AT+QIACT? answers ERROR: AT+QIACT=1 goes out, and its ERROR (already active)
        # does not stop the update.
        assert "AT+QIACT=1" in cmds, cmds
    assert m.contexts[1][1] == "internet" and m.outcome == "END 0"
