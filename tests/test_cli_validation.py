"""`qfota update` refuses bad input before either runtime starts: exit 2, one line naming
the option and the value, no traceback, and the simulated modem receives no byte.

Most cases call the CLI's ``main()`` in this process (fast); a few run the real command
line as a subprocess to show the same for the installed entry point and both runtimes.
"""

import os
import subprocess
import sys

import pytest

from qfota_tools import cli
from qfota_tools.simulators.ec200.model import FAST, Modem
from qfota_tools.simulators.ec200.pty_sim import PtySimulator


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    path = tmp_path_factory.mktemp("val") / "EC200T.bin"
    path.write_bytes(os.urandom(4096))
    return str(path)


@pytest.fixture
def sim():
    m = Modem(timing=dict(FAST, noise_ms=0))
    s = PtySimulator(m)
    s.start()
    yield s
    s.stop()


def _main(argv, capsys):
    try:
        status = cli.main(argv)
    except SystemExit as e:  # argparse
        status = e.code
    cap = capsys.readouterr()
    return status, cap.out, cap.err


# (arguments after --port/--image, the line's expected text). "{image}" is the image path.
FILE_CASES = [
    (["--baud", "0"], "--baud 0: not a rate the module takes"),
    (["--baud", "115201"], "--baud 115201: not a rate the module takes"),
    (["--flow", "none", "--rate", "0"], "--rate 0: rate must be 129-15000 bytes/s"),
    (["--flow", "none", "--rate", "15001"], "--rate 15001: rate must be 129-15000 bytes/s"),
    (["--flow", "none", "--rate", "-5"], "--rate -5: rate must be"),
    (
        ["--flow", "none", "--rate", "2000000", "--rate-above-note-limit"],
        "--rate 2000000: rate must be 129-1000000 bytes/s",
    ),
    (["--rate", "1000"], "--rate 1000: applies to --flow none only"),
    (["--flow", "hw", "--rate", "1000"], "--rate 1000: applies to --flow none only"),
    (["--rate-above-note-limit"], "--rate-above-note-limit: only with --flow none and --rate"),
    (["--chunk", "100"], "--chunk 100: chunk must be a multiple of 16 from 32 to 65536"),
    (["--chunk", "16"], "--chunk 16: chunk must be a multiple of 16"),
    (["--chunk", "131072"], "--chunk 131072: chunk must be a multiple of 16"),
    (["--timeout", "probe=0"], "--timeout probe=0: probe must be more than 0 s"),
    (["--timeout", "probe=-1"], "--timeout probe=-1: probe must be more than 0 s"),
    (["--timeout", "probe=abc"], "--timeout probe=abc: 'abc' is not a number of seconds"),
    (["--timeout", "probe=nan"], "--timeout probe=nan: 'nan' is not a number of seconds"),
    (["--timeout", "probe=inf"], "--timeout probe=inf: 'inf' is not a number of seconds"),
    (["--timeout", "end=86401"], "--timeout end=86401: end must be at most 86400 s"),
    (["--timeout", "probe"], "--timeout probe: give NAME=SECONDS"),
    (["--timeout", "nosuch=3"], "--timeout nosuch=3: unknown name 'nosuch'"),
    (["--apn", "internet"], "--apn: applies to --url only"),
    (["--cid", "1"], "--cid: applies to --url only"),
    (["--mode", "2"], "--mode 2: upgrade_mode must be 0 or 1"),
    (["--download-urcs", "4"], "--download-urcs 4: download_URC_max must be 0 or 5-100"),
    (["--update-urcs", "101"], "--update-urcs 101: update_URC_max must be 0 or 5-100"),
    (["--min-voltage", "0"], "--min-voltage 0: must be 1-5000 mV"),
    (["--protocol-download"], "--protocol-download: protocol-download file mode"),
    (["--max-image-size", "100"], "--image {image}: 4096 bytes, above --max-image-size 100"),
    (["--max-image-size", "0"], "--max-image-size 0: must be more than 0 bytes"),
    (["--heapsize", "64K"], "--heapsize: only with --runtime micropython"),
    (["--mpy"], "--mpy: only with --runtime micropython"),
    (["--mem"], "--mem: only with --runtime micropython"),
    (["--lock-heap"], "--lock-heap: only with --runtime micropython"),
    (["--log", "/nonexistent-dir/q.log"], "--log /nonexistent-dir/q.log: cannot write it"),
]

URL = "http://127.0.0.1:9/EC200T.bin"
URL_CASES = [
    (["--usb"], "--usb: applies to --image only"),
    (["--flow", "hw"], "--flow: applies to --image only"),
    (["--flow", "none"], "--flow: applies to --image only"),
    (["--rate", "1000"], "--rate: applies to --image only"),
    (["--chunk", "1024"], "--chunk: applies to --image only"),
    (["--apn", "x\rATI"], "--apn 'x\\rATI': holds a carriage return (CR)"),
    (["--apn", "x\nATI"], "--apn 'x\\nATI': holds a line feed (LF)"),
    (["--apn", 'in"ter'], "--apn 'in\"ter': holds a double quote"),
    (["--apn", "in\tter"], "--apn 'in\\tter': holds a control character (0x09)"),
    (["--apn", "intérnet"], "--apn 'int\\xe9rnet': holds a non-ASCII character"),
    (["--apn", "a" * 101], "longer than 100 characters"),
    (["--cid", "0"], "--cid 0: must be 1-15"),
    (["--cid", "16"], "--cid 16: must be 1-15"),
]

BAD_URLS = [
    ("http://h/a\rATI", "holds a carriage return (CR)"),
    ("http://h/a\nb", "holds a line feed (LF)"),
    ('http://h/a"b', "holds a double quote"),
    ("http://h/a\x01b", "holds a control character (0x01)"),
    ("http://h/ä.bin", "holds a non-ASCII character"),
    ("gopher://h/x.bin", "must start with ftp://, http:// or https://"),
    ("http://h", "has no file path"),
    ("http://h:99999/x.bin", "port must be 1-65535"),
    ("ftp://u:p@h/dir/x.bin", "file path must be at the server's root"),
    ("http://h/" + "x" * 300, "longer than 255 bytes"),
]


def _assert_refused(status, out, err, expect, sim):
    lines = out.strip().splitlines()
    assert status == 2, (status, out, err)
    assert len(lines) == 1, out
    assert lines[0].startswith("qfota: failed: PARAMS: "), lines[0]
    assert expect in lines[0], lines[0]
    assert "Traceback" not in out + err
    assert sim.bytes_in == 0 and sim.inspect(lambda m: list(m.commands)) == []


@pytest.mark.parametrize("runtime", ["cpython", "micropython"])
@pytest.mark.parametrize("args,expect", FILE_CASES, ids=[" ".join(c[0]) for c in FILE_CASES])
def test_file_mode_refusals(args, expect, runtime, image, sim, capsys):
    if runtime == "micropython" and any(a in args for a in ("--heapsize", "--mpy", "--mem")):
        pytest.skip("a micropython-runtime option: refused only under cpython")
    if runtime == "micropython" and args == ["--lock-heap"]:
        pytest.skip("valid under micropython")
    argv = ["update", "--runtime", runtime, "--port", sim.path, "--image", image, *args]
    status, out, err = _main(argv, capsys)
    _assert_refused(status, out, err, expect.format(image=image), sim)


@pytest.mark.parametrize("args,expect", URL_CASES, ids=[repr(c[0]) for c in URL_CASES])
def test_url_mode_refusals(args, expect, sim, capsys):
    status, out, err = _main(["update", "--port", sim.path, "--url", URL, *args], capsys)
    _assert_refused(status, out, err, expect, sim)


@pytest.mark.parametrize("url,expect", BAD_URLS, ids=[repr(u[:30]) for u, _ in BAD_URLS])
def test_bad_urls(url, expect, sim, capsys):
    status, out, err = _main(["update", "--port", sim.path, "--url", url], capsys)
    _assert_refused(status, out, err, expect, sim)


def test_image_refusals(tmp_path, sim, capsys):
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    for path, expect in (
        (str(tmp_path / "missing.bin"), "image not found"),
        (str(empty), "image is empty"),
        (str(tmp_path), "not a regular file"),
    ):
        argv = ["update", "--port", sim.path, "--image", path]
        status, out, err = _main(argv, capsys)
        _assert_refused(status, out, err, "--image %s: %s" % (path, expect), sim)


def test_default_max_image_size_is_64_mib(tmp_path, sim, capsys):
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        f.truncate((64 << 20) + 1)  # sparse: no disk used
    status, out, err = _main(["update", "--port", sim.path, "--image", str(big)], capsys)
    _assert_refused(status, out, err, "67108865 bytes, above --max-image-size 67108864", sim)


def test_values_inside_the_limits_pass_validation(image, tmp_path):
    # The same checks let good values through (else every refusal test would pass by
    # refusing everything): validate() returns the options the runtimes get.
    from qfota_tools.commands import update

    parser = cli.build_parser()
    args = parser.parse_args(
        [
            "update",
            "--port",
            "/dev/null",
            "--image",
            image,
            "--flow",
            "none",
            "--rate",
            "15000",
            "--chunk",
            "65536",
            "--baud",
            "921600",
            "--timeout",
            "probe=86400",
            "--timeout",
            "end_ms=0.5",
            "--log",
            str(tmp_path / "q.log"),
        ]
    )
    opts = update.validate(args)
    assert opts["rate"] == 15000 and opts["chunk"] == 65536 and opts["baud"] == 921600
    assert opts["timeouts"] == {"probe_ms": 86_400_000, "end_ms": 500}
    args = parser.parse_args(
        ["update", "--port", "/dev/null", "--url", URL, "--apn", "cmnet", "--cid", "15"]
    )
    opts = update.validate(args)
    assert opts["url"] == URL and opts["apn"] == "cmnet" and opts["cid"] == 15
    args = parser.parse_args(
        ["update", "--port", "/dev/null", "--image", image, "--flow", "none", "--rate", "20000"]
        + ["--rate-above-note-limit"]
    )
    assert update.validate(args)["rate"] == 20000


def test_argparse_errors_are_one_line(sim, capsys):
    status, out, err = _main(
        ["update", "--port", sim.path, "--image", "x", "--baud", "fast"], capsys
    )
    assert status == 2
    assert err.strip().splitlines() == [
        "qfota update: error: argument --baud: invalid int value: 'fast' (see qfota update --help)"
    ]
    assert sim.bytes_in == 0


@pytest.mark.parametrize("runtime", ["cpython", "micropython"])
def test_refusal_through_the_real_command_line(runtime, image, sim):
    cmd = [sys.executable, "-m", "qfota_tools.cli", "update", "--runtime", runtime]
    cmd += ["--port", sim.path, "--image", image, "--baud", "0"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stdout.strip().splitlines() == [
        "qfota: failed: PARAMS: --baud 0: not a rate the module takes "
        "(9600, 57600, 115200, 230400, 460800, 500000, 576000, 921600, 1000000, 1152000)"
    ]
    assert proc.stderr == ""
    assert sim.bytes_in == 0


def test_version():
    import qfota

    proc = subprocess.run(
        [sys.executable, "-m", "qfota_tools.cli", "--version"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0
    assert proc.stdout.strip() == "qfota " + qfota.__version__
    assert qfota.__version__[0].isdigit()
