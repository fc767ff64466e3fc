"""Readers of the answers to the AT steps (``qfota.steps``: a row's reader names one).

Each takes the body lines kept by the AT channel and returns what it read as
``(what, value)``, ``value`` None when the answer could not be read. What a value means
for a session (a gate, a skip, a failure) is ``judge``'s, which reads the session and
changes nothing; ``Session._took`` records it, the one place its state moves.

Loaded on first use and released when ``AT+QFOTADL`` goes out (``compat.release``):
none of this is needed while the package streams, and on MicroPython its code is heap.
VERIFY loads it again after the upgrade's reboot.
"""

from qfota.at import FAIL, SKIP, same_revision
from qfota.errors import REFUSED, FotaError, refuse


def judge(s, what, value):
    """What ``value``, read in session ``s``'s step, means: raises the ``FotaError`` that
    ends the session (an answer it cannot do without, a refusal: revision, ranges, a gate
    of ``qfota.checks.OPTIONS``), else ``(then, log)``: ``then`` SKIP (the step after is
    not needed), ``"current"`` (the modem already runs the target) or None; ``log`` a line
    to report, or None."""
    row = s._rows[s.state]
    stage = row[0]
    update = s.mode == "update"
    said = s._at.body[0] if s._at.body else ""
    if value is None:
        if row[4] == FAIL and (update or stage == "VERIFY"):
            why = "cannot read the %s from %s: %r" % (what, row[1].decode(), said)
            raise FotaError(stage, None, why)
        return None, ("cannot read AT+QFOTADL=? answer: %r" % said) if what == "supported" else None
    if what == "revision":
        source, target = s.opt.get("expect_source"), s.opt.get("target")
        if update and stage == "VERIFY":  # after the upgrade's reboot: did it take?
            if target is not None and not same_revision(value, target):
                why = "the modem runs %s after the update, not %s" % (value, target)
                raise FotaError(stage, None, why)
            if target is None and same_revision(value, s.revision_before):
                why = "the modem reported END 0 but still runs %s after its reboot" % value
                raise FotaError(stage, None, why)
        elif not update:
            pass
        elif target is not None and same_revision(value, target):
            return "current", None
        elif source is not None and not same_revision(value, source):
            why = "the modem runs %s; this image updates %s to %s"
            raise FotaError(
                "REVISION", None, why % (value, source, target or "another revision"), REFUSED
            )
        return (SKIP if row[5] == "qgmr" else None), None  # no ATI after AT+QGMR
    if what == "usbifc" and value != "2,2":
        raise FotaError(stage, None, 'AT+QCFG="usbifc" reads back %s, not 2,2' % value)
    if what == "pdp":
        for cid, state in value:  # [(cid, state)] (qiact)
            if cid == s.opt["cid"] and state == 1:
                return SKIP, None  # already active: no AT+QIACT=<cid>
    elif what == "supported" and update:
        o = s.opt
        values = (o["upgrade_mode"], o["download_urcs"], o["update_urcs"])
        words = ("upgrade_mode", "download_URC_max", "update_URC_max")
        for word, v, ranges in zip(words, values, value):
            if not any(lo <= v <= hi for lo, hi in ranges):
                raise refuse("PARAMS", "%s %d is not supported by this modem %s" % (word, v, said))
    gate = s.opt["gates"].get(s.state) if update else None
    if gate is not None and value < s.opt[gate[0]]:
        raise FotaError(stage, None, gate[1] % (value, s.opt[gate[0]]), REFUSED)
    return None, None


def qgmr(body):
    """``AT+QGMR``: the full revision (``EC200TCNDAR02A07M16_01.001.01.001``)."""
    return "revision", (body[0].strip() if body else "") or None


def ati(body):
    """``ATI``: ``Revision: EC200TCNDAR02A07M16`` (the note's command)."""
    rev = ""
    for line in body:
        if line.lower().startswith("revision:"):
            rev = line[9:].strip()
    return "revision", rev or None


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


def ranges(body):
    """``+QFOTADL: <url>,(0,1),(0,5-100),(0,5-100)``: what this modem supports."""
    line = body[0] if body else ""
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
    return "supported", groups if len(groups) >= 3 else None


def cbc(body):
    """``+CBC: <bcs>,<bcl>,<voltage mV>``."""
    try:
        return "voltage_mv", int(body[0].split(",")[2].strip())
    except (IndexError, ValueError):
        return "voltage_mv", None


def csq(body):
    """``+CSQ: <rssi>,<ber>``: rssi 0-31 (99: not known)."""
    try:
        rssi = int(body[0][5:].split(",")[0].strip())
    except (IndexError, ValueError):
        return "rssi", None
    return "rssi", rssi if rssi != 99 else None


def flow(body):
    """``+IFC: 2,2`` or ``+QCFG: "usbifc",2,2``: the setting as ``2,2``."""
    if not body or ":" not in body[0]:
        return "flow_setting", None
    return "flow_setting", body[0].split(":", 1)[1].replace(" ", "").lower().replace(
        '"usbifc",', ""
    )


def usbifc(body):
    """The note's example reads ``AT+QCFG="usbifc"`` back (it must say 2,2)."""
    return "usbifc", flow(body)[1] or ""


def qiact(body):
    """``+QIACT: <cid>,<state>,<type>[,<address>]`` lines: ``[(cid, state)]``."""
    pdp = []
    for line in body:
        fields = line[7:].replace(" ", "").split(",")
        if len(fields) > 1 and fields[0].isdigit() and fields[1].isdigit():
            pdp.append((int(fields[0]), int(fields[1])))
    return "pdp", pdp
