"""Readers of the answers to the AT steps (``qfota.steps``: a row's "on OK" names them
``"answers.<function>"``): the revision, the note's ranges, the voltage, the USB setting. Each takes the session, the body lines kept
by the AT channel and the time; it may refuse the update or return ``SKIP``.

Loaded on first use and released when ``AT+QFOTADL`` goes out (``Session._call``,
``compat.release``): none of this is needed while the package streams, and on MicroPython
its code is heap. VERIFY loads it again after the upgrade's reboot.
"""

from qfota.at import SKIP
from qfota.errors import REFUSED, FotaError, refuse
from qfota.session import EV_LOG, EV_REVISION, same_revision


def got_qgmr(s, body, now):
    """``AT+QGMR``: the full revision (``EC200TCNDAR02A07M16_01.001.01.001``); ATI not needed."""
    rev = body[0].strip() if body else ""
    if not rev:
        return None  # no revision in the answer: ATI is next
    _set_revision(s, rev)
    return SKIP


def got_ati(s, body, now):
    """``ATI``: ``Revision: EC200TCNDAR02A07M16`` (the note's command)."""
    rev = ""
    for line in body:
        if line.lower().startswith("revision:"):
            rev = line[9:].strip()
    if not rev:
        s._fail(None, "no revision in the answer to ATI")
    _set_revision(s, rev)


def _set_revision(s, rev):
    # After the upgrade's reboot: the revision it runs now. Before: the gate of
    # expect_source/target (already at the target: nothing to do; neither: refused).
    if s.stage == "VERIFY":
        s.revision_after = rev
        s._event(EV_REVISION, "after", rev)
        return
    s.revision_before = rev
    s._event(EV_REVISION, "before", rev)
    if s.mode != "update":
        return
    if s.target is not None and same_revision(rev, s.target):
        s._finish("current")
    elif s.expect_source is not None and not same_revision(rev, s.expect_source):
        raise FotaError(
            "REVISION",
            None,
            "the modem runs %s; this image updates %s to %s"
            % (rev, s.expect_source, s.target or "another revision"),
            REFUSED,
        )


def parse_ranges(text):
    """``(0,5-100)`` -> ``[(0, 0), (5, 100)]``."""
    out = []
    for part in text.strip().strip("()").split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            lo, hi = part.split("-", 1)
            out.append((int(lo), int(hi)))
        else:
            out.append((int(part), int(part)))
    return out


def _in_ranges(v, ranges):
    for lo, hi in ranges:
        if lo <= v <= hi:
            return True
    return False


def got_ranges(s, body, now):
    """``+QFOTADL: <url>,(0,1),(0,5-100),(0,5-100)``: what this modem supports; an update
    asking for more is refused."""
    if not body:
        return
    line = body[0]
    groups = []
    i = line.find("(")
    while i >= 0:
        j = line.find(")", i)
        if j < 0:
            break
        try:
            groups.append(parse_ranges(line[i : j + 1]))
        except ValueError:
            groups = []
            break
        i = line.find("(", j)
    if len(groups) < 3:
        s._event(EV_LOG, "cannot read AT+QFOTADL=? answer: %r" % line)
        return
    s.supported = groups
    if s.mode != "update":
        return
    names = ("upgrade_mode", "download_URC_max", "update_URC_max")
    values = (s.upgrade_mode, s.download_urcs, s.update_urcs)
    for name, v, ranges in zip(names, values, groups):
        if not _in_ranges(v, ranges):
            raise refuse("PARAMS", "%s %d is not supported by this modem %s" % (name, v, line))


def got_cbc(s, body, now):
    """``+CBC: <bcs>,<bcl>,<voltage mV>``: an update below ``min_voltage_mv`` is refused."""
    try:
        mv = int(body[0].split(",")[2].strip())
    except (IndexError, ValueError):
        if s.mode != "update":
            return
        s._fail(None, "cannot read the voltage from AT+CBC: %r" % (body[0] if body else ""))
    s.voltage_mv = mv
    if s.min_voltage_mv is not None and mv < s.min_voltage_mv and s.mode == "update":
        raise FotaError(
            "POWER",
            None,
            "supply %d mV below %d mV: power loss during the upgrade is unrecoverable "
            "(note, chapter 5)" % (mv, s.min_voltage_mv),
            REFUSED,
        )


def got_usbifc(s, body, now):
    """The note's example reads ``AT+QCFG="usbifc"`` back: it must say 2,2."""
    if not body or body[0].replace(" ", "").lower() != '+qcfg:"usbifc",2,2':
        s._fail(None, 'AT+QCFG="usbifc" reads back %r, not 2,2' % (body[0] if body else ""))
