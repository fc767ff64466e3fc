"""The AT steps of an update and the states after ``AT+QFOTADL``, as data: a newcomer
adds a step by adding a row here (and, for a step an option asks for, one row in
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

from qfota.at import DOWNLOAD, ENDED, FAIL, NEXT, OPTIONAL, RETRY, SAFE, TRANSFER, UPGRADE

_CMD = "command_ms"

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
    "qicsgp":     ("PDP",       b'AT+QICSGP=%d,1,"%s","","",1',   None,         _CMD,         FAIL,     None,           SAFE),
    "fota_cid":   ("PDP",       b'AT+QFOTA="fota/cid",%d',        None,         _CMD,         FAIL,     None,           SAFE),
    "qiact?":     ("PDP",       b"AT+QIACT?",                     b"+QIACT:",   _CMD,         NEXT,     "qiact",        SAFE),
    "qiact":      ("PDP",       b"AT+QIACT=%d",                   None,         "pdp_ms",     NEXT,     None,           SAFE),
    "qfotadl":    ("QFOTADL",   b'AT+QFOTADL="%s"%s',             None,         _CMD,         FAIL,     None,           TRANSFER),
    # recovery: listen first (a cut FILE transfer would take "AT" as package data)
    "listen":     ("RECOVER",   None,                             None,         "fileend_ms", OPTIONAL, None,           UPGRADE),
    "await":      ("RECOVER",   b"AT",                            None,         "end_ms",     RETRY,    None,           UPGRADE),
    # after the upgrade's reboot
    "settle":     ("REBOOT",    b"AT",                            None,         "settle_ms",  RETRY,    None,           UPGRADE),
    "echo_after": ("VERIFY",    b"ATE0",                          None,         _CMD,         NEXT,     None,           ENDED),
    "qgmr_after": ("VERIFY",    b"AT+QGMR",                       None,         _CMD,         NEXT,     "qgmr",         ENDED),
    "ati_after":  ("VERIFY",    b"ATI",                           None,         _CMD,         FAIL,     "ati",          ENDED),
    # qfota info: reads only
    "ifc?":       ("INFO",      b"AT+IFC?",                       b"+IFC:",     _CMD,         OPTIONAL, "flow",         SAFE),
    "usbifc_get": ("INFO",      b'AT+QCFG="usbifc"',              b"+QCFG:",    _CMD,         OPTIONAL, "flow",         SAFE),
    "cbc_get":    ("INFO",      b"AT+CBC",                        b"+CBC:",     _CMD,         OPTIONAL, "cbc",          SAFE),
    "qiact_get":  ("INFO",      b"AT+QIACT?",                     b"+QIACT:",   _CMD,         OPTIONAL, "qiact",        SAFE),
    "cgsn":       ("INFO",      b"AT+CGSN",                       None,         _CMD,         OPTIONAL, "info.cgsn",    SAFE),
}

# The states after AT+QFOTADL (the note's words): the wait of each (None: none; the
# driver bounds the stream by stall_ms), and the cut.
URC_STATES = {
    "FILESTART": (None,           TRANSFER),
    "STREAM":    (None,           TRANSFER),
    "FILEEND":   ("fileend_ms",   TRANSFER),
    "FTPSTART":  ("dlstart_ms",   DOWNLOAD),
    "HTTPSTART": ("dlstart_ms",   DOWNLOAD),
    "FTPEND":    ("download_ms",  DOWNLOAD),
    "HTTPEND":   ("download_ms",  DOWNLOAD),
    "START":     ("start_ms",     UPGRADE),
    "UPDATING":  ("end_ms",       UPGRADE),
    "REBOOT":    ("reboot_ms",    UPGRADE),
    "DONE":      (None,           ENDED),
}
# fmt: on

_REVISION = ("probe", "echo_off", "qgmr", "ati")
VERIFY = ("settle", "echo_after", "qgmr_after", "ati_after")
RECOVER = ("listen", "await", "echo_after", "qgmr_after", "ati_after")
# cgsn before qiact_get: an active context makes its reader skip the step after it.
INFO = ("probe", "echo_off", "qgmr", "ati", "ranges", "cgsn", "cbc_get", "qiact_get")


def plan(s):
    """The steps up to AT+QFOTADL for session ``s``, in order; built once. The checks
    an option asks for (``s.gates``: step -> option) go after the revision and ranges."""
    p = list(_REVISION)  # type: list[str]
    if s.listen_first:
        p.insert(0, "listen")
    p.append("ranges")
    p += sorted(s.gates)  # sorted: one order on every interpreter
    if s.scheme == "file":
        if s.opt["usb"]:
            p.append("usbifc")
            if s.flow_hw:
                p.append("usbifc?")  # the note's example reads it back
        else:
            p.append("ifc")
    else:
        # The note's examples make sure the fota context is up before AT+QFOTADL.
        if s.opt.get("apn") is not None:
            p.append("qicsgp")
        p += ["fota_cid", "qiact?", "qiact"]
    p.append("qfotadl")
    return p


def info_plan(s):
    p = list(INFO)  # type: list[str]
    p.insert(5, "usbifc_get" if s.opt["usb"] else "ifc?")
    return ["listen"] + p if s.listen_first else p  # after a cut transfer: no AT into it


def recover_plan(s):
    """Listen first only when a run may have been cut (``listen_first``)."""
    p = list(RECOVER if s.listen_first else RECOVER[1:])  # type: list[str]
    return p


def args(s):
    """The values the ``%`` templates of ``STEPS`` take, for session ``s``."""
    flow = b"2,2" if s.flow_hw else b"0,0"
    if s.scheme == "file":
        target = b"FILE:%d" % (s.length or 0)
    else:
        target = (s.url or "").encode()
    tail = b",%d,%d,%d" % (s.upgrade_mode, s.download_urcs, s.update_urcs)
    cid = s.opt["cid"]
    return {
        "ifc": flow,
        "usbifc": flow,
        "qicsgp": (cid, (s.opt.get("apn") or "").encode()),
        "fota_cid": cid,
        "qiact": cid,
        "qfotadl": (target, tail),
    }
