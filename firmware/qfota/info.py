"""``qfota info``: what the modem said, as a table or one JSON object.

Unix port and CPython only; loaded only for that command. Its steps (rows as
``qfota.steps``'s) read only; the session runs them after the revision's.
"""

from qfota.at import OPTIONAL, SAFE
from qfota.compat import const

_CMD = const("command_ms")  # a const: no name kept on MicroPython


def cgsn(body):
    """``AT+CGSN``: the IMEI (15 digits; some firmware put ``+CGSN:`` before it), a reader
    of the info plan (host only, as this module): kept only when it is digits, it names
    the device to a server (``qfota agent``)."""
    for line in body:
        v = line.split(":", 1)[-1].strip().strip('"')
        if 14 <= len(v) <= 17 and v.isdigit():
            return "imei", v
    return "imei", None


# fmt: off
STEPS = {
    # name          stage    command              body prefix  wait  on ERROR  reader   cut
    "ifc?":       ("INFO",  b"AT+IFC?",           b"+IFC:",    _CMD, OPTIONAL, "flow",  SAFE),
    "usbifc_get": ("INFO",  b'AT+QCFG="usbifc"',  b"+QCFG:",   _CMD, OPTIONAL, "flow",  SAFE),
    "cbc_get":    ("INFO",  b"AT+CBC",            b"+CBC:",    _CMD, OPTIONAL, "cbc",   SAFE),
    "qiact_get":  ("INFO",  b"AT+QIACT?",         b"+QIACT:",  _CMD, OPTIONAL, "qiact", SAFE),
    "cgsn":       ("INFO",  b"AT+CGSN",           None,        _CMD, OPTIONAL, cgsn,    SAFE),
}
# fmt: on


def plan(s):
    """After the revision's steps: the ranges, the flow setting, the IMEI, the supply and
    the PDP contexts (cgsn before qiact_get: an active context makes its reader skip the
    step after it)."""
    flow = "usbifc_get" if s.opt["usb"] else "ifc?"
    return ["ranges", flow, "cgsn", "cbc_get", "qiact_get"]


def info_dict(s):
    """What ``qfota info`` read, as one dict (None where the modem did not say)."""
    ranges = None
    if s.supported:
        names = ("upgrade_mode", "download_URC_max", "update_URC_max")
        ranges = {}
        for name, group in zip(names, s.supported):
            ranges[name] = ",".join(
                "%d" % lo if lo == hi else "%d-%d" % (lo, hi) for lo, hi in group
            )
    return {
        "revision": s.revision_before,
        "flow_control": s.flow_setting,
        "qfotadl_ranges": ranges,
        "voltage_mv": s.voltage_mv,
        "pdp": None if s.pdp is None else [{"cid": c, "active": st == 1} for c, st in s.pdp],
    }


def show_info(s, out, as_json=False):
    d = info_dict(s)
    if as_json:
        import json

        out(json.dumps(d))
        return 0
    pdp = d["pdp"]
    rows = (
        ("revision", d["revision"]),
        ("flow control", d["flow_control"]),
        (
            "AT+QFOTADL=? ranges",
            d["qfotadl_ranges"]
            and ", ".join("%s %s" % kv for kv in sorted(d["qfotadl_ranges"].items())),
        ),
        ("supply voltage", d["voltage_mv"] and "%d mV" % d["voltage_mv"]),
        (
            "PDP contexts",
            pdp is not None
            and (
                ", ".join(
                    "%d %s" % (p["cid"], "active" if p["active"] else "inactive") for p in pdp
                )
                or "none active"
            ),
        ),
    )
    for k, v in rows:
        out("%-20s %s" % (k, v if v else "(not answered)"))
    return 0
