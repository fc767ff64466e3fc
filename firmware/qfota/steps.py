"""The AT steps of an update, as data: a newcomer adds a step by adding an entry here and
naming it in ``plan()``.

A step is ``(stage, command, body prefix, wait, on ERROR, on OK)``:

- ``stage``: the note's word (or qfota's) reported while the step runs and when it fails.
- ``command``: the line to send; ``%`` templates take the session's values (``ARGS``).
  ``None``: send nothing and listen quietly for the whole wait (recovery).
- ``body prefix``: the lines of the answer kept (``None``: every line that is no URC).
- ``wait``: the ``TIMEOUTS`` key that bounds the answer.
- ``on ERROR``: ``FAIL`` stops; ``NEXT`` logs it and goes on (an optional or undocumented
  command); ``OPTIONAL`` goes on after an ERROR or no answer at all; ``RETRY`` keeps
  sending it until the wait runs out (probes); a name: the Session method that decides.
- ``on OK``: what reads the answer, or ``None``: ``"module.function"``, called with the
  session, the body lines and the time, from a module loaded on first use and released
  when ``AT+QFOTADL`` goes out (``qfota.answers``, ``urls``, ``info``); a Session method
  (``"_got_qfotadl"``); or a function taking the same three arguments. It returns
  ``SKIP`` when the step after it is not needed (AT+QGMR gave the revision: no ATI).

The session takes the rows of its plan when it is made and then releases this module
(``compat.release``): on MicroPython the table is heap that the stream can use.
"""

from qfota.at import FAIL, NEXT, OPTIONAL, RETRY, SKIP

__all__ = (
    "FAIL",
    "NEXT",
    "OPTIONAL",
    "RETRY",
    "SKIP",
    "STEPS",
    "VERIFY",
    "plan",
    "info_plan",
    "args",
)

_CMD = "command_ms"

# fmt: off
STEPS = {
    # name          stage        command                          body prefix   wait          on ERROR        on OK
    "probe":      ("PREFLIGHT", b"AT",                            None,         "probe_ms",   RETRY,          None),
    "echo_off":   ("PREFLIGHT", b"ATE0",                          None,         _CMD,         NEXT,           None),
    "qgmr":       ("PREFLIGHT", b"AT+QGMR",                       None,         _CMD,         NEXT,           "answers.got_qgmr"),
    "ati":        ("PREFLIGHT", b"ATI",                           None,         _CMD,         FAIL,           "answers.got_ati"),
    "ranges":     ("PREFLIGHT", b"AT+QFOTADL=?",                  b"+QFOTADL:", _CMD,         OPTIONAL,       "answers.got_ranges"),
    "cbc":        ("POWER",     b"AT+CBC",                        b"+CBC:",     _CMD,         FAIL,           "answers.got_cbc"),
    "ifc":        ("FLOWCTRL",  b"AT+IFC=%s",                     None,         _CMD,         FAIL,           None),
    "usbifc":     ("FLOWCTRL",  b'AT+QCFG="usbifc",%s',           None,         _CMD,         FAIL,           None),
    "usbifc?":    ("FLOWCTRL",  b'AT+QCFG="usbifc"',              b"+QCFG:",    _CMD,         FAIL,           "answers.got_usbifc"),
    "qicsgp":     ("PDP",       b'AT+QICSGP=%d,1,"%s","","",1',   None,         _CMD,         FAIL,           None),
    "fota_cid":   ("PDP",       b'AT+QFOTA="fota/cid",%d',        None,         _CMD,         FAIL,           None),
    "qiact?":     ("PDP",       b"AT+QIACT?",                     b"+QIACT:",   _CMD,         NEXT,           "urls.got_qiact"),
    "qiact":      ("PDP",       b"AT+QIACT=%d",                   None,         "pdp_ms",     "urls.qiact_error", None),
    "qfotadl":    ("QFOTADL",   b'AT+QFOTADL="%s"%s',             None,         _CMD,         FAIL,           "_got_qfotadl"),
    # recovery: listen first (a cut FILE transfer would take "AT" as package data)
    "listen":     ("RECOVER",   None,                             None,         "fileend_ms", OPTIONAL,       None),
    "await":      ("RECOVER",   b"AT",                            None,         "end_ms",     RETRY,          None),
    # after the upgrade's reboot
    "settle":     ("REBOOT",    b"AT",                            None,         "settle_ms",  RETRY,          None),
    "echo_after": ("VERIFY",    b"ATE0",                          None,         _CMD,         NEXT,           None),
    "qgmr_after": ("VERIFY",    b"AT+QGMR",                       None,         _CMD,         NEXT,           "answers.got_qgmr"),
    "ati_after":  ("VERIFY",    b"ATI",                           None,         _CMD,         FAIL,           "answers.got_ati"),
    # qfota info: reads only
    "ifc?":       ("INFO",      b"AT+IFC?",                       b"+IFC:",     _CMD,         OPTIONAL,       "info.got_ifc"),
    "usbifc_get": ("INFO",      b'AT+QCFG="usbifc"',              b"+QCFG:",    _CMD,         OPTIONAL,       "info.got_ifc"),
    "cbc_get":    ("INFO",      b"AT+CBC",                        b"+CBC:",     _CMD,         OPTIONAL,       "answers.got_cbc"),
    "qiact_get":  ("INFO",      b"AT+QIACT?",                     b"+QIACT:",   _CMD,         OPTIONAL,       "urls.got_qiact"),
    "cgsn":       ("INFO",      b"AT+CGSN",                       None,         _CMD,         OPTIONAL,       "info.got_cgsn"),
}
# fmt: on

_REVISION = ("probe", "echo_off", "qgmr", "ati")
VERIFY = ("settle", "echo_after", "qgmr_after", "ati_after")
RECOVER = ("listen", "await", "echo_after", "qgmr_after", "ati_after")
# cgsn before qiact_get: an active context makes its reader skip the step after it.
INFO = ("probe", "echo_off", "qgmr", "ati", "ranges", "cgsn", "cbc_get", "qiact_get")


def plan(s):
    """The steps up to AT+QFOTADL for session ``s``, in order; built once."""
    p = list(_REVISION)  # type: list[str]
    if s.listen_first:
        p.insert(0, "listen")
    p.append("ranges")
    if s.min_voltage_mv is not None:
        p.append("cbc")
    if s.scheme == "file":
        if s.usb:
            p.append("usbifc")
            if s.flow_hw:
                p.append("usbifc?")  # the note's example reads it back
        else:
            p.append("ifc")
    else:
        # The note's examples make sure the fota context is up before AT+QFOTADL.
        if s.apn is not None:
            p.append("qicsgp")
        p += ["fota_cid", "qiact?", "qiact"]
    p.append("qfotadl")
    return p


def info_plan(s):
    p = list(INFO)  # type: list[str]
    p.insert(5, "usbifc_get" if s.usb else "ifc?")
    return ["listen"] + p if s.listen_first else p  # after a cut transfer: no AT into it


def args(s):
    """The values the ``%`` templates of ``STEPS`` take, for session ``s``."""
    flow = b"2,2" if s.flow_hw else b"0,0"
    if s.scheme == "file":
        target = b"FILE:%d" % (s.length or 0)
    else:
        target = (s.url or "").encode()
    tail = b",%d,%d,%d" % (s.upgrade_mode, s.download_urcs, s.update_urcs)
    return {
        "ifc": flow,
        "usbifc": flow,
        "qicsgp": (s.cid, (s.apn or "").encode()),
        "fota_cid": s.cid,
        "qiact": s.cid,
        "qfotadl": (target, tail),
    }
