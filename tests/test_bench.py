"""The benchmarks' runner: one figure that misses or fails does not stop the others from
being measured and written, it is a row marked "no", and the command exits non-zero.

Fake figures only: nothing here measures anything (``make bench`` does).
"""

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import runner  # noqa: E402


def load(name):
    spec = importlib.util.spec_from_file_location("bench_" + name, ROOT / "bench" / (name + ".py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def fakes(calls):
    def ok(n):
        def fn():
            calls.append(n)
            return "value %d" % n, True

        return fn

    def missed():
        calls.append("missed")
        return "70.0%", False

    def failed():
        calls.append("failed")
        raise SystemExit("bench: update failed:\nsome output\nqfota: failed: FILEEND: 500: x | y")

    def broken():
        calls.append("broken")
        raise AssertionError("package corrupted")

    return [("a", ok(1)), ("b", missed), ("c", failed), ("d", broken), ("e", ok(2))]


def test_every_figure_is_measured_after_a_miss_or_a_failure(capsys):
    calls = []
    results = runner.measure(fakes(calls), log=lambda line: None)
    assert calls == [1, "missed", "failed", "broken", 2]
    assert [(r.name, r.met) for r in results] == [
        ("a", True), ("b", False), ("c", False), ("d", False), ("e", True),
    ]  # fmt: skip
    assert results[1].value == "70.0%" and results[1].why is None
    assert results[2].value is None
    assert results[2].why == "qfota: failed: FILEEND: 500: x / y"  # one line, no cell break
    assert results[3].why == "package corrupted"
    assert "some output" in capsys.readouterr().err  # the whole error, for the reader


def test_ctrl_c_still_ends_the_run():
    calls = []

    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        runner.measure([("x", interrupted), ("y", lambda: calls.append(1) or ("v", True))])
    assert calls == []


BLOCK = """# t

<!-- bench:start -->
Measured by `make bench` on 2026-11-30 (package: 1 bytes):

| figure | measured | target | met |
| --- | --- | --- | --- |
| 1. one | old 1 | t | yes |
| 2. two | old 2 | t | yes |
<!-- bench:end -->
after
"""


@pytest.fixture
def bench_run(tmp_path, monkeypatch):
    run = load("run")
    readme = tmp_path / "README.md"
    readme.write_text(BLOCK)
    monkeypatch.setattr(run, "ROOT", tmp_path)
    monkeypatch.setattr(run, "README", readme)
    monkeypatch.setattr(run, "make_image", lambda path, size: path)
    return run, readme


def test_run_writes_every_row_marks_misses_no_and_exits_1(bench_run, monkeypatch):
    run, readme = bench_run
    calls = []
    figs = [
        (i + 1, "%d. %s" % (i + 1, name), ">= t", fn) for i, (name, fn) in enumerate(fakes(calls))
    ]
    monkeypatch.setattr(run, "figures", lambda image: figs)
    assert run.main([]) == 1
    assert calls == [1, "missed", "failed", "broken", 2]
    text = readme.read_text()
    assert text.endswith("<!-- bench:end -->\nafter\n") and "old 1" not in text
    assert "| 1. a | value 1 | >= t | yes |" in text
    assert "| 2. b | 70.0% | >= t | no |" in text
    assert "| 3. c | not measured: qfota: failed: FILEEND: 500: x / y | >= t | no |" in text
    assert "| 4. d | not measured: package corrupted | >= t | no |" in text
    assert "| 5. e | value 2 | >= t | yes |" in text


def test_run_only_rewrites_its_own_rows(bench_run, monkeypatch):
    run, readme = bench_run
    figs = [
        (1, "1. one", "t", lambda: ("new 1", True)),
        (2, "2. two", "t", lambda: ("new 2", False)),
    ]
    monkeypatch.setattr(run, "figures", lambda image: figs)
    assert run.main(["--only", "2"]) == 1
    assert run.main(["--only", "2"]) == 1  # the note is replaced, not repeated
    text = readme.read_text()
    assert "| 1. one | old 1 | t | yes |" in text and "| 2. two | new 2 | t | no |" in text
    assert "old 2" not in text and text.count("Re-measured alone") == 1
    assert "Re-measured alone: figure 2 by `python bench/run.py --only 2`" in text
    assert text.index("| 2. two") < text.index("Re-measured") < text.index("<!-- bench:end")
    with pytest.raises(SystemExit):
        run.main(["--only", "9"])


def test_run_has_no_engine_vs_bare_loop_figure(tmp_path):
    # Figure 2 of old measured the pty's noise (74-107% from run to run): gone.
    run = load("run")
    names = [name for _n, name, _t, _fn in run.figures(tmp_path / "x.bin")]
    assert names and not any("bare" in n or "engine vs" in n for n in names), names
    assert [n for n, *_ in run.figures(tmp_path / "x.bin")] == [1, 1, 2, 2, 3, 4]
    assert not hasattr(run, "overhead")


def test_pico_bench_goes_on_after_a_figure_fails(tmp_path, monkeypatch):
    pb = load("pico_bench")
    readme = tmp_path / "README.md"
    readme.write_text("x\n%s\nold\n%s\ny\n" % (pb.START, pb.END))
    calls = []

    def fails():
        calls.append("fails")
        raise SystemExit("deploy failed: no room")

    def later():
        calls.append("later")
        return [("stage", "**6.1x**")], True

    monkeypatch.setattr(pb, "README", readme)
    monkeypatch.setattr(pb, "find_fixtures", lambda: ("fw", "rom"))
    monkeypatch.setattr(
        pb, "figures", lambda fw, rom, tmp: [("1. rate", fails), ("4. stage", later)]
    )
    monkeypatch.setattr(sys, "argv", ["pico_bench.py"])
    assert pb.main() == 1
    assert calls == ["fails", "later"]
    text = readme.read_text()
    assert "| 1. rate | **no**: not measured: deploy failed: no room |" in text
    assert "| stage | **6.1x** |" in text and "old" not in text and text.endswith("\ny\n")
