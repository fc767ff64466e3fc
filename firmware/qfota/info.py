"""``qfota info``: what the modem said, as a table or one JSON object.

Unix port and CPython only; loaded only for that command.
"""


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


def cgsn(body):
    """``AT+CGSN``: the IMEI (15 digits; some firmware put ``+CGSN:`` before it), a reader
    of the info plan (host only, as this module): kept only when it is digits, it names
    the device to a server (``qfota agent``)."""
    for line in body:
        v = line.split(":", 1)[-1].strip().strip('"')
        if 14 <= len(v) <= 17 and v.isdigit():
            return "imei", v
    return "imei", None
