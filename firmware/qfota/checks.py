"""The options of a session, as one table, and their checks: everything a user gives is
refused here, before a byte goes to the modem, as ``FotaError`` with stage PARAMS.

``OPTIONS`` is the one list of the session's options: the session, the checks, the
runner (``qfota.runner``), the CLI (``qfota update``'s arguments and refusals) and the
on-device app (``qfota.cfg`` keys) all derive from it. A row is
``(name, flag, default, rule, mode, gate)``:

- ``name``: the Session keyword, the app's ``qfota.cfg`` key, the runner's option.
- ``flag``: the CLI option when it is not ``--`` and the name with ``-`` for ``_``
  (None: it is). ``default``: None leaves it out (no step, no check).
- ``rule``: what a value must be (``why()`` says what is wrong, in words a line can hold).
- ``mode``: "file" or "url" when it applies to one only (the CLI refuses it for the other).
- ``gate``: ``(step, refusal)`` for an option that asks for a step of ``qfota.steps``:
  the step goes into the plan when the option is given, and an update whose read value
  is below the option is refused, in the step's stage, with ``refusal % (value, option)``.

Loaded by ``Session()`` and released once it has checked (``compat.release``): on
MicroPython its code is heap. The driver's few checks (chunk, pacing, the image file)
stay in ``qfota.driver``.
"""

from qfota.at import bad_char  # noqa: F401 - the checks' API
from qfota.defaults import APN_MAX, CID_MAX, DEFAULTS, TIMEOUT_MAX_MS, TIMEOUTS
from qfota.errors import refuse

REVISION_MAX = 80  # characters of a revision name (--expect-source, --target)

# fmt: off
OPTIONS = (
    # name             flag               default                    rule                                     mode    gate
    ("upgrade_mode",   "--mode",          DEFAULTS["upgrade_mode"],  ("int", 0, 1, "upgrade_mode "),          None,   None),
    ("download_urcs",  None,              DEFAULTS["download_urcs"], ("urcs", "download_URC_max"),            None,   None),
    ("update_urcs",    None,              DEFAULTS["update_urcs"],   ("urcs", "update_URC_max"),              None,   None),
    ("flow",           None,              DEFAULTS["flow"],          ("one of", "hw", "none"),                "file", None),
    ("usb",            None,              False,                     ("bool",),                               "file", None),
    ("cid",            None,              DEFAULTS["cid"],           ("int", 1, CID_MAX, ""),                 "url",  None),
    ("apn",            None,              None,                      ("text", APN_MAX, None),                 "url",  None),
    ("min_voltage_mv", "--min-voltage",   None,                      ("int", 1, 5000, "", " mV"),             None,
     ("cbc", "supply %d mV below %d mV: power loss during the upgrade is unrecoverable (note, chapter 5)")),
    ("min_rssi",       None,              None,                      ("int", 0, 31, ""),                      None,
     ("csq", "signal rssi %d below %d (AT+CSQ): a download on a weak signal may fail")),
    ("expect_source",  None,              None,                      ("text", REVISION_MAX, "give a revision"), None, None),
    ("target",         None,              None,                      ("text", REVISION_MAX, "give a revision"), None, None),
    ("timeouts",       "--timeout",       None,                      ("timeouts",),                           None,   None),
)
# fmt: on


def check_text(name, value, limit):
    """Refuses a string that is to stand inside an AT command unless it is printable
    ASCII without quotes, at most ``limit`` bytes (``qfota.httpreq``'s APN)."""
    bad = why(("text", limit, None), value)
    if bad:
        raise refuse("PARAMS", "%s %s" % (name, bad))


def _int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _arg(rule, i):
    return rule[i] if len(rule) > i else ""


def why(rule, value):
    """What is wrong with ``value`` by ``rule`` (an ``OPTIONS`` row's), or None."""
    kind = rule[0]
    if kind == "int":
        lo, hi = rule[1], rule[2]
        if not _int(value) or not lo <= value <= hi:
            span = "%d or %d" % (lo, hi) if hi == lo + 1 else "%d-%d" % (lo, hi)
            return "%smust be %s%s" % (_arg(rule, 3), span, _arg(rule, 4))
    elif kind == "urcs":
        if not _int(value) or not (value == 0 or 5 <= value <= 100):
            return "%s must be 0 or 5-100" % _arg(rule, 1)
    elif kind == "one of":
        if value not in rule[1:]:
            return "must be %s" % " or ".join(rule[1:])
    elif kind == "bool":
        if value not in (True, False):
            return "must be true or false"
    elif kind == "text":
        if not isinstance(value, str):
            return "must be text"
        if _arg(rule, 2) and not value.strip():
            return _arg(rule, 2)
        bad = bad_char(value)
        if bad:
            return "holds " + bad
        limit = rule[1]
        if isinstance(limit, int) and len(value) > limit:
            return "longer than %d characters" % limit
    elif kind == "timeouts":
        for k, v in value.items():
            if k not in TIMEOUTS:
                return "unknown timeout %r (names: %s)" % (k, ", ".join(TIMEOUTS))
            if not _int(v) or not 0 < v <= TIMEOUT_MAX_MS:
                return "timeout %s must be 1-%d ms, not %r" % (k[:-3], TIMEOUT_MAX_MS, v)
    return None


def check_options(options):
    """``{name: value}`` -> every option of ``OPTIONS`` with its value or default, and
    ``gates`` (step -> (option, refusal)); refuses an unknown name or a bad value."""
    out = {}
    for k in options:
        if k not in [row[0] for row in OPTIONS]:
            raise refuse("PARAMS", "unknown option %r" % k)
    gates = {}
    for name, _flag, default, rule, _mode, gate in OPTIONS:
        v = options.get(name)
        if v is None:
            v = default
        else:
            w = why(rule, v)
            if w:
                kind = rule[0]
                if kind != "timeouts" and kind != "urcs" and not (kind == "int" and _arg(rule, 3)):
                    w = name + " " + w  # "cid must be 1-15", "apn holds a line feed (LF)"
                if kind != "text" and kind != "timeouts":
                    w += ", not %r" % (v,)  # a text may hold anything: not repeated
                raise refuse("PARAMS", w)
        if name == "timeouts":
            t = dict(TIMEOUTS)
            t.update(v or {})  # type: ignore  # v: the timeouts row, a dict (why() checked)
            v = t
        elif gate is not None and v is not None:
            gates[gate[0]] = (name, gate[1])
        if v is not None:
            out[name] = v  # only what is set: the session keeps this dict
    out["gates"] = gates
    return out


def session_options(length, url, protocol_download, job, options):
    """Checks what a Session is given for ``job`` ("update", "recover" or "info"):
    returns its options (``check_options``) with ``scheme``."""
    scheme = "file"
    if job == "update" and (length is None) == (url is None):
        raise refuse("PARAMS", "give either an image length or a URL")
    if length is not None and (not _int(length) or length <= 0):
        raise refuse("PARAMS", "image length must be > 0, not %r" % (length,))
    if url is not None:
        from qfota.urls import check_url  # URL mode only: not loaded for FILE mode

        scheme = check_url(url)[0]
        if scheme == "https":
            scheme = "http"
    if protocol_download:
        raise refuse(
            "PARAMS",
            'protocol-download file mode ("FILE:<length>",2) is not supported: '
            "its framing is not published by the vendor",
        )
    out = check_options(options)
    out["scheme"] = scheme
    return out
