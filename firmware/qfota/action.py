"""What server mode's phases share about one action, small so that each phase holds it
beside its own code only (``qfota.serve`` runs them one at a time: polling with
``qfota.fleet`` and ``qfota.ddi``, the download with ``qfota.fleetdl``, the modem's update
with ``qfota.fleetupd``): the journal's states, the action's file, the result recorded,
the body of a DDI feedback, and the checks of a DDI answer's parts (``qfota.ddi`` and
``qfota.deployment``, which reads a deploymentBase answer, loaded for it alone).
"""

import json
import os

from qfota.compat import const
from qfota.errors import FAILED, FotaError, redact

# Journal states (``folder/action.json``; qfota.fleet's docstring says what each means).
DOWNLOAD = "download"
DOWNLOADED = "downloaded"
DUE = "due"  # downloaded, checked, update allowed; the modem has been sent nothing
UPDATE = "update"  # the modem may be inside the transfer or the upgrade
REPORT = "report"  # the result, not yet taken by the server
REPORTED = "reported"
CANCELLED = "cancelled"

STEPS = const(3)  # feedback progress: 1 download, 2 check, 3 update
BODY_MAX = const(4096)  # largest answer read from the server (the transport's ``limit``)
ID_MAX = const(32)  # longest action id
LINK_MAX = const(512)  # longest link taken from the server
DETAIL_MAX = const(200)  # characters of one feedback detail line
EXECUTIONS = ("proceeding", "closed", "rejected", "canceled", "scheduled", "resumed", "downloaded")
FINISHED = ("success", "failure", "none")


def part(folder, aid):
    """The file action ``aid``'s artifact is downloaded into."""
    return "%s/%s.bin" % (folder, aid)


def file_size(path):
    """The size of the file at ``path``; -1 when there is none."""
    try:
        return os.stat(path)[6]
    except OSError:
        return -1


def remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


def save(journal, say, **changes):
    """``journal.save``; a journal that cannot be written is reported and the action goes
    on (its record in RAM still holds): only an MCU reset in that window could repeat or
    lose a step."""
    try:
        journal.save(**changes)
    except OSError as e:
        journal.data.update(changes)
        say("failed", "journal not written (%s): a reset now may repeat a step" % e)


def short(revision):
    """``EC200TCNDAR02A07M16_01.001.01.001`` -> ``EC200TCNDAR02A07M16``."""
    return revision.split("_")[0] if revision else revision


def close(journal, ok, details, part, say):
    """Record the result (state ``report``) and remove the downloaded file; the poll
    phase posts it (``qfota.fleet``), once."""
    save(journal, say, state=REPORT, ok=ok, details=details)
    remove(part)
    say(
        "result",
        "action %s: %s: %s"
        % (journal.data["id"], "success" if ok else "failure", "; ".join(details)),
    )


_BAD_LINK = "\"'<>\\`"


def link_ok(link, limit=LINK_MAX):
    """True when ``link`` is an http(s) URL of printable ASCII without space or quote, at
    most ``limit`` characters: safe inside a request line and inside an AT command."""
    if not isinstance(link, str) or not 10 <= len(link) <= limit:
        return False
    if not (link.startswith("http://") or link.startswith("https://")):
        return False
    for ch in link:
        if not 33 <= ord(ch) <= 126 or ch in _BAD_LINK:
            return False
    return True


def shape(what):
    """The error of a DDI answer that is not shaped as hawkBit's documentation shows."""
    return ValueError("unexpected shape: " + what)


def dict_at(d, key, what):
    v = d.get(key)
    if not isinstance(v, dict):
        raise shape(what)
    return v


def href(links, name):
    """The ``href`` of link ``name`` in a ``_links`` object, or None."""
    v = links.get(name)
    if v is None:
        return None
    if not isinstance(v, dict) or not isinstance(v.get("href"), str):
        raise shape("_links." + name)
    return v["href"]


def id_ok(text, extra=""):
    """True for 1..ID_MAX letters and digits (and the characters in ``extra``)."""
    if not isinstance(text, str) or not 0 < len(text) <= ID_MAX:
        return False
    for ch in text:
        if not (ch.isalpha() or ch.isdigit() or ch in extra) or ord(ch) > 126:
            return False
    return True


def feedback(base, route, aid, execution, finished, details=(), cnt=None, of=None):
    """``(url, body)`` of a DDI feedback for the action ``aid`` under ``route``
    (``deploymentBase`` or ``cancelAction``) of the controller at ``base``; ``details``:
    the device's own lines of text (redacted, bounded)."""
    if not id_ok(aid):
        raise FotaError("DDI", None, "bad action id", FAILED)
    if execution not in EXECUTIONS or finished not in FINISHED:
        raise FotaError("DDI", None, "bad feedback status", FAILED)
    if cnt is None:
        result = {"finished": finished}
    else:
        result = {"finished": finished, "progress": {"cnt": cnt, "of": of}}
    status = {"execution": execution, "result": result}
    if details:
        status["details"] = [(redact(str(d)) or "")[:DETAIL_MAX] for d in details]
    body = json.dumps({"id": aid, "status": status}).encode()
    return "%s/%s/%s/feedback" % (base, route, aid), body
