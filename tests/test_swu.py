"""``qfota swu``: the SWU it writes (read back with a reader of our own and, where Debian's
``cpio`` is installed, with GNU cpio), and the input it refuses (exit 2, one line)."""

import hashlib
import os
import re
import shutil
import subprocess
import sys

import pytest
from swu_read import members

SRC = "EC200TCNDAR02A07M16_01.001.01.001"
DST = "EC200TCNDAR02A08M16_01.001.01.001"


def qfota(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "qfota_tools.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


@pytest.fixture
def image(tmp_path):
    p = tmp_path / "EC200T_A07_A08.bin"
    p.write_bytes(os.urandom(70_001))  # not a multiple of 4: the padding is exercised
    return p


def test_swu_layout(tmp_path, image):
    out = tmp_path / "pkg.swu"
    r = qfota(
        "swu",
        str(image),
        "--model",
        "EC200T",
        "--source-rev",
        SRC,
        "--target-rev",
        DST,
        "-o",
        str(out),
    )
    assert r.returncode == 0, r.stderr
    digest = hashlib.sha256(image.read_bytes()).hexdigest()
    assert digest in r.stdout and "0.0.0+EC200TCNDAR02A08M16.01.001.01.001" in r.stdout
    blob = out.read_bytes()
    got = members(blob)
    assert [n for n, _ in got] == ["sw-description", image.name]
    assert got[1][1] == image.read_bytes()
    desc = got[0][1].decode()
    assert re.search(r'version = "0\.0\.0\+EC200TCNDAR02A08M16\.01\.001\.01\.001";', desc)
    assert re.search(r'EC200T = \{\s*hardware-compatibility = \[ "%s" \];' % SRC, desc)
    assert 'filename = "%s";' % image.name in desc
    assert 'sha256 = "%s";' % digest in desc
    assert len(blob) % 4 == 0
    assert not os.path.exists(str(out) + ".part")


@pytest.mark.skipif(shutil.which("cpio") is None, reason="Debian's cpio is not installed")
def test_gnu_cpio_reads_it(tmp_path, image):
    out = tmp_path / "pkg.swu"
    assert (
        qfota(
            "swu",
            str(image),
            "--model",
            "EC200T",
            "--source-rev",
            SRC,
            "--target-rev",
            DST,
            "-o",
            str(out),
        ).returncode
        == 0
    )
    x = tmp_path / "x"
    x.mkdir()
    with open(out, "rb") as f:
        r = subprocess.run(
            ["cpio", "-id", "--quiet"], stdin=f, cwd=x, capture_output=True, timeout=60
        )
    assert r.returncode == 0, r.stderr
    assert (x / image.name).read_bytes() == image.read_bytes()
    assert b"hardware-compatibility" in (x / "sw-description").read_bytes()


def _refusals(tmp_path, image):
    ok = ["--model", "EC200T", "--source-rev", SRC, "--target-rev", DST]
    out = str(tmp_path / "o.swu")
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    spaced = tmp_path / "a b.bin"
    spaced.write_bytes(b"x")
    swu = tmp_path / "already.swu"
    swu.write_bytes(b"070701" + b"0" * 200)
    return [
        ([str(tmp_path / "nope.bin"), *ok, "-o", out], "no such file"),
        ([str(empty), *ok, "-o", out], "empty"),
        ([str(spaced), *ok, "-o", out], "image file name"),
        ([str(swu), *ok, "-o", out], "cpio archive"),
        (
            [str(image), "--model", "EC 200", "--source-rev", SRC, "--target-rev", DST, "-o", out],
            "--model",
        ),
        (
            [
                str(image),
                "--model",
                "EC200T",
                "--source-rev",
                'A07"; x = "',
                "--target-rev",
                DST,
                "-o",
                out,
            ],
            "--source-rev",
        ),
        (
            [
                str(image),
                "--model",
                "EC200T",
                "--source-rev",
                SRC + "\r\nAT",
                "--target-rev",
                DST,
                "-o",
                out,
            ],
            "--source-rev",
        ),
        (
            [str(image), "--model", "EC200S", "--source-rev", SRC, "--target-rev", DST, "-o", out],
            "does not start with the model",
        ),
        (
            [str(image), "--model", "EC200T", "--source-rev", SRC, "--target-rev", SRC, "-o", out],
            "the same",
        ),
        ([str(image), *ok, "--version", "A08", "-o", out], "--version"),
        ([str(image), *ok, "-o", str(tmp_path / "no" / "o.swu")], "no such folder"),
        ([str(image), *ok, "-o", str(image)], "that is the image"),
        ([str(image), *ok], "required"),  # no -o: argparse's one line
    ]


def test_swu_refuses_bad_input(tmp_path, image):
    for argv, words in _refusals(tmp_path, image):
        r = qfota("swu", *argv)
        assert r.returncode == 2, (argv, r.stdout, r.stderr)
        assert words in r.stderr, (argv, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert not (tmp_path / "o.swu").exists()
    assert image.stat().st_size == 70_001  # -o IMAGE left it alone
