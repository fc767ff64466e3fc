"""Progress and outcome as text lines (or JSON objects), the same on every runtime.

    r = Reporter(print)
    session = update(port, "EC200T.bin", on_event=r.event)
    status = r.result(session)

``live=True`` rewrites one progress line in place (for a terminal) instead of printing
a line every 10%. ``json=True`` prints one JSON object per line per event instead of
text: ``{"event": "stage" | "revision" | "progress" | "reboot" | "log" | "tx" | "rx" |
"result", ...}``; the result carries ``stage``, ``code``, ``meaning``, ``kind`` and
``exit``. ``log=PATH`` appends every text line, timestamped, to that file (in both
modes). Times are in seconds throughout. MicroPython-compatible: no f-strings, no
``datetime``.

Nothing here may cost the update: a log that cannot be written (a full disk) is closed
and the end says once at which line it stopped and why; an ``out`` that fails (stdout
closed by its reader: EPIPE) is not called again and the end says so on stderr. Neither
raises into the engine, whose transfer goes on.
"""

import gc
import json as _json
import sys
import time

from qfota import at as S
from qfota.compat import ticks_diff, ticks_ms
from qfota.errors import FotaError, meaning, redact

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_REFUSED = 2  # bad input: nothing was sent to the modem
EXIT_TIMEOUT = 4

# Progress activities: one at a time on the live line.
_SEND = "sending"
_DL = "modem download"
_UP = "upgrading"


def exit_code(err):
    """The exit status for ``err``: ``FotaError.exit_status``, else EXIT_FAILED."""
    if isinstance(err, FotaError):
        return err.exit_status
    return EXIT_FAILED


def _secs(ms):
    """Milliseconds as seconds, one decimal below 100 s: ``1.2 s``, ``345 s``."""
    if ms < 100000:
        return "%d.%d s" % (ms // 1000, ms % 1000 // 100)
    return "%d s" % ((ms + 500) // 1000)


class Reporter:
    def __init__(self, out, live=False, verbose=False, step=10, mem=False, json=False, log=None):
        self.out = out
        self.json = json
        self.live = live and not json
        self.verbose = verbose
        self.step = step
        self._t0 = None
        self._shown = {}
        self._open = 0  # length of the open live line (0: none)
        self._act = None  # the progress shown now; another waits until it ends
        self._sent = self._total = 0
        self._stage = None
        self._end_ok = False  # END,0 came (the REBOOT stage followed START/UPDATING)
        self._log_path = log
        self._log = None
        self._logged = 0  # lines written to the log by this reporter
        self._log_err = None  # (line, why): the log stopped at that line
        self._said = 0  # lines given to out
        self._out_err = None  # (line, why): out failed at that line
        if log:
            try:
                self._log = open(log, "a")
            except OSError as e:
                self._log_err = (1, e)
        # mem=True: the live heap (gc.collect, then gc.mem_alloc) at every event, and its
        # high-water mark at the end. Nothing is allocated while the package streams
        # (heap_lock proves it), so events are where the heap peaks.
        self.mem = mem
        self.heap_max = 0
        self.heap_total = None  # None: this process's heap

    def _text(self, text, show):
        """``qfota: text`` to the log file, and to ``out`` when ``show``."""
        text = "qfota: " + text
        if self._log is not None:
            self._log_line(self._log, text)
        if show:
            if self._open:
                self._say("")
                self._open = 0
            self._say(text)

    def _log_line(self, f, text):
        t = time.localtime()
        try:
            f.write("%04d-%02d-%02d %02d:%02d:%02d " % t[:6] + text + "\n")
            f.flush()
        except OSError as e:
            self._log_err = (self._logged + 1, e)
            self._close_log()
        else:
            self._logged += 1

    def close(self):
        """Close the log without a closing line (``result()`` closes it too)."""
        self._close_log()

    def _close_log(self):
        f = self._log
        self._log = None
        if f is not None:
            try:
                f.close()
            except OSError:
                pass  # what it still held could not be written either: said at the end

    def _say(self, text, end=None):
        """``out(text)``, once ``out`` has failed no more (the update goes on)."""
        if self._out_err is not None:
            return
        try:
            if end is None:
                self.out(text)
            else:
                self.out(text, end=end)
        except OSError as e:
            self._out_err = (self._said + 1, e)
        else:
            self._said += 1

    def _obj(self, obj):
        self._say(_json.dumps(obj))

    def line(self, text):
        """One line of text (``qfota: `` in front); in JSON mode a ``log`` event."""
        self._text(text, not self.json)
        if self.json:
            self._obj({"event": "log", "text": text})

    def _progress(self, label, pct, extra, done, total):
        pct = 100 if pct > 100 else pct
        if self.json:
            if self._shown.get(label) != pct:
                self._shown[label] = pct
                obj = {"event": "progress", "activity": label, "percent": pct}
                obj["done"] = done
                obj["total"] = total
                self._obj(obj)
        else:
            if self._act is not None and self._act != label:
                return  # one activity at a time: the other one is still running
            self._act = None if pct >= 100 else label
        text = "%s %d%%%s" % (label, pct, extra)
        if self.live:
            live = "qfota: %s %3d%%%s" % (label, pct, extra)
            pad = self._open - len(live)
            self._say("\r" + live + " " * (pad if pad > 0 else 0), end="")
            self._open = len(live)
        mark = pct // self.step * self.step
        if self._shown.get(label + "%", -1) < mark:
            self._shown[label + "%"] = mark
            self._text(text, not self.json and not self.live)
        if self._open and pct >= 100:
            self._say("")
            self._open = 0

    def _send_progress(self, a, b):
        now = ticks_ms()
        if self._t0 is None:
            self._t0 = now
        ms = ticks_diff(now, self._t0)
        self._sent = a
        self._total = b
        extra = "  %d of %d bytes" % (a, b)
        # The port's buffers take the first kilobytes at once: a rate (and the time left)
        # means something only after a second.
        if ms >= 1000 and a > 0:
            rate = a * 1000 // ms
            extra += ", %d B/s" % rate
            if a < b and rate > 0:
                extra += ", %s left" % _secs((b - a) * 1000 // rate)
        self._progress(_SEND, a * 100 // b if b else 100, extra, a, b)

    # ---------------------------------------------------------------- events
    def event(self, ev, a, b):
        if self.mem:
            gc.collect()
            used = gc.mem_alloc()
            if used > self.heap_max:
                self.heap_max = used
        j = self.json
        if ev == S.EV_STAGE:
            prev = self._stage
            self._stage = a
            if a == "STREAM":
                self._t0 = ticks_ms()  # the rate counts from the first package byte
            elif prev == "STREAM" and a == "FILEEND" and self._sent < self._total:
                # the session leaves STREAM for FILEEND only once all was written
                self._send_progress(self._total, self._total)
            if a == "REBOOT" and prev in ("START", "UPDATING"):
                self._end_ok = True  # END,0: any other END raised instead
            if a in ("START", "REBOOT"):
                self._act = None
            if j:
                self._obj({"event": "stage", "stage": a})
            elif self.verbose:
                self.line("stage " + a)
        elif ev == S.EV_REVISION:
            self._text("revision %s: %s" % (a, b), not j)
            if j:
                self._obj({"event": "revision", "which": a, "revision": b})
        elif ev == S.EV_SENT:
            self._send_progress(a, b)
        elif ev == S.EV_DOWNLOADING or ev == S.EV_UPDATING:
            if b:
                if ev == S.EV_UPDATING and self._act == _DL:
                    self._act = None  # the download is over when the upgrade runs
                self._progress(_DL if ev == S.EV_DOWNLOADING else _UP, a * 100 // b, "", a, b)
        elif ev == S.EV_REBOOT:
            self._text("modem rebooted", not j)
            if j:
                self._obj({"event": "reboot", "count": a})
        elif ev == S.EV_LOG:
            self.line(redact(a))
        elif (ev == S.EV_TX or ev == S.EV_RX) and self.verbose:
            text = redact(a) or ""
            self._text(("> " if ev == S.EV_TX else "< ") + text, not j)
            if j:
                self._obj({"event": "tx" if ev == S.EV_TX else "rx", "line": text})

    # ---------------------------------------------------------------- the end
    def result(self, session=None, err=None):
        """The closing line (or JSON object); returns the exit status."""
        j = self.json
        rec = {"event": "result"}  # type: dict
        if session is not None and session.stream_ms:
            ms = session.stream_ms
            rec["sent"] = session.sent
            rec["stream_s"] = ms / 1000
            self._text(
                "sent %d bytes in %s (%d B/s)"
                % (session.sent, _secs(ms), session.sent * 1000 // ms),
                not j,
            )
        if self.mem:
            rec["heap_high_water"] = self.heap_max
            self._text(
                "heap: live high-water %d bytes (after a collect at every event) of %d"
                % (self.heap_max, self.heap_total or gc.mem_free() + gc.mem_alloc()),
                not j,
            )
        if err is None and session is not None:
            status = EXIT_OK
            result = getattr(session, "result", None)
            if result == "current":
                text = "nothing to do: the modem already runs %s" % session.revision_before
            elif result == "recovered":
                text = "done: the modem runs %s" % session.revision_after
                if getattr(session, "recovered", None):
                    text += " (it reported %s)" % session.recovered
            else:
                text = "done: %s -> %s" % (session.revision_before, session.revision_after)
            rec["result"] = result
            rec["revision_before"] = session.revision_before
            rec["revision_after"] = session.revision_after
        else:
            status = exit_code(err)
            fe = isinstance(err, FotaError)
            text = str(err) if fe else "internal error: %s: %s" % (type(err).__name__, err)
            rec["stage"] = err.stage if fe else None
            rec["code"] = err.code if fe else None
            rec["meaning"] = meaning(err.code, err.stage) if fe else ""
            rec["kind"] = err.kind if fe else "failed"
            rec["detail"] = redact((err.detail if fe else text) or "")
            end_ok = self._end_ok or getattr(session, "end_code", None) == 0
            if end_ok and fe and err.kind == "timeout":
                text += (
                    " (the upgrade itself reported success, END 0; the modem did not answer"
                    " after it: check it with ATI or qfota recover)"
                )
                rec["upgrade_reported_success"] = True
            text = "failed: " + (redact(text) or "")
        rec["ok"] = status == EXIT_OK
        rec["exit"] = status
        rec["text"] = text
        if self._out_err is not None:
            # Said in the log (if it still works) before the closing line.
            self._text(_stopped("output", self._out_err), False)
        if self._log_err is not None:
            note = _stopped("the log " + str(self._log_path), self._log_err)
            rec["log_error"] = note
            self._text(note, not j)
        self._text(text, not j)
        if j:
            self._obj(rec)
        self._close_log()
        if self._out_err is not None:
            _stderr("qfota: %s: %s" % (_stopped("output", self._out_err), text))
        return status


def _why(e):
    """An OSError in words on either interpreter (``qfota.cut.os_error``)."""
    from qfota.cut import os_error

    return os_error(e)


def _stopped(what, err):
    line, e = err
    return "%s stopped at line %d (%s); the update went on without it" % (what, line, _why(e))


def _stderr(text):
    try:
        sys.stderr.write(text + "\n")
    except (OSError, AttributeError):
        pass
