"""The AT steps of an update, as data (the states after ``AT+QFOTADL`` are
``qfota.recovery``'s, loaded with the URC phase): a newcomer adds a step by adding a row here (and, for a step an option asks for, one row in
``qfota.checks.OPTIONS``).

A step is ``(stage, command, body prefix, wait, on ERROR, reader, cut)``:

- ``stage``: the note's word (or qfota's) reported while the step runs and when it fails.
- ``command``: the line to send; ``%`` templates take the session's values (``args``).
  ``None``: send nothing and listen quietly for the whole wait (recovery).
- ``body prefix``: the lines of the answer kept (``None``: every line that is no URC).
- ``wait``: the ``TIMEOUTS`` key that bounds the answer.
- ``on ERROR``: ``FAIL`` stops; ``NEXT`` logs it and goes on (an optional or undocumented
  command); ``OPTIONAL`` goes on after an ERROR or no answer at all; ``RETRY`` keeps
  sending it until the wait runs out (probes).
- ``reader``: the name of a function of ``qfota.answers`` (or a function) that takes the
  body lines and returns what it read as ``(what, value)``; the session alone decides
  what that means (``Session._took``). None: nothing to read.
- ``cut``: what the modem is doing when a run is cut in this stage (``SAFE``: nothing
  of a transfer reached it; ``TRANSFER``: it may be inside a FILE transfer; ``DOWNLOAD``:
  it downloads by itself; ``UPGRADE``: it may be upgrading; ``ENDED``). ``SAFE_STAGES``
  and ``TRANSFER_STAGES`` are derived from this column: no list to keep by hand.

The session takes the rows of its plan when it is made and then releases this module
(``compat.release``): on MicroPython the table is heap that the stream can use.
"""

from qfota.at import ENDED, FAIL, NEXT, OPTIONAL, RETRY, SAFE, TRANSFER, UPGRADE
from qfota.compat import const

_CMD = const("command_ms")  # a const: no name kept on MicroPython

# fmt: off
STEPS = {
    # name          stage        command                          body prefix   wait          on ERROR  reader          cut
    "probe":      ("PREFLIGHT", b"AT",                            None,         "probe_ms",   RETRY,    None,           SAFE),
    "echo_off":   ("PREFLIGHT", b"ATE0",                          None,         _CMD,         NEXT,     None,           SAFE),
    "qgmr":       ("PREFLIGHT", b"AT+QGMR",                       None,         _CMD,         NEXT,     "qgmr",         SAFE),
    "ati":        ("PREFLIGHT", b"ATI",                           None,         _CMD,         FAIL,     "ati",          SAFE),
    "ranges":     ("PREFLIGHT", b"AT+QFOTADL=?",                  b"+QFOTADL:", _CMD,         OPTIONAL, "ranges",       SAFE),
    "cbc":        ("POWER",     b"AT+CBC",                        b"+CBC:",     _CMD,         FAIL,     "cbc",          SAFE),
    "csq":        ("SIGNAL",    b"AT+CSQ",                        b"+CSQ:",     _CMD,         FAIL,     "csq",          SAFE),
    "ifc":        ("FLOWCTRL",  b"AT+IFC=%s",                     None,         _CMD,         FAIL,     None,           SAFE),
    "usbifc":     ("FLOWCTRL",  b'AT+QCFG="usbifc",%s',           None,         _CMD,         FAIL,     None,           SAFE),
    "usbifc?":    ("FLOWCTRL",  b'AT+QCFG="usbifc"',              b"+QCFG:",    _CMD,         FAIL,     "usbifc",       SAFE),
    "qfotadl":    ("QFOTADL",   b'AT+QFOTADL="%s"%s',             None,         _CMD,         FAIL,     None,           TRANSFER),
    # recovery: listen first (a cut FILE transfer would take "AT" as package data)
    "listen":     ("RECOVER",   None,                             None,         "fileend_ms", OPTIONAL, None,           UPGRADE),
    "await":      ("RECOVER",   b"AT",                            None,         "end_ms",     RETRY,    None,           UPGRADE),
    # after the upgrade's reboot
    "settle":     ("REBOOT",    b"AT",                            None,         "settle_ms",  RETRY,    None,           UPGRADE),
    "echo_after": ("VERIFY",    b"ATE0",                          None,         _CMD,         NEXT,     None,           ENDED),
    "qgmr_after": ("VERIFY",    b"AT+QGMR",                       None,         _CMD,         NEXT,     "qgmr",         ENDED),
    "ati_after":  ("VERIFY",    b"ATI",                           None,         _CMD,         FAIL,     "ati",          ENDED),
}

# fmt: on

VERIFY = ("settle", "echo_after", "qgmr_after", "ati_after")
RECOVER = ("listen", "await", "echo_after", "qgmr_after", "ati_after")


def plan(s):
    """The steps of session ``s``, in order; built once. An update's run up to
    AT+QFOTADL: the checks an option asks for (``gates``: step -> option) go after the
    revision and ranges; URL mode's PDP steps are ``qfota.urls``'s, info's ``qfota.info``'s."""
    if s.mode == "recover":  # listen first only when a run may have been cut
        p = list(RECOVER if s.listen_first else RECOVER[1:])  # type: list[str]
        return p
    p = ["probe", "echo_off", "qgmr", "ati"]  # the revision's
    if s.listen_first:
        p.insert(0, "listen")  # after a cut transfer: no AT into it
    if s.mode == "info":
        from qfota.info import plan as more

        return p + more(s)
    p.append("ranges")
    o = s.opt
    p += sorted(o["gates"])  # sorted: one order on every interpreter
    if o["scheme"] != "file":
        from qfota.urls import plan as more

        p += more(s)
    elif o["usb"]:
        p.append("usbifc")
        if o["flow"] == "hw":
            p.append("usbifc?")  # the note's example reads it back
    else:
        p.append("ifc")
    p.append("qfotadl")
    return p


def rows(s, names, table=None):
    """``{name: row}`` for ``names``: from ``table`` (default ``STEPS``), else from the
    rows of session ``s``'s mode (``qfota.info``'s, ``qfota.urls``'s: loaded only then)."""
    table = table or STEPS
    out = {}
    more = None
    for name in names:
        if name not in table and more is None:
            mod = "info" if s.mode == "info" else "urls"
            __import__("qfota." + mod)
            more = getattr(__import__("qfota"), mod).STEPS
        out[name] = table[name] if name in table else more[name]  # type: ignore
    return out


def args(s):
    """The values the ``%`` templates of the rows take, for session ``s`` (URL mode's
    PDP steps': ``qfota.urls.args``)."""
    o = s.opt
    flow = b"2,2" if o["flow"] == "hw" else b"0,0"
    tail = b",%d,%d,%d" % (o["upgrade_mode"], o["download_urcs"], o["update_urcs"])
    if o["scheme"] == "file":
        return {"ifc": flow, "usbifc": flow, "qfotadl": (b"FILE:%d" % (s.length or 0), tail)}
    from qfota.urls import args as more

    out = more(s)
    out["qfotadl"] = ((s.url or "").encode(), tail)
    return out


def stages(cut):
    """The stages whose rows (``STEPS``, ``URC_STATES``; URL mode's and info's where
    shipped) say ``cut``, sorted: for the runner's and the app's journals, no list kept
    by hand. Loaded for it and let go (``compat.release``) by the app."""
    rows = list(STEPS.values())
    for mod in ("urls", "info"):
        try:
            __import__("qfota." + mod)
        except ImportError:  # not shipped to this board: neither are its stages
            continue
        rows += getattr(__import__("qfota"), mod).STEPS.values()
    found = [row[0] for row in rows if row[6] == cut]
    from qfota.recovery import URC_STATES  # the URC phase's, loaded for this

    found += [state for state, row in URC_STATES.items() if row[1] == cut]
    return tuple(sorted(set(found)))
