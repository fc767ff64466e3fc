"""Reads an SWUpdate package (``.swu``) on the device, streaming, to find the modem image.

An SWU is a cpio "newc" archive (what gooseBit accepts): ``sw-description`` first, then
the images. The modem must get the image inside, never the wrapper::

    name, offset, size, sha256 = find_image("/sd/fleet/7.bin")
    update(port, "/sd/fleet/7.bin", image_offset=offset, image_length=size)

Each member is a 110-byte header (``070701`` or ``070702``, then 13 fields of 8 hex
digits; ``c_filesize`` and ``c_namesize`` are the 7th and 12th), the name with its NUL,
padded to 4 bytes, the data, padded to 4 bytes; ``TRAILER!!!`` ends it. Only the headers
and ``sw-description`` are read into RAM (the latter bounded); the image is hashed in
place with one buffer.
"""

import binascii
import hashlib

from qfota.compat import const
from qfota.errors import FAILED, FotaError

_HEAD = const(110)
DESC_MAX = const(8192)  # sw-description larger than this is refused
MEMBERS_MAX = const(16)
_BUF = const(2048)
DESC = "sw-description"
_SKIP = (DESC, "sw-description.sig", "TRAILER!!!")


def _fail(detail):
    return FotaError("SWU", None, detail, FAILED)


def is_swu(path):
    """True when the file at ``path`` starts like a cpio "newc" archive."""
    with open(path, "rb") as f:
        head = f.read(6)
    return head in (b"070701", b"070702")


def members(f, size):
    """``[(name, offset, length), ...]`` of the archive open in ``f`` (``size`` bytes)."""
    out = []
    head = bytearray(_HEAD)
    pos = 0
    while True:
        f.seek(pos)
        if f.readinto(head) != _HEAD or head[:5] != b"07070" or head[5] not in b"12":
            raise _fail("not a cpio newc archive (bad header at %d)" % pos)
        try:
            length = int(bytes(head[54:62]).decode(), 16)
            namesize = int(bytes(head[94:102]).decode(), 16)
        except ValueError:
            raise _fail("bad cpio header at %d" % pos) from None
        if not 1 < namesize <= 256:
            raise _fail("bad member name size at %d" % pos)
        name = f.read(namesize)
        if len(name) != namesize or name[-1] != 0:
            raise _fail("truncated member name at %d" % pos)
        name = name[:-1].decode()
        data = (pos + _HEAD + namesize + 3) & ~3
        if name == "TRAILER!!!":
            return out
        if data + length > size:
            raise _fail("member %s runs past the end of the file" % name)
        if len(out) >= MEMBERS_MAX:
            raise _fail("more than %d members" % MEMBERS_MAX)
        out.append((name, data, length))
        pos = (data + length + 3) & ~3


def _value(block, key):
    """The quoted value of ``key = "v"`` (libconfig) or ``"key": "v"`` (JSON) in ``block``."""
    i = 0
    while True:
        i = block.find(key, i)
        if i < 0:
            return None
        j = i + len(key)
        i = j
        if j < len(block) and block[j] == '"':
            j += 1
        while j < len(block) and block[j] in " \t\r\n":
            j += 1
        if j >= len(block) or block[j] not in "=:":
            continue
        j += 1
        while j < len(block) and block[j] in " \t\r\n":
            j += 1
        if j < len(block) and block[j] == '"':
            k = block.find('"', j + 1)
            if k > j:
                return block[j + 1 : k]


def _own(block):
    """``block`` without the groups nested in it (an image's ``properties: {...}``)."""
    out = []
    depth = 0
    start = 0
    for i, ch in enumerate(block):
        if ch == "{":
            if depth == 0:
                out.append(block[start:i])
            depth += 1
        elif ch == "}" and depth:
            depth -= 1
            if depth == 0:
                start = i + 1
    if depth == 0:
        out.append(block[start:])
    return "".join(out)


def images(desc):
    """``[(filename, sha256 or None), ...]`` of the image entries in ``desc`` (the text of
    sw-description): every ``{...}`` group that names a ``filename`` at its own level
    (groups nested in it, such as ``properties``, are not looked into for it)."""
    out = []
    stack = []
    for i, ch in enumerate(desc):
        if ch == "{":
            stack.append(i)
        elif ch == "}" and stack:
            start = stack.pop()
            block = desc[start + 1 : i]
            if "filename" not in block:
                continue
            own = _own(block) if "{" in block else block
            name = _value(own, "filename")
            if name is not None:
                out.append((name, _value(own, "sha256")))
    return out


def find_image(path, buf=None):
    """``(name, offset, length, sha256)`` of the modem image in the SWU at ``path``.

    The image is the one member besides sw-description; with several, the one
    sw-description names (more than one named: refused). When sw-description gives its
    sha256, the image is hashed in place and a mismatch refused.
    """
    import os

    size = os.stat(path)[6]
    with open(path, "rb") as f:
        found = members(f, size)
        if not found or found[0][0] != DESC:
            raise _fail("sw-description is not the first member")
        d = found[0]
        if d[2] > DESC_MAX:
            raise _fail("sw-description over %d bytes" % DESC_MAX)
        f.seek(d[1])
        desc = f.read(d[2]).decode()
        named = images(desc)
        cands = [m for m in found if m[0] not in _SKIP]
        if len(cands) > 1:
            names = [n for n, _ in named]
            cands = [m for m in cands if m[0] in names]
        if len(cands) != 1:
            raise _fail("%d candidate images in the SWU; one expected" % len(cands))
        name, off, length = cands[0]
        if length <= 0:
            raise _fail("image %s is empty" % name)
        sha = None
        for n, h in named:
            if n == name and h:
                sha = h.lower()
        if sha is not None:
            got = hash_window(f, off, length, "sha256", buf)
            if got != sha:
                raise _fail("sha256 of %s is %s, sw-description says %s" % (name, got, sha))
    return name, off, length, sha


def hash_window(f, offset, length, alg="sha256", buf=None):
    """Hex digest of ``length`` bytes at ``offset`` of the open file ``f``."""
    h = getattr(hashlib, alg)()
    buf = buf or bytearray(_BUF)
    mv = memoryview(buf)
    f.seek(offset)
    left = length
    while left > 0:
        n = f.readinto(buf)
        if not n:
            raise _fail("file ended %d bytes early" % left)
        if n > left:
            n = left
        h.update(buf if n == len(buf) else mv[:n])
        left -= n
    return binascii.hexlify(h.digest()).decode()


def verify(path, size, hashes, buf=None):
    """The artifact at ``path`` (``size`` bytes) against the hash the server gave (of
    ``hashes``, ``[(alg, hex), ...]`` strongest first: the first ``hashlib`` has), then,
    in an SWU, its image against the sha256 sw-description gives. ``(offset, length, what
    was checked)`` of the modem's image; FotaError CHECK (or SWU) when one differs or
    none could be checked. ``buf``: the hashing buffer (a caller's idle one)."""
    checked = []
    for alg, want in hashes:
        if hasattr(hashlib, alg):
            with open(path, "rb") as fh:
                got = hash_window(fh, 0, size, alg, buf)
            if got != want:
                raise FotaError(
                    "CHECK", None, "%s of the artifact is %s, the server says %s" % (alg, got, want)
                )
            checked.append(alg)
            break
    off, length = 0, size
    if is_swu(path):
        name, off, length, sha = find_image(path, buf)
        if sha:
            checked.append("sha256 of %s in sw-description" % name)
    if not checked:
        given = ", ".join(a for a, _ in hashes) or "none"
        raise FotaError(
            "CHECK", None, "no hash this device can check (the server gave: %s)" % given
        )
    return off, length, checked
