"""``qfota swu``: wrap a modem package for a server that speaks SWUpdate (gooseBit).

::

    $ qfota swu EC200T_A07_A08.bin --model EC200T \\
          --source-rev EC200TCNDAR02A07M16_01.001.01.001 \\
          --target-rev EC200TCNDAR02A08M16_01.001.01.001 -o A07_A08.swu
    wrote A07_A08.swu: EC200T_A07_A08.bin (1048576 bytes, sha256 5f0c...), version
    0.0.0+EC200TCNDAR02A08M16.01.001.01.001, for EC200T on EC200TCNDAR02A07M16_01.001.01.001

gooseBit accepts only SWUpdate (``.swu``) or RAUC uploads. An SWU is a cpio "newc" archive
whose first member is ``sw-description`` (libconfig syntax); the package follows as the
second member, under its own file name, with its sha256 in ``sw-description`` as SWUpdate
has it. gooseBit reads two things from it: ``software.version`` (must parse as a version)
and, per board, ``hardware-compatibility``: here ``<model> = { hardware-compatibility =
[ "<source revision>" ]; ... }``, so gooseBit offers the package only to a device whose
configData reports ``hw_boardname`` = the model and ``hw_revision`` = the source revision
(the modem's ``AT+QGMR`` answer, exactly): a delta package fits only the revision it was
made from. The version defaults to ``0.0.0+<target revision>`` ('_' becomes '.': semver
build metadata allows only letters, digits, '-' and '.'); note that gooseBit compares
versions as semver, which ignores build metadata, so it never tells two such versions
apart when it compares them (it does not need to: compatibility decides).

The device never gives the wrapper to the modem: it reads the image member out of the SWU
(``qfota.swu`` in the firmware) and checks it against the sha256 here.
"""

import hashlib
import os
import re
import sys

DESCRIPTION = "sw-description"
_MAX_SIZE = 0xFFFFFFFF  # the newc header's 8 hex digits
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")  # a member name, safe everywhere
_MODEL = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,31}$")  # a libconfig setting name
_REV = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")  # what AT+QGMR answers
_SEMVER_BUILD = re.compile(r"^[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*$")
_VERSION = re.compile(
    r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*)){0,2}"
    r"(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$"
)
_BLOCK = 1 << 16


class SwuError(Exception):
    """Bad input or an unwritable output: one line for the user (exit 2)."""


def default_version(target_rev):
    build = target_rev.replace("_", ".")
    if not _SEMVER_BUILD.match(build):
        raise SwuError("cannot make a version of --target-rev %r: give --version" % target_rev)
    return "0.0.0+" + build


def sw_description(name, sha256, model, source_rev, target_rev, version):
    """The libconfig text gooseBit and SWUpdate read (every value checked by ``check``)."""
    return (
        "software =\n"
        "{\n"
        '\tversion = "%(version)s";\n'
        '\tdescription = "Quectel %(model)s firmware %(src)s -> %(dst)s (qfota)";\n'
        "\t%(model)s = {\n"
        '\t\thardware-compatibility = [ "%(src)s" ];\n'
        "\t\timages: (\n"
        "\t\t\t{\n"
        '\t\t\t\tfilename = "%(name)s";\n'
        '\t\t\t\ttype = "qfota";\n'
        '\t\t\t\tsha256 = "%(sha)s";\n'
        "\t\t\t\tproperties: {\n"
        '\t\t\t\t\tsource-revision = "%(src)s";\n'
        '\t\t\t\t\ttarget-revision = "%(dst)s";\n'
        "\t\t\t\t};\n"
        "\t\t\t}\n"
        "\t\t);\n"
        "\t};\n"
        "};\n"
    ) % {
        "version": version,
        "model": model,
        "src": source_rev,
        "dst": target_rev,
        "name": name,
        "sha": sha256,
    }


def cpio_header(name, size, ino, mode=0o100644):
    """A newc ("070701") header with the name and its padding (to 4 bytes)."""
    raw = name.encode() + b"\0"
    fields = (ino, mode, 0, 0, 1, 0, size, 0, 0, 0, 0, len(raw), 0)
    head = b"070701" + b"".join(b"%08X" % f for f in fields) + raw
    return head + b"\0" * (-len(head) % 4)


def check(image, model, source_rev, target_rev, out, version):
    """The one-line reason to refuse, or None."""
    if not os.path.isfile(image):
        return "%s: no such file" % image
    if not os.access(image, os.R_OK):
        return "%s: not readable" % image
    name = os.path.basename(image)
    if not _NAME.match(name) or name in (DESCRIPTION, "TRAILER!!!"):
        return (
            "image file name %r: use letters, digits, '.', '_', '-' (at most 100): it names "
            "the image in the SWU" % name
        )
    size = os.path.getsize(image)
    if size == 0:
        return "%s: empty" % image
    if size > _MAX_SIZE:
        return "%s: %d bytes, over the %d an SWU member holds" % (image, size, _MAX_SIZE)
    with open(image, "rb") as f:
        if f.read(6) in (b"070701", b"070702"):
            return "%s is a cpio archive (an SWU already?): give the modem package itself" % image
    if not _MODEL.match(model):
        return "--model %r: letters, digits, '_', '-', starting with a letter" % model
    for opt, rev in (("--source-rev", source_rev), ("--target-rev", target_rev)):
        if not _REV.match(rev):
            return "%s %r: letters, digits, '.', '_', '-' only (as AT+QGMR gives it)" % (opt, rev)
        if not rev.upper().startswith(model.upper()):
            return "%s %s: does not start with the model %s" % (opt, rev, model)
    if source_rev == target_rev:
        return "--source-rev and --target-rev are the same: %s" % source_rev
    if version is not None and not _VERSION.match(version):
        return "--version %r: not a semver version (e.g. 0.0.0+A08)" % version
    parent = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(parent):
        return "-o %s: no such folder %s" % (out, parent)
    if os.path.exists(out) and os.path.samefile(out, image):
        return "-o %s: that is the image" % out
    if os.path.isdir(out):
        return "-o %s: is a folder" % out
    return None


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_BLOCK), b""):
            h.update(block)
    return h.hexdigest()


def build(image, model, source_rev, target_rev, out, version=None):
    """Write the SWU; returns (version, sha256, size). SwuError on bad input."""
    why = check(image, model, source_rev, target_rev, out, version)
    if why:
        raise SwuError(why)
    version = version or default_version(target_rev)
    name = os.path.basename(image)
    size = os.path.getsize(image)
    digest = sha256_of(image)
    desc = sw_description(name, digest, model, source_rev, target_rev, version).encode()
    tmp = out + ".part"
    try:
        with open(tmp, "wb") as w, open(image, "rb") as r:
            w.write(cpio_header(DESCRIPTION, len(desc), 1))
            w.write(desc + b"\0" * (-len(desc) % 4))
            w.write(cpio_header(name, size, 2))
            left = size
            h = hashlib.sha256()
            while left:
                block = r.read(min(_BLOCK, left))
                if not block:
                    raise SwuError("%s: shorter than it was a moment ago" % image)
                h.update(block)
                w.write(block)
                left -= len(block)
            if h.hexdigest() != digest:
                raise SwuError("%s: changed while it was read" % image)
            w.write(b"\0" * (-size % 4))
            w.write(cpio_header("TRAILER!!!", 0, 0, mode=0))
        os.replace(tmp, out)
    except OSError as e:
        raise SwuError("%s: %s" % (e.filename or out, e.strerror or e)) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return version, digest, size


def add_parser(subparsers):
    import argparse

    p = subparsers.add_parser(
        "swu",
        help="wrap a modem package as an SWUpdate archive (.swu) for gooseBit",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("image", metavar="IMAGE", help="the modem package (.bin, .zip, ...)")
    p.add_argument("--model", required=True, help="the modem model, e.g. EC200T")
    p.add_argument(
        "--source-rev",
        required=True,
        help="the revision the package updates from, as AT+QGMR gives it (its compatibility)",
    )
    p.add_argument("--target-rev", required=True, help="the revision after the update")
    p.add_argument("-o", "--output", required=True, metavar="OUT.swu", help="the SWU to write")
    p.add_argument("--version", help="the SWU's version (default 0.0.0+<target revision>)")
    p.set_defaults(func=run)


def run(args):
    try:
        version, digest, size = build(
            args.image, args.model, args.source_rev, args.target_rev, args.output, args.version
        )
    except SwuError as e:
        print("qfota swu: %s" % e, file=sys.stderr)
        return 2
    print(
        "wrote %s: %s (%d bytes, sha256 %s), version %s, for %s on %s"
        % (
            args.output,
            os.path.basename(args.image),
            size,
            digest,
            version,
            args.model,
            args.source_rev,
        )
    )
    return 0
