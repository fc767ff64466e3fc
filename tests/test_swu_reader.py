"""``qfota.swu`` against SWUs written by libarchive (the library behind bsdcpio), not by
our own writer: the cpio "newc" layout is then the real one, padding and trailer
included. libarchive is reached through ctypes (the system's ``libarchive.so.13``).
Our test writer (``ddi_cases.make_swu``) is checked against libarchive's reader too.
"""

import ctypes
import ctypes.util
import hashlib

import pytest
from ddi_cases import make_swu, pattern

from qfota import swu
from qfota.errors import FotaError


def _lib():
    name = ctypes.util.find_library("archive") or "libarchive.so.13"
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        pytest.skip("libarchive is not installed (apt: libarchive13)")
    vp, cp, i64 = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int64
    for fn, args, res in (
        ("archive_write_new", [], vp),
        ("archive_write_set_format_cpio_newc", [vp], ctypes.c_int),
        ("archive_write_open_filename", [vp, cp], ctypes.c_int),
        ("archive_write_header", [vp, vp], ctypes.c_int),
        ("archive_write_data", [vp, cp, ctypes.c_size_t], ctypes.c_ssize_t),
        ("archive_write_close", [vp], ctypes.c_int),
        ("archive_write_free", [vp], ctypes.c_int),
        ("archive_entry_new", [], vp),
        ("archive_entry_free", [vp], None),
        ("archive_entry_set_pathname", [vp, cp], None),
        ("archive_entry_set_size", [vp, i64], None),
        ("archive_entry_set_filetype", [vp, ctypes.c_uint], None),
        ("archive_entry_set_perm", [vp, ctypes.c_uint], None),
        ("archive_read_new", [], vp),
        ("archive_read_support_format_all", [vp], ctypes.c_int),
        ("archive_read_open_filename", [vp, cp, ctypes.c_size_t], ctypes.c_int),
        ("archive_read_next_header", [vp, ctypes.POINTER(vp)], ctypes.c_int),
        ("archive_entry_pathname", [vp], cp),
        ("archive_entry_size", [vp], i64),
        ("archive_read_data", [vp, cp, ctypes.c_size_t], ctypes.c_ssize_t),
        ("archive_read_free", [vp], ctypes.c_int),
    ):
        f = getattr(lib, fn)
        f.argtypes = args
        f.restype = res
    return lib


def write_cpio(lib, path, members):
    a = lib.archive_write_new()
    assert lib.archive_write_set_format_cpio_newc(a) == 0
    assert lib.archive_write_open_filename(a, str(path).encode()) == 0
    for name, data in members:
        e = lib.archive_entry_new()
        lib.archive_entry_set_pathname(e, name.encode())
        lib.archive_entry_set_size(e, len(data))
        lib.archive_entry_set_filetype(e, 0o100000)  # AE_IFREG
        lib.archive_entry_set_perm(e, 0o644)
        assert lib.archive_write_header(a, e) == 0
        assert lib.archive_write_data(a, data, len(data)) == len(data)
        lib.archive_entry_free(e)
    assert lib.archive_write_close(a) == 0
    lib.archive_write_free(a)


def read_cpio(lib, path):
    a = lib.archive_read_new()
    lib.archive_read_support_format_all(a)
    assert lib.archive_read_open_filename(a, str(path).encode(), 10240) == 0
    out = []
    e = ctypes.c_void_p()
    while lib.archive_read_next_header(a, ctypes.byref(e)) == 0:
        n = lib.archive_entry_size(e)
        buf = ctypes.create_string_buffer(max(n, 1))
        got = lib.archive_read_data(a, buf, n) if n else 0
        out.append((lib.archive_entry_pathname(e).decode(), buf.raw[:got]))
    lib.archive_read_free(a)
    return out


def desc(name, image, version="0.0.0+EC200TCNDAR02A08M16"):
    sha = hashlib.sha256(image).hexdigest()
    return (
        'software =\n{\n\tversion = "%s";\n\thardware-compatibility: [ "EC200TCNDAR02A07M16" ];\n'
        '\timages: (\n\t\t{\n\t\t\tfilename = "%s";\n\t\t\ttype = "raw";\n'
        '\t\t\tsha256 = "%s";\n\t\t}\n\t);\n}\n' % (version, name, sha)
    ).encode()


@pytest.mark.parametrize("size", [1, 3, 4097, 100_003])
def test_libarchive_swu_window(tmp_path, size):
    lib = _lib()
    image = pattern(size, 29)
    path = tmp_path / "p.swu"
    name = "EC200T_A07_A08.bin"
    write_cpio(lib, path, [("sw-description", desc(name, image)), (name, image)])
    got_name, off, length, sha = swu.find_image(str(path))
    assert (got_name, length, sha) == (name, size, hashlib.sha256(image).hexdigest())
    assert path.read_bytes()[off : off + length] == image


def test_libarchive_swu_with_signature_and_json_description(tmp_path):
    lib = _lib()
    image = pattern(5000, 31)
    d = b'{"software": {"version": "1.0", "images": [{"filename": "m.bin", "sha256": "%s"}]}}'
    d = d % hashlib.sha256(image).hexdigest().encode()
    path = tmp_path / "p.swu"
    write_cpio(
        lib, path, [("sw-description", d), ("sw-description.sig", b"S" * 256), ("m.bin", image)]
    )
    name, off, length, sha = swu.find_image(str(path))
    assert name == "m.bin" and path.read_bytes()[off : off + length] == image
    # the sha256 sw-description gives is enforced
    write_cpio(lib, path, [("sw-description", d), ("m.bin", image[:-1] + b"\0")])
    with pytest.raises(FotaError, match="sha256 of m.bin"):
        swu.find_image(str(path))


def test_our_test_writer_reads_back_through_libarchive(tmp_path):
    lib = _lib()
    image = pattern(777, 37)
    path = tmp_path / "p.swu"
    path.write_bytes(make_swu("m.bin", image, extra=(("notes.txt", b"n"),)))
    members = read_cpio(lib, path)
    assert [n for n, _ in members] == ["sw-description", "m.bin", "notes.txt"]
    assert members[1][1] == image


def test_the_swu_qfota_swu_writes(tmp_path):
    # `qfota swu` (the gooseBit wrapper) nests `properties: {...}` in the image's group.
    from qfota_tools.commands.swu import build

    image = pattern(33_333, 41)
    src = tmp_path / "EC200T_A07_A08.bin"
    src.write_bytes(image)
    out = tmp_path / "p.swu"
    a07, a08 = "EC200TCNDAR02A07M16_01.001.01.001", "EC200TCNDAR02A08M16_01.001.01.001"
    build(str(src), "EC200T", a07, a08, str(out))
    name, off, length, sha = swu.find_image(str(out))
    assert (name, sha) == (src.name, hashlib.sha256(image).hexdigest())
    assert out.read_bytes()[off : off + length] == image
    blob = bytearray(out.read_bytes())
    blob[off + 100] ^= 0xFF
    out.write_bytes(bytes(blob))
    with pytest.raises(FotaError, match="sha256 of EC200T_A07_A08.bin"):
        swu.find_image(str(out))


def test_nested_groups_in_an_image_entry(tmp_path):
    lib = _lib()
    image = pattern(2000, 43)
    sha = hashlib.sha256(image).hexdigest()
    d = (
        'software = { version = "1.0"; board = { images: ( { filename = "m.bin"; '
        'properties: { note = "x"; }; sha256 = "%s"; } ); }; };' % sha
    ).encode()
    path = tmp_path / "p.swu"
    write_cpio(lib, path, [("sw-description", d), ("m.bin", image)])
    assert swu.find_image(str(path))[3] == sha
