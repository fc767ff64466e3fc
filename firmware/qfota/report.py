"""Progress and outcome as text lines, the same on every runtime.

    r = Reporter(print)
    session = update(port, "EC200T.bin", on_event=r.event)

``live=True`` rewrites one progress line in place (for a terminal) instead of printing
a line every 10%.
"""

import gc

from qfota import session as S
from qfota.compat import ticks_diff, ticks_ms
from qfota.errors import FotaError, redact

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_REFUSED = 2  # bad input: nothing was sent to the modem
EXIT_MODEM_ERROR = 3  # the modem reported an error code
EXIT_TIMEOUT = 4


def exit_code(err):
    """The exit status for ``err``: ``FotaError.exit_status``, else EXIT_FAILED."""
    if isinstance(err, FotaError):
        return err.exit_status
    return EXIT_FAILED


class Reporter:
    def __init__(self, out, live=False, verbose=False, step=10, mem=False):
        self.out = out
        self.live = live
        self.verbose = verbose
        self.step = step
        self._t0 = None
        self._shown = {}
        self._open_line = False
        # mem=True: the live heap (gc.collect, then gc.mem_alloc) at every event, and its
        # high-water mark at the end. Nothing is allocated while the package streams
        # (heap_lock proves it), so events are where the heap peaks.
        self.mem = mem
        self.heap_max = 0

    def line(self, text):
        if self._open_line:
            self.out("")
            self._open_line = False
        self.out("qfota: " + text)

    def _progress(self, key, label, pct, extra=""):
        pct = 100 if pct > 100 else pct
        if self.live:
            self.out("\rqfota: %s %3d%%%s   " % (label, pct, extra), end="")
            self._open_line = True
            if pct >= 100:
                self.out("")
                self._open_line = False
            return
        mark = pct // self.step * self.step
        if self._shown.get(key, -1) < mark:
            self._shown[key] = mark
            self.line("%s %d%%%s" % (label, pct, extra))

    def event(self, ev, a, b):
        if self.mem:
            gc.collect()
            used = gc.mem_alloc()
            if used > self.heap_max:
                self.heap_max = used
        if ev == S.EV_STAGE:
            if a == "STREAM":
                self._t0 = ticks_ms()  # the rate counts from the first package byte
            if self.verbose:
                self.line("stage " + a)
        elif ev == S.EV_REVISION:
            self.line("revision %s: %s" % (a, b))
        elif ev == S.EV_SENT:
            now = ticks_ms()
            if self._t0 is None:
                self._t0 = now
            ms = ticks_diff(now, self._t0)
            # The port's buffers take the first kilobytes at once: a rate means something
            # only after a second.
            if ms >= 1000:
                rate = " (%d of %d bytes, %d B/s)" % (a, b, a * 1000 // ms)
            else:
                rate = " (%d of %d bytes)" % (a, b)
            self._progress("sent", "sending", a * 100 // b, rate)
        elif ev == S.EV_DOWNLOADING:
            if b:
                self._progress("dl", "modem download", a * 100 // b)
        elif ev == S.EV_UPDATING:
            if b:
                self._progress("up", "upgrading", a * 100 // b)
        elif ev == S.EV_REBOOT:
            self.line("modem rebooted")
        elif ev == S.EV_LOG:
            self.line(redact(a))
        elif ev == S.EV_TX and self.verbose:
            self.line("> " + a)
        elif ev == S.EV_RX and self.verbose:
            self.line("< " + a)

    def result(self, session=None, err=None):
        """The closing line; returns the exit status."""
        if session is not None and session.stream_ms:
            ms = session.stream_ms
            self.line(
                "sent %d bytes in %d ms (%d B/s)" % (session.sent, ms, session.sent * 1000 // ms)
            )
        if self.mem:
            self.line(
                "heap: live high-water %d bytes (after a collect at every event) of %d"
                % (self.heap_max, gc.mem_free() + gc.mem_alloc())
            )
        if err is None and session is not None:
            self.line("done: %s -> %s" % (session.revision_before, session.revision_after))
            return EXIT_OK
        text = (
            str(err)
            if isinstance(err, FotaError)
            else "internal error: %s: %s" % (type(err).__name__, err)
        )
        self.line("failed: %s" % redact(text))
        return exit_code(err)
