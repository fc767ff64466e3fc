"""The loop ``make bench`` shares (``bench/run.py``, ``bench/pico_bench.py``): every figure
is measured, one that misses its target or fails is a result marked "no", and the
figures after it are measured all the same; the README block is rewritten between its
markers with whatever was measured.

    results = runner.measure([("1. flow", flow), ("2. pacing", pacing)])
    # each measure() returns (value, met); a figure that raises is not measured
    missed = [r.name for r in results if not r.met]
"""

import sys


class Result:
    """One figure: ``value`` as its measure returned it (None when it failed: ``why``)."""

    def __init__(self, name, value, met, why=None):
        self.name, self.value, self.met, self.why = name, value, met, why

    def __repr__(self):
        return "Result(%r, %r, met=%s, why=%r)" % (self.name, self.value, self.met, self.why)


def one_line(exc):
    """The last line of an exception's message, short enough for a table cell."""
    text = str(exc.code if isinstance(exc, SystemExit) else exc) or type(exc).__name__
    lines = [x.strip() for x in text.splitlines() if x.strip()]
    last = lines[-1] if lines else type(exc).__name__
    return last.replace("|", "/")[:100]


def measure(figures, log=None):
    """Measure each ``(name, measure)`` in turn; ``measure()`` returns ``(value, met)``.

    A figure that raises (the helpers raise ``SystemExit`` when a run fails) is not
    measured: its result has ``value`` None, ``met`` False and the error's last line in
    ``why``, the whole error goes to stderr, and the next figure is measured. Ctrl-C
    still ends the run.
    """
    log = log or (lambda line: print(line, flush=True))
    results = []
    for name, fn in figures:
        try:
            value, met = fn()
            results.append(Result(name, value, bool(met)))
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # SystemExit included: this figure's end, not the run's
            why = one_line(exc)
            print("bench: %s: not measured:\n%s" % (name, exc), file=sys.stderr, flush=True)
            results.append(Result(name, None, False, why))
        r = results[-1]
        log(
            "bench: %-60s %s"
            % (name, "met" if r.met else "MISSED" + (": " + r.why if r.why else ""))
        )
    return results


def write_readme(readme, start, edit):
    """Rewrite ``readme`` (a Path) as ``edit(its text)`` (``replace_block``/``replace_rows``
    with the rest of their arguments bound); say so when that finds no ``start`` block."""
    new = edit(readme.read_text())
    if new is None:
        print("README.md has no %s block: not written" % start)
    else:
        readme.write_text(new)


def exit_status(results, prog, what):
    """1 when a figure was missed (named on stderr after ``prog: what:``), else 0."""
    missed = [r.name for r in results if not r.met]
    if missed:
        print("%s: %s: %s" % (prog, what, "; ".join(missed)), file=sys.stderr)
    return 1 if missed else 0


def replace_block(text, start, end, block):
    """``text`` with what lies between the markers ``start`` and ``end`` replaced by
    ``block`` (the markers kept); None when either marker is missing."""
    if start not in text or end not in text[text.index(start) :]:
        return None
    head, rest = text.split(start, 1)
    return head + start + "\n" + block.strip("\n") + "\n" + end + rest.split(end, 1)[1]


def replace_rows(text, start, end, rows, note):
    """``text`` with the table rows of its ``start``/``end`` block whose first cell is the
    first cell of one of ``rows`` (markdown lines) replaced by it (rows not there yet go
    after the table's last row), and ``note`` (a line after the table) in place of the
    note before it (a line starting as ``note`` does up to its first ':'); None when the
    markers are missing."""
    if start not in text or end not in text[text.index(start) :]:
        return None
    head, rest = text.split(start, 1)
    block, tail = rest.split(end, 1)
    lines = block.strip("\n").split("\n")
    new = {_cell(r): r for r in rows}
    last = max((i for i, x in enumerate(lines) if x.startswith("|")), default=len(lines) - 1)
    for i, x in enumerate(lines):
        if x.startswith("|") and _cell(x) in new:
            lines[i] = new.pop(_cell(x))
    lines[last + 1 : last + 1] = list(new.values())
    lead = note.split(":", 1)[0]
    lines = [x for x in lines if not x.startswith(lead)]
    while lines and not lines[-1].strip():
        lines.pop()
    lines += ["", note]
    return head + start + "\n" + "\n".join(lines) + "\n" + end + tail


def _cell(row):
    return row.strip().strip("|").split("|")[0].strip()
