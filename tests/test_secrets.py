"""The FTP password never appears in anything qfota writes: stdout, stderr, ``--log``
files, ``--json`` objects, ``-v`` traces, on every failure path reachable from the
command line (bad URL forms, each refusal, modem errors from simulator faults, timeouts),
on both runtimes. The password can come from ``--password-env`` or ``--password-file``.

Modem runs need a working engine (``firmware/qfota``); the refusals do not.
"""

import os
import subprocess
import sys

import pytest

from qfota_tools import cli
from qfota_tools.simulators.ec200.model import FAST, Modem
from qfota_tools.simulators.ec200.pty_sim import PtySimulator

SECRET = "Sntl7Qx9pw"  # the sentinel password
PIECES = (SECRET, "Sntl7Q", "7Qx9pw")  # no part of it either
VAR = "QFOTA_TEST_FTP_PASSWORD"
FROM_ENV = ["--url", "ftp://fota@127.0.0.1/fw.bin", "--password-env", VAR]  # the password: $VAR
QUIET = dict(FAST, noise_ms=0)


def assert_clean(*texts):
    for text in texts:
        for piece in PIECES:
            assert piece not in text, "password leaked: %r" % text[-2000:]


@pytest.fixture
def sim():
    s = PtySimulator(Modem(timing=QUIET))
    s.start()
    yield s
    s.stop()


def _main(argv, capsys):
    try:
        status = cli.main(argv)
    except SystemExit as e:
        status = e.code
    cap = capsys.readouterr()
    return status, cap.out, cap.err


REFUSED_URLS = [
    ("ftp://fota:%s@127.0.0.1/dir/fw.bin", "server's root"),
    ("ftp://fota:%s@127.0.0.1:0/fw.bin", "port must be 1-65535"),
    ("ftp://fota:%s@127.0.0.1:99999/fw.bin", "port must be 1-65535"),
    ("ftp://fota:%s@/fw.bin", "has no server"),
    ("ftp://fota:%s@127.0.0.1", "has no file path"),
    ("ftp://fota:%s@127.0.0.1/f\u00fc.bin", "non-ASCII"),
    ("ftp://fota:%s@127.0.0.1/fw.bin\rATI", "carriage return"),
    ("ftp://fota:%s@127.0.0.1/fw\n.bin", "line feed"),
    ('ftp://fota:%s@127.0.0.1/fw".bin', "double quote"),
    ("ftp://fota:%s,x@127.0.0.1/fw.bin", "holds a ','"),
    ("ftp://fota:%s/x@127.0.0.1/fw.bin", "holds a '/'"),
    ("ftp://fota:%s@127.0.0.1/" + "a" * 60, "file path longer than 50 bytes"),
    ("ftp://fota:%s" + "p" * 50 + "@127.0.0.1/fw.bin", "password longer than 50 bytes"),
    ("ftp://fota:%s@127.0.0.1/" + "a" * 250, "longer than 255 bytes"),
    ("sftp://fota:%s@127.0.0.1/fw.bin", "must start with ftp://"),
]


@pytest.mark.parametrize("extra", [[], ["-v"], ["--json"], ["-v", "--json"]])
@pytest.mark.parametrize("url,why", REFUSED_URLS, ids=[w for _, w in REFUSED_URLS])
def test_refused_urls(url, why, extra, sim, tmp_path, capsys):
    log = tmp_path / "q.log"
    argv = ["update", "--port", sim.path, "--url", url % SECRET, "--log", str(log), *extra]
    status, out, err = _main(argv, capsys)
    assert status == 2, out + err
    assert why in out, out
    assert_clean(out, err, log.read_text())
    assert "fota:***@" in out or "***" in out or SECRET not in url % SECRET
    assert sim.bytes_in == 0


def _password_cases(tmp_path):
    pwfile = tmp_path / "pw"
    pwfile.write_text(SECRET + "\n")
    badfile = tmp_path / "bad"
    badfile.write_text(SECRET + "/x\n")
    return [
        # (argv tail, environment value or None, expected text)
        (
            FROM_ENV + ["--password-file", str(pwfile)],
            SECRET,
            "not both",
        ),
        (
            ["--url", "ftp://fota:%s@127.0.0.1/fw.bin" % SECRET, "--password-env", VAR],
            SECRET,
            "the URL has a password already",
        ),
        (
            ["--url", "http://fota@127.0.0.1/fw.bin", "--password-env", VAR],
            SECRET,
            "a password goes only into an ftp:// URL",
        ),
        (
            ["--url", "ftp://127.0.0.1/fw.bin", "--password-env", VAR],
            SECRET,
            "the URL names no user",
        ),
        (FROM_ENV, SECRET + "\r\nATI", "carriage return"),
        (FROM_ENV, SECRET + ",x", "holds a ','"),
        (FROM_ENV, SECRET + " x", "holds a ' '"),
        (FROM_ENV, SECRET + "\u00e9", "non-ASCII"),
        (FROM_ENV, SECRET * 6, "password longer than 50 bytes"),
        (
            ["--url", "ftp://fota@127.0.0.1/dir/fw.bin", "--password-env", VAR],
            SECRET,
            "server's root",
        ),
        (
            ["--url", "ftp://fota@127.0.0.1/fw.bin", "--password-file", str(badfile)],
            None,
            "holds a '/'",
        ),
        (
            ["--url", "ftp://fota@127.0.0.1/fw.bin", "--password-file", str(tmp_path / "nope")],
            None,
            "cannot read it",
        ),
        (
            ["--image", str(pwfile), "--password-file", str(pwfile)],
            None,
            "--password-file: applies to --url only",
        ),
    ]


@pytest.mark.parametrize("extra", [[], ["-v", "--json"]])
def test_each_password_refusal(extra, sim, tmp_path, capsys, monkeypatch):
    log = tmp_path / "q.log"
    for tail, env, why in _password_cases(tmp_path):
        if env is None:
            monkeypatch.delenv(VAR, raising=False)
        else:
            monkeypatch.setenv(VAR, env)
        argv = ["update", "--port", sim.path, *tail, "--log", str(log), *extra]
        status, out, err = _main(argv, capsys)
        assert status == 2, (tail, out, err)
        assert why in out, (why, out)
        assert len(out.strip().splitlines()) == 1, out
        assert_clean(out, err, log.read_text())
    monkeypatch.delenv(VAR, raising=False)
    argv = ["update", "--port", sim.path, "--url", "ftp://fota@h/fw.bin", "--password-env", VAR]
    status, out, err = _main(argv, capsys)
    assert status == 2 and "no such environment variable" in out
    assert sim.bytes_in == 0


def _run(runtime, port, url, *extra, env=None, timeout=60):
    cmd = [sys.executable, "-m", "qfota_tools.cli", "update", "--runtime", runtime]
    cmd += ["--port", port, "--url", url, "--timeout", "probe=2", "--timeout", "command=2"]
    cmd += ["--timeout", "pdp=2", "--timeout", "dlstart=2", "--timeout", "download=4"]
    cmd += list(extra)
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, env=dict(os.environ, **(env or {}))
    )


def _closed_port():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# (fault, expected last-line text, exit statuses). The FTP server is a closed loopback
# port, so a download that starts ends in FTPEND 605.
MODEM_CASES = [
    ("none", "FTPEND: 605: Network error", (3,)),
    ("qfotadl-error", "QFOTADL", (1, 3)),  # an ERROR without a code: failed or modem
    ("cme-error", "QFOTADL", (1, 3)),
    ("pdp-inactive", "FTPEND: 605: Network error", (3,)),
    ("dead", "timeout after 2 s", (4,)),
]


@pytest.mark.parametrize("runtime", ["cpython", "micropython"])
@pytest.mark.parametrize("source", ["url", "env", "file"])
@pytest.mark.parametrize("fault,last,status", MODEM_CASES, ids=[c[0] for c in MODEM_CASES])
def test_modem_failures_never_print_the_password(fault, last, status, source, runtime, tmp_path):
    if runtime == "micropython" and source != "env":
        pytest.skip("one password source is enough on the second runtime")
    log = tmp_path / "q.log"
    pwfile = tmp_path / "pw"
    pwfile.write_text(SECRET + "\r\n")
    port = _closed_port()
    url = "ftp://fota%s@127.0.0.1:%d/fw.bin" % (":" + SECRET if source == "url" else "", port)
    extra = ["--cid", "1", "--apn", "internet", "-v", "--log", str(log)]
    if source == "env":
        extra += ["--password-env", VAR]
    elif source == "file":
        extra += ["--password-file", str(pwfile)]
    m = Modem(timing=QUIET, faults=() if fault == "none" else (fault,))
    with PtySimulator(m, fetch_timeout=2) as sim:
        text = _run(runtime, sim.path, url, *extra, env={VAR: SECRET})
        js = _run(runtime, sim.path, url, *extra, "--json", env={VAR: SECRET})
    for proc in (text, js):
        assert proc.returncode in status, proc.stdout + proc.stderr
        assert_clean(proc.stdout, proc.stderr)
    assert last in text.stdout.strip().splitlines()[-1], text.stdout
    assert '"event": "result"' in js.stdout.strip().splitlines()[-1], js.stdout
    assert_clean(log.read_text())
    if fault != "dead":
        # The modem did get the password (else the test proves nothing), inside the URL.
        sent = [c for c in m.commands if c.upper().startswith('AT+QFOTADL="')]
        assert sent and all(SECRET in c for c in sent), m.commands
        assert "fota:***@127.0.0.1" in text.stdout  # -v printed the command, redacted
