"""The on-device application: update the modem from a staged image, once, safely.

``main.py`` runs it at boot::

    from qfota import app
    app.main()                # the board is the module ``board`` (boards/<name>.py)

What it does, in this order (every step can stop it, with a line saying why):

1. Reads the journal (``board.JOURNAL_PATH``, on flash). When it says an update reached
   the modem (``AT+QFOTADL`` may have been sent) and did not finish, it first follows the
   modem to its end with ``qfota.driver.recover``: target revision -> success recorded;
   source revision -> the modem left the old transfer, a fresh update may start below;
   an error or a silent modem -> a stated failure, nothing more is sent.
2. Mounts storage (``board.mount_storage()``) and reads ``fota/<image>.json``, the manifest
   ``qfota stage`` writes: ``{"file", "length", "sha256", "md5", "source_revision",
   "target_revision"}``; ``fota/qfota.cfg`` (JSON, optional) overrides ``defaults()``.
3. Hashes the image on the device (sha256, and md5 where ``hashlib`` has it) and refuses
   a mismatch before the port is even opened.
4. Runs ``qfota.driver.update``: the modem's revision is checked as soon as it is read
   (target: nothing to do, success; neither source nor target: refused), then ``AT+CBC``
   against ``min_voltage_mv`` (note, chapter 5), then the transfer and the upgrade.

The journal is one JSON object, rewritten (temp file + rename) at each stage the engine
reports, so a reset of the MCU anywhere leaves a record of how far it got::

    {"v": 1, "state": "running", "stage": "STREAM", "attempts": 1,
     "file": "EC200T.bin", "sha256": "...", "length": 4884688,
     "source": "<revision>", "target": "<revision>", "revision": "<last read>",
     "error": null, "code": null, "interrupted": "STREAM", "recovered": "FILEEND 500"}

``state``: running | done | current (already at target) | refused (nothing began) |
failed. ``stage``: the engine's last stage (PREFLIGHT, POWER, FLOWCTRL, QFOTADL,
FILESTART, STREAM, FILEEND, START, UPDATING, REBOOT, VERIFY, DONE) or RECOVER.
``attempts``: transfers begun (AT+QFOTADL) for this image; at ``max_attempts`` the app
refuses it until it is restaged. Resume rule: ``state`` running or failed with a stage
past FLOWCTRL means the modem may be inside a transfer or an upgrade, so the next start
calls ``recover()`` first; it never sends a new ``AT+QFOTADL`` before the modem has
answered AT again with its source revision.

``main()`` returns the exit status of ``qfota.report`` (0 done or nothing to do,
2 refused, 1/3/4 failed).
"""

import binascii
import gc
import hashlib
import json
import os

from qfota import at as S
from qfota.compat import const, release
from qfota.defaults import DEFAULTS as ENGINE
from qfota.errors import REFUSED as KIND_REFUSED
from qfota.errors import FotaError
from qfota.journal import Journal as _Journal
from qfota.report import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_REFUSED,
    Reporter,
    exit_code,
)

FOTA_DIR = "fota"  # under the storage root, as ``qfota stage --to :/sd/fota`` leaves it
CONFIG = "qfota.cfg"
_BUF = const(2048)  # hashing buffer: a multiple of the 512-byte SD block

_FROM_MANIFEST = ("expect_source", "target")  # the engine's options the manifest sets
_OWN = ("image", "max_attempts", "chunk", "lock_heap")  # the app's settings, not the engine's

# Journal states.
RUNNING = "running"
DONE = "done"  # the modem runs the target revision after our update
CURRENT = "current"  # it already ran the target revision: nothing sent
REFUSED = "refused"  # bad image, wrong revision, low supply: no transfer began
FAILED = "failed"


def defaults():
    """The settings ``qfota.cfg`` may hold, with their defaults: the engine's options
    (``qfota.checks.OPTIONS``: one table for the session, the CLI and this app) and the
    app's own. Made when asked, not at import: the table is loaded and released here, so
    it leaves no hole under what the app keeps."""
    from qfota.checks import OPTIONS

    d = {
        "image": None,  # the image's file name in fota/; None: the only manifest there
        "max_attempts": 3,  # transfers begun for one image before the app gives up on it
        "chunk": ENGINE["chunk"],  # bytes read from the card per write loop (a multiple of 512)
        "lock_heap": False,
    }
    for row in OPTIONS:
        if row[0] not in _FROM_MANIFEST:
            d[row[0]] = row[2]
    d["min_voltage_mv"] = 3500  # unattended: refuse below (AT+CBC); None skips the check
    OPTIONS = None
    release("checks")
    return d


def _safe(stage):
    # Is ``stage`` one after which the modem cannot be inside a FOTA transfer or upgrade?
    # Derived from qfota.steps' rows, loaded only when a journal asks and released.
    from qfota.steps import stages

    safe = stage == "" or stage in stages(S.SAFE)
    for name in ("steps", "urls", "info", "recovery"):
        release(name)
    return safe


def _server_defaults():
    # The settings of server mode (``qfota.servecfg``), known without loading it when unused.
    try:
        from qfota.servecfg import DEFAULTS as server
    except ImportError:
        return {}  # a board deployed without server mode (stm32): no such settings
    return server


class Journal(_Journal):
    """The app's journal (``qfota.journal.Journal``) and what it says of the last run."""

    @property
    def in_flight(self):
        """True when an update may have reached the modem and was not seen to its end."""
        d = self.data
        return d.get("state") in (RUNNING, FAILED) and not _safe(d.get("stage", ""))


def _hex(h):
    return binascii.hexlify(h.digest()).decode()


def file_hashes(path, buf=None):
    """(length, sha256 hex, md5 hex or None) of the file at ``path``."""
    sha = hashlib.sha256()
    md5_cls = getattr(hashlib, "md5", None)  # not on every port (docs/FIELD.md, "MicroPython")
    md5 = md5_cls() if md5_cls is not None else None
    buf = buf or bytearray(_BUF)
    mv = memoryview(buf)
    n = 0
    with open(path, "rb") as f:
        while True:
            k = f.readinto(buf)
            if not k:
                break
            part = buf if k == len(buf) else mv[:k]
            sha.update(part)
            if md5 is not None:
                md5.update(part)
            n += k
    return n, _hex(sha), (_hex(md5) if md5 is not None else None)


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def find_manifest(folder, name=None):
    """Path of the manifest in ``folder``: ``<name>.json``, or the only ``<file>.json`` there."""
    if name is not None:
        return folder + "/" + name + ".json"
    found = []
    try:
        names = os.listdir(folder)
    except OSError:
        return None  # no fota/ folder: nothing staged
    for f in names:
        if f.endswith(".json") and _exists(folder + "/" + f[:-5]):
            found.append(f)
    if not found:
        return None
    if len(found) > 1:
        raise FotaError(
            "MANIFEST",
            None,
            "%d images staged in %s; keep one or name it in %s" % (len(found), folder, CONFIG),
        )
    return folder + "/" + found[0]


def read_manifest(path):
    """The manifest as a dict; refuses a missing key or an unusable value."""
    try:
        with open(path) as f:
            m = json.load(f)
    except (OSError, ValueError) as e:
        raise FotaError("MANIFEST", None, "cannot read %s: %s" % (path, e)) from None
    for key in ("file", "length", "sha256", "source_revision", "target_revision"):
        if not m.get(key):
            raise FotaError("MANIFEST", None, "%s has no %s" % (path, key))
    if "/" in m["file"] or not isinstance(m["length"], int):
        raise FotaError("MANIFEST", None, "%s: bad file or length" % path)
    return m


def verify_image(path, m):
    """Refuses the image unless its length, sha256 (and md5 when both sides have it) match."""
    try:
        n, sha, md5 = file_hashes(path)
    except OSError as e:
        raise FotaError("IMAGE", None, "cannot read %s: %s" % (path, e)) from None
    if n != m["length"]:
        raise FotaError(
            "IMAGE", None, "%s has %d bytes, the manifest says %d" % (path, n, m["length"])
        )
    if sha != m["sha256"].lower():
        raise FotaError(
            "IMAGE", None, "sha256 of %s is %s, the manifest says %s" % (path, sha, m["sha256"])
        )
    if md5 is not None and m.get("md5") and md5 != m["md5"].lower():
        raise FotaError(
            "IMAGE", None, "md5 of %s is %s, the manifest says %s" % (path, md5, m["md5"])
        )
    return sha


def load_board():
    """The module ``board`` (deployed as /board.py); on the unix port, ``boards/unix.py``."""
    try:
        return __import__("board")
    except ImportError:
        import sys

        if sys.platform != "linux":
            raise
        return __import__("unix")


class App:
    """One run of the application on ``board``; ``run()`` returns the exit status."""

    def __init__(self, board, out=print):
        self.board = board
        self.rep = Reporter(out)
        self.journal = Journal(board.JOURNAL_PATH)
        self.cfg = defaults()
        self.options = tuple(k for k in self.cfg if k not in _OWN)  # the session's keywords
        self.cfg.update(getattr(board, "SETTINGS", None) or {})
        self.port = None
        self.bad = None  # a setting server mode cannot take (see _read_config)
        self.manifest = None
        self.resumed = False  # this run followed an interrupted update to its end

    def say(self, text):
        self.rep.line(text)

    # ---------------------------------------------------------------- steps
    def run(self):
        j = self.journal
        j.load()
        try:
            root = self.board.mount_storage()
        except OSError as e:
            root = None
            self.say("no storage: %s" % e)
        else:
            self._read_config(root + "/" + FOTA_DIR + "/" + CONFIG)
        try:
            if j.in_flight:
                status = self.resume()
                if status is not None:
                    return status
            if root is None:
                return EXIT_FAILED
            if self.cfg.get("server"):
                from qfota import serve

                for k, v in _server_defaults().items():
                    self.cfg.setdefault(k, v)
                return serve.run(self, root)
            return self.fresh(root + "/" + FOTA_DIR)
        finally:
            if self.port is not None:
                self.port.close()

    def _read_config(self, path):
        try:
            with open(path) as f:
                cfg = json.load(f)
        except OSError:
            return
        except ValueError as e:
            self.say("ignoring %s: %s" % (path, e))
            return
        from qfota.checks import OPTIONS, why

        rules = {row[0]: row[3] for row in OPTIONS}
        for k in cfg:
            bad = k in rules and cfg[k] is not None and why(rules[k], cfg[k])
            if k not in self.options and k not in _OWN and k not in _server_defaults():
                self.say("ignoring unknown setting %r in %s" % (k, path))
            elif bad and cfg.get("server"):
                # Server mode runs unattended from these: refused (serve.run), not guessed.
                self.bad = "%s in %s: %s %s" % (k, path, k, bad)
            elif bad:
                self.say("ignoring %s in %s: %s %s" % (k, path, k, bad))
            else:
                self.cfg[k] = cfg[k]
        release("checks")

    def _open(self):
        if self.port is None:
            self.port = self.board.open_port(self.cfg["flow"] == "hw")
        return self.port

    def resume(self):
        """After a reset mid-update: follow the modem to its end. None: go on afresh."""
        j = self.journal
        if j.get("stage") != "RECOVER":
            j.save(interrupted=j.get("stage"), stage="RECOVER")
        self.say("resuming: the last update stopped at %s" % j.get("interrupted"))
        try:
            from qfota.driver import recover  # not held here: server mode releases it

            s = recover(self._open(), timeouts=self.cfg["timeouts"], on_event=self._event)
        except FotaError as e:
            self.say("failed: %s" % e)
            j.save(state=FAILED, error=str(e), code=e.code)
            return exit_code(e)
        except Exception as e:  # the journal keeps RECOVER: tried again next time
            self.say("failed: %r" % (e,))
            j.save(state=FAILED, error=repr(e), code=None)
            return EXIT_FAILED
        rev = s.revision_after
        j.save(revision=rev, recovered=s.recovered)
        if S.same_revision(rev, j.get("target")):
            j.save(state=DONE, stage="DONE", error=None, code=None)
            self.say("done: the modem runs %s" % rev)
            return EXIT_OK
        if not S.same_revision(rev, j.get("source")):
            err = "after the reset the modem runs %s, neither %s nor %s" % (
                rev,
                j.get("source"),
                j.get("target"),
            )
            self.say("failed: " + err)
            j.save(state=FAILED, error=err, code=None)
            return EXIT_FAILED
        # The modem answered AT and runs the source revision: it left the old transfer.
        self.resumed = True
        what = s.recovered or "nothing"
        self.say("the interrupted update did not complete (the modem reported %s)" % what)
        j.save(state=FAILED, stage="", error="interrupted; modem reported %s" % what)
        return None

    def fresh(self, folder):
        j = self.journal
        cfg = self.cfg
        gc.collect()  # room for the hashing buffer in a fragmented heap
        try:
            path = find_manifest(folder, cfg["image"])
            if path is None:
                self.say("nothing staged in %s" % folder)
                return EXIT_OK
            m = self.manifest = read_manifest(path)
            image = folder + "/" + m["file"]
            self.say("verifying %s (%d bytes)" % (image, m["length"]))
            sha = verify_image(image, m)
        except FotaError as e:
            return self._refused(e)
        same = j.get("sha256") == sha
        attempts = j.get("attempts", 0) if same else 0
        if same and j.get("state") in (DONE, CURRENT):
            attempts = 0
        if attempts >= cfg["max_attempts"]:
            # The journal already says why; it stays as it is until the image changes.
            self.say(
                "refused: ATTEMPTS: %d transfers of this image failed (last: %s); "
                "restage it or remove %s" % (attempts, j.get("error"), j.path)
            )
            return EXIT_REFUSED
        gc.collect()  # the hashing's garbage, before the buffers of the transfer
        keep = {k: j.get(k) for k in ("interrupted", "recovered")} if self.resumed else {}
        j.data = keep
        j.save(
            v=1,
            state=RUNNING,
            stage="",
            file=m["file"],
            sha256=sha,
            length=m["length"],
            source=m["source_revision"],
            target=m["target_revision"],
            attempts=attempts,
        )
        from qfota.driver import update  # not held here: server mode releases it

        try:
            s = update(
                self._open(),
                image=image,
                expect_source=m["source_revision"],
                target=m["target_revision"],
                on_event=self._event,
                **self.update_options(),
            )
        except FotaError as e:
            if e.kind == KIND_REFUSED:
                return self._refused(e)
            self.say("failed: %s" % e)
            j.save(state=FAILED, error=str(e), code=e.code)
            return exit_code(e)
        except Exception as e:  # a port or file error: record it, as a reset would
            self.say("failed: %r" % (e,))
            j.save(state=FAILED, error=repr(e), code=None)
            return EXIT_FAILED
        if s.result == "current":
            j.save(state=CURRENT, stage="", revision=s.revision_before)
            self.say("nothing to do: the modem already runs %s" % s.revision_before)
            return EXIT_OK
        # The session refused a revision other than the target after the update.
        j.save(state=DONE, stage="DONE", revision=s.revision_after, error=None, code=None)
        return self.rep.result(s)

    def update_options(self):
        """The engine's options in the settings: the staged update's and server mode's."""
        cfg = self.cfg
        d = {k: cfg[k] for k in self.options}
        d["chunk"] = cfg["chunk"]
        d["lock_heap"] = cfg["lock_heap"]
        return d

    def _refused(self, e):
        self.say("refused: %s" % e)
        j = self.journal
        if j.get("state") == RUNNING:
            j.save(state=REFUSED, error=str(e), code=e.code)
        elif j.in_flight:
            pass  # keep the record of an interrupted update for the next resume
        else:
            j.save(state=REFUSED, stage="", error=str(e), code=e.code)
        return EXIT_REFUSED

    # ---------------------------------------------------------------- engine events
    def _event(self, ev, a, b):
        self.rep.event(ev, a, b)
        j = self.journal
        if ev == S.EV_STAGE:
            if a == "QFOTADL":
                j.save(stage=a, attempts=j.get("attempts", 0) + 1)
            elif j.get("stage") != a:
                j.save(stage=a)
        elif ev == S.EV_REVISION and a == "before" and j.get("state") == RUNNING:
            j.save(revision=b)


def main(board=None, out=print):
    """Run the application on ``board`` (default: ``load_board()``); returns the exit status."""
    return App(board or load_board(), out).run()
