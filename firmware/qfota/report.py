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
"""

import gc
import json as _json
import time

from qfota import session as S
from qfota.compat import ticks_diff, ticks_ms
from qfota.errors import FotaError, meaning, redact

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_REFUSED = 2  # bad input: nothing was sent to the modem
EXIT_MODEM_ERROR = 3  # the modem reported an error code
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


def _stamp():
    t = time.localtime()
    return "%04d-%02d-%02d %02d:%02d:%02d" % (t[0], t[1], t[2], t[3], t[4], t[5])


class Reporter:
    def __init__(self, out, live=False, verbose=False, step=10, mem=False, json=False, log=None):
        self.out = out
        self.json = json
        self.live = live and not json
        self.verbose = verbose
        self.step = step
        self._t0 = None
        self._shown = {}
        self._open_line = False
        self._live_len = 0  # length of the live line on screen (to blank a remnant)
        self._activity = None  # the progress shown now; another waits until it ends
        self._sent = 0
        self._total = 0
        self._stage = None
        self._end_ok = False  # END,0 came (the REBOOT stage followed START/UPDATING)
        self.log_path = log
        self._log = None
        if log:
            self._log = open(log, "a")
        # mem=True: the live heap (gc.collect, then gc.mem_alloc) at every event, and its
        # high-water mark at the end. Nothing is allocated while the package streams
        # (heap_lock proves it), so events are where the heap peaks.
        self.mem = mem
        self.heap_max = 0

    # ---------------------------------------------------------------- output
    def _logline(self, text):
        if self._log is not None:
            self._log.write(_stamp() + " " + text + "\n")
            self._log.flush()

    def _emit(self, obj):
        self.out(_json.dumps(obj))

    def _close_live(self):
        if self._open_line:
            self.out("")
            self._open_line = False
            self._live_len = 0

    def line(self, text):
        """One line of text (``qfota: `` in front); in JSON mode a ``log`` event."""
        self._logline("qfota: " + text)
        if self.json:
            self._emit({"event": "log", "text": text})
            return
        self._close_live()
        self.out("qfota: " + text)

    def _progress(self, key, label, pct, extra="", done=0, total=0):
        pct = 100 if pct > 100 else pct
        if self.json:
            if self._shown.get(key, -1) != pct:
                self._shown[key] = pct
                self._emit(
                    {
                        "event": "progress",
                        "activity": label,
                        "percent": pct,
                        "done": done,
                        "total": total,
                    }
                )
            if self._log is not None:  # the log reads the same in both modes
                mark = pct // self.step * self.step
                if self._shown.get("log " + key, -1) < mark:
                    self._shown["log " + key] = mark
                    self._logline("qfota: %s %d%%%s" % (label, pct, extra))
            return
        if self._activity is not None and self._activity != label:
            return  # one activity at a time: the other one is still running
        self._activity = None if pct >= 100 else label
        mark = pct // self.step * self.step
        if self._shown.get(key, -1) < mark:
            self._shown[key] = mark
            self._logline("qfota: %s %d%%%s" % (label, pct, extra))
            if not self.live:
                self.out("qfota: %s %d%%%s" % (label, pct, extra))
        if self.live:
            text = "qfota: %s %3d%%%s" % (label, pct, extra)
            pad = self._live_len - len(text)
            self.out("\r" + text + (" " * pad if pad > 0 else ""), end="")
            self._live_len = len(text)
            self._open_line = True
            if pct >= 100:
                self._close_live()

    def _send_progress(self, a, b):
        now = ticks_ms()
        if self._t0 is None:
            self._t0 = now
        ms = ticks_diff(now, self._t0)
        self._sent = a
        self._total = b
        # The port's buffers take the first kilobytes at once: a rate (and the time left)
        # means something only after a second.
        if ms >= 1000 and a > 0:
            rate = a * 1000 // ms
            extra = "  %d of %d bytes, %d B/s" % (a, b, rate)
            if a < b and rate > 0:
                extra += ", %s left" % _secs((b - a) * 1000 // rate)
        else:
            extra = "  %d of %d bytes" % (a, b)
        self._progress("sent", _SEND, a * 100 // b if b else 100, extra, a, b)

    # ---------------------------------------------------------------- events
    def event(self, ev, a, b):
        if self.mem:
            gc.collect()
            used = gc.mem_alloc()
            if used > self.heap_max:
                self.heap_max = used
        if ev == S.EV_STAGE:
            prev = self._stage
            self._stage = a
            if a == "STREAM":
                self._t0 = ticks_ms()  # the rate counts from the first package byte
            elif prev == "STREAM" and self._total and self._sent < self._total:
                if a == "FILEEND":  # the session leaves STREAM only once all was written
                    self._send_progress(self._total, self._total)
            if a == "REBOOT" and prev in ("START", "UPDATING"):
                self._end_ok = True  # END,0: any other END raised instead
            if self._activity is not None and a in ("START", "REBOOT") and not self.json:
                self._activity = None
                self._close_live()
            if self.json:
                self._emit({"event": "stage", "stage": a})
            elif self.verbose:
                self.line("stage " + a)
        elif ev == S.EV_REVISION:
            if self.json:
                self._emit({"event": "revision", "which": a, "revision": b})
                self._logline("qfota: revision %s: %s" % (a, b))
            else:
                self.line("revision %s: %s" % (a, b))
        elif ev == S.EV_SENT:
            self._send_progress(a, b)
        elif ev == S.EV_DOWNLOADING:
            if b:
                self._progress("dl", _DL, a * 100 // b, "", a, b)
        elif ev == S.EV_UPDATING:
            if b:
                if self._activity == _DL:
                    self._activity = None  # the download is over when the upgrade runs
                self._progress("up", _UP, a * 100 // b, "", a, b)
        elif ev == S.EV_REBOOT:
            if self.json:
                self._emit({"event": "reboot", "count": a})
                self._logline("qfota: modem rebooted")
            else:
                self.line("modem rebooted")
        elif ev == S.EV_LOG:
            self.line(redact(a))
        elif ev == S.EV_TX and self.verbose:
            self._trace("tx", "> ", a)
        elif ev == S.EV_RX and self.verbose:
            self._trace("rx", "< ", a)

    def _trace(self, kind, mark, text):
        text = redact(text)
        if self.json:
            self._emit({"event": kind, "line": text})
            self._logline("qfota: " + mark + text)
        else:
            self.line(mark + text)

    # ---------------------------------------------------------------- the end
    def result(self, session=None, err=None):
        """The closing line (or JSON object); returns the exit status."""
        self._close_live()
        rec = {"event": "result"}  # type: dict
        if session is not None and session.stream_ms:
            ms = session.stream_ms
            rec["sent"] = session.sent
            rec["stream_s"] = ms / 1000
            if not self.json:
                self.line(
                    "sent %d bytes in %s (%d B/s)"
                    % (session.sent, _secs(ms), session.sent * 1000 // ms)
                )
        if self.mem:
            total = gc.mem_free() + gc.mem_alloc()
            rec["heap_high_water"] = self.heap_max
            if not self.json:
                self.line(
                    "heap: live high-water %d bytes (after a collect at every event) of %d"
                    % (self.heap_max, total)
                )
        if err is None and session is not None:
            rec["ok"] = True
            rec["exit"] = EXIT_OK
            rec["revision_before"] = session.revision_before
            rec["revision_after"] = session.revision_after
            text = "done: %s -> %s" % (session.revision_before, session.revision_after)
            status = EXIT_OK
        else:
            status = exit_code(err)
            if isinstance(err, FotaError):
                text = str(err)
                rec["stage"] = err.stage
                rec["code"] = err.code
                rec["meaning"] = meaning(err.code, err.stage) if err.code is not None else ""
                rec["kind"] = err.kind
                rec["detail"] = redact(err.detail) if err.detail else ""
            else:
                text = "internal error: %s: %s" % (type(err).__name__, err)
                rec["stage"] = None
                rec["code"] = None
                rec["meaning"] = ""
                rec["kind"] = "failed"
                rec["detail"] = redact(text)
            end_ok = self._end_ok or (
                session is not None and getattr(session, "end_code", None) == 0
            )
            if end_ok and not (isinstance(err, FotaError) and err.stage == "END"):
                text += (
                    " (the upgrade itself reported success, END 0; the modem did not answer"
                    " after it: check it with ATI or qfota recover)"
                )
                rec["upgrade_reported_success"] = True
            rec["ok"] = False
            rec["exit"] = status
            text = "failed: " + (redact(text) or "")
        if self.json:
            rec["text"] = text
            self._emit(rec)
            self._logline("qfota: " + text)
        else:
            self.line(text)
        if self._log is not None:
            self._log.close()
            self._log = None
        return status
