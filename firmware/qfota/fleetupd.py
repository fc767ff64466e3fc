"""Server mode's update phase: the modem's part of an action, from the action's journal
(``folder/action.json``, see ``qfota.fleet``) alone, so that it runs without the DDI
client and the HTTP transport in the heap (``qfota.serve`` releases them first).

``run(journal, updater, part, say)`` takes an action in state ``due`` (downloaded, checked,
allowed: nothing sent to the modem yet) or ``update`` (the modem may be inside the transfer
or the upgrade: ``recover()`` follows it first), and returns ``(ok, details, revision)``;
``qfota.action.close`` then records the result (state ``report``) for the server to be told.
"""

from qfota.action import UPDATE, save, short
from qfota.errors import FotaError

MAX_ATTEMPTS = 3  # updates begun for one action (a reset mid-transfer re-runs it)


def failure(e):
    """Feedback lines of a failure: the stage, the note's code and its meaning."""
    if e.code is not None:
        return ["%s: %d: %s" % (e.stage, e.code, e.meaning), str(e)]
    return [str(e)]


def run(journal, updater, part, say):
    """The action ``journal`` holds (state ``due`` or ``update``) through ``updater``;
    ``part``: its downloaded file. ``(ok, details, revision or None)``."""
    rec = journal.data
    if rec.get("state") == UPDATE:
        return _resume(journal, updater, part, say)
    return _update(journal, updater, part, say)


def _update(journal, updater, part, say):
    rec = journal.data
    attempts = rec.get("attempts", 0) + 1
    save(journal, say, state=UPDATE, attempts=attempts)
    say("update", "action %s: attempt %d" % (rec["id"], attempts))
    try:
        url = rec.get("url")
        if url:
            rev = updater.update_url(url, rec["source"], rec["target"])
        else:
            off, n = rec.get("offset", 0), rec.get("length", rec["size"])
            rev = updater.update(part, off, n, rec["source"], rec["target"])
    except FotaError as e:
        return False, failure(e), None
    return True, _success(rec, rev), rev


def _success(rec, rev):
    details = ["revision %s" % short(rev)]
    if rec.get("checked"):
        details.append("checked: " + ", ".join(rec["checked"]))
    return details


def _resume(journal, updater, part, say):
    rec = journal.data
    try:
        rev = updater.recover()
    except FotaError as e:
        return False, failure(e), None
    src, tgt = rec.get("source"), rec.get("target")
    from qfota.at import same_revision

    if tgt and same_revision(rev, tgt) or not tgt and not same_revision(rev, src):
        return True, _success(rec, rev), rev
    if same_revision(rev, src) and rec.get("attempts", 0) < MAX_ATTEMPTS:
        say("resume", "action %s: the modem is on %s still: update again" % (rec["id"], rev))
        return _update(journal, updater, part, say)
    why = "RECOVER: the modem runs %s after %d attempts" % (rev, rec.get("attempts", 0))
    return False, [why], rev


class DriverUpdater:
    """The modem's part of server mode through ``qfota.driver`` over ``port`` (a port or
    a function that opens one). ``session`` options (timeouts, flow, usb, ...) go to every
    run; ``update`` options (chunk, lock_heap, download_urcs, ...) to updates only."""

    def __init__(self, port, on_event=None, timeouts=None, usb=False, **update):
        self.port = port
        self.on_event = on_event
        self.common = {"timeouts": timeouts, "usb": usb}
        self.opts = update

    def revision(self):
        from qfota.driver import _drive
        from qfota.session import Session

        # The revision steps only: the info plan's others are qfota.info's, which is not
        # shipped to a board (found on the emulated Pico).
        s = Session(info=True, plan=lambda s: ["probe", "echo_off", "qgmr", "ati"], **self.common)
        return _drive(self.port, s, on_event=self.on_event).revision_before

    def recover(self):
        from qfota.driver import recover

        s = recover(self.port, on_event=self.on_event, **self.common)
        return s.revision_after or s.revision_before

    def update(self, path, offset, length, source, target):
        from qfota.driver import update

        s = update(
            self.port,
            path,
            image_offset=offset,
            image_length=length,
            expect_source=source,
            target=target,
            on_event=self.on_event,
            **self.common,
            **self.opts,
        )
        return s.revision_after or s.revision_before

    def update_url(self, url, source, target):
        from qfota.driver import update

        s = update(
            self.port,
            url=url,
            expect_source=source,
            target=target,
            on_event=self.on_event,
            **self.common,
            **self.opts,
        )
        return s.revision_after or s.revision_before


def phase(app, journal, folder, rev, read):
    """The update phase: the action the journal leaves to the modem (state ``due`` or
    ``update``), then, with ``read``, the revision when it is not known; the engine alone
    in the heap. The modem's revision (None when it could not be read)."""
    from qfota.action import DUE, close, part

    st = journal.data.get("state")
    if st not in (DUE, UPDATE) and (rev is not None or not read):
        return rev

    def said(name, text):
        app.say("%s: %s" % (name, text))

    updater = DriverUpdater(app._open(), on_event=app.rep.event, **app.update_options())
    if st in (DUE, UPDATE):
        aid = journal.data["id"]
        if st == UPDATE:
            said("resume", "action %s: following the modem after a reset" % aid)
        path = part(folder, aid)
        ok, details, got = run(journal, updater, path, said)
        close(journal, ok, details, path, said)
        rev = got or rev
    if rev is None and read:
        try:
            rev = updater.revision()
        except FotaError as e:
            said("failed", "reading the revision: %s" % e)
    return rev
