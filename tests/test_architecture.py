"""The engine's shape, checked: no import circles, and the lists a newcomer would have to
keep by hand are derived from the rows (each test fails when one of them drifts)."""

import ast
from pathlib import Path

import pytest

import qfota
from qfota import info, recovery, steps, urls
from qfota import session as S
from qfota.at import SAFE, TRANSFER
from qfota.checks import OPTIONS, why
from qfota.defaults import TIMEOUTS
from qfota.steps import stages

ENGINE = Path(qfota.__file__).resolve().parent
# Every step's row: the update's (qfota.steps), URL mode's (qfota.urls), info's (qfota.info).
ROWS = {**steps.STEPS, **urls.STEPS, **info.STEPS}


def _imports(path):
    """The ``qfota`` modules ``path`` imports, at the top or inside a function (a lazy
    import closes a circle too), ``__import__("qfota.x")`` included."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "qfota":
                found.update(a.name for a in node.names)
            elif node.module.startswith("qfota."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("qfota."):
                    found.add(a.name.split(".")[1])
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "__import__"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and str(node.args[0].value).startswith("qfota.")
        ):
            found.add(str(node.args[0].value).split(".")[1])
    return found


def import_graph():
    mods = {p.stem: p for p in ENGINE.glob("*.py") if p.stem != "__init__"}
    return {m: sorted(_imports(p) & set(mods) - {m}) for m, p in mods.items()}


def find_cycle(graph):
    """One import circle as a list of modules (first == last), or None."""
    state = {}

    def visit(m, path):
        state[m] = "open"
        for n in graph[m]:
            if state.get(n) == "open":
                return path[path.index(n) :] + [n]
            if n not in state:
                found = visit(n, path + [n])
                if found:
                    return found
        state[m] = "done"
        return None

    for m in sorted(graph):
        if m not in state:
            found = visit(m, [m])
            if found:
                return found
    return None


def test_the_engine_has_no_import_circle():
    graph = import_graph()
    assert graph["session"], "the walk found no imports: it proves nothing"
    cycle = find_cycle(graph)
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_the_circles_the_engine_had():
    # session -> checks -> urls -> session, and session <-> recovery (issue 20).
    cycle = find_cycle({"session": ["checks"], "checks": ["urls"], "urls": ["session"]})
    assert cycle and set(cycle) == {"session", "checks", "urls"}, cycle
    assert find_cycle({"session": ["recovery"], "recovery": ["session"]})
    assert find_cycle({"a": ["b"], "b": [], "c": ["a", "b"]}) is None


def test_readers_neither_import_nor_move_the_session():
    # The readers return what they read; the session alone moves its state.
    graph = import_graph()
    for m in ("answers", "urls", "recovery", "cut", "checks", "steps"):
        assert "session" not in graph[m], m


# The session's machine: where it is and what it runs. Only session.py assigns these
# (h11's _state.py); the other modules return what they read or decide.
MACHINE = {"state", "error", "_stage", "result", "streaming", "opt", "_rows", "_args"}
MACHINE |= {"_plan", "_verify", "_phase", "_i", "_deadline", "_out", "_wait_key"}
_MUTATORS = {"pop", "update", "clear", "append", "insert", "remove", "setdefault"}


def machine_writes(source):
    """``(line, what)`` for each place ``source`` moves a session's machine: an assignment
    to ``s.<attr>``/``session.<attr>`` of ``MACHINE``, ``setattr`` on one, or a call that
    changes one in place (``s._rows.pop(...)``)."""

    def machine(node):
        return (
            isinstance(node, ast.Attribute)
            and node.attr in MACHINE
            and (
                isinstance(node.value, ast.Name)
                and node.value.id in ("s", "session")
                or isinstance(node.value, ast.Attribute)
                and node.value.attr == "session"
            )
        )

    found = []
    for node in ast.walk(ast.parse(source)):
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in _MUTATORS and machine(node.func.value):
                found.append((node.lineno, ast.unparse(node.func)))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id == "setattr" and node.args and isinstance(node.args[0], ast.Name):
                if node.args[0].id in ("s", "session"):
                    found.append((node.lineno, "setattr(%s, ...)" % node.args[0].id))
        for t in targets:
            for el in t.elts if isinstance(t, ast.Tuple) else [t]:
                if machine(el):
                    found.append((node.lineno, ast.unparse(el)))
    return found


def test_only_the_session_moves_its_machine():
    for path in sorted(ENGINE.glob("*.py")):
        if path.stem != "session":
            found = machine_writes(path.read_text())
            assert not found, "%s moves the session: %s" % (path.name, found)


def test_the_machine_writes_finder_finds_what_recovery_did():
    # recovery.begin, before: it cut the session's rows and options itself (issue 20).
    before = """
def begin(s, now):
    for done in s._plan:
        s._rows.pop(done, None)
    s._args = {}
    s.opt = {"target": s.opt.get("target")}
    s.state, n = "STREAM", 1
    setattr(s, "error", None)
"""
    found = sorted(what for _line, what in machine_writes(before))
    assert found == ["s._args", "s._rows.pop", "s.opt", "s.state", "setattr(s, ...)"], found
    # reading is not moving
    assert machine_writes("def f(s):\n    rows = dict(s._rows)\n    return s.opt['cid']\n") == []


def test_a_session_in_its_at_phase_holds_none_of_the_urc_phase():
    # The URC phase's tables are qfota.recovery's, loaded with its rules: on MicroPython a
    # table is heap, and the AT phase is where the heap peaks (README, "Memory").
    tables = (recovery.URC_STATES, recovery.URC_NEXT, recovery.KINDS)
    for kw in ({"length": 1000}, {"url": "http://h/a.bin"}, {"recover": True}):
        s = S.Session(**kw)
        held = [
            name
            for name, v in vars(s).items()
            if isinstance(v, dict) and any(key in v for t in tables for key in t)
        ]
        assert not held, (kw, held)


# ---------------------------------------------------------------- stages
def all_stages():
    """Every stage a session reports: its rows', the URC states, the machine's."""
    out = {row[0] for row in ROWS.values()}
    out |= set(recovery.URC_STATES)
    out |= {nxt for nxt in recovery.URC_NEXT.values()} | {st for st, _k in recovery.URC_NEXT}
    return out


def test_every_stage_is_classified_once():
    cuts = {}
    for row in ROWS.values():
        cuts.setdefault(row[0], set()).add(row[6])
    for state, row in recovery.URC_STATES.items():
        cuts.setdefault(state, set()).add(row[1])
    for stage in all_stages():
        assert stage in cuts, "stage %s has no row saying what a cut there leaves" % stage
        assert len(cuts[stage]) == 1, "stage %s is classified twice: %s" % (stage, cuts[stage])
    assert set(stages(SAFE)) >= {"PREFLIGHT", "POWER", "SIGNAL", "FLOWCTRL", "PDP", "INFO"}
    assert set(stages(TRANSFER)) == {"QFOTADL", "FILESTART", "STREAM", "FILEEND"}


@pytest.mark.parametrize("stage", sorted(all_stages()))
def test_what_the_advice_and_the_journals_make_of_each_stage(stage):
    # A stage the rows call safe: Ctrl-C says nothing was sent, the app's journal does
    # not send it through recover() next time, the port journal does not listen.
    from qfota import runner
    from qfota.app import Journal
    from qfota.cut import advice

    kw = {"length": 1000}
    if stage == "RECOVER":
        kw["recover"] = True
    elif stage == "INFO":
        kw["info"] = True
    elif stage == "PDP":
        kw = {"url": "http://h/a.bin"}
    else:  # the steps options ask for: their stages
        kw.update(min_voltage_mv=3000, min_rssi=5)
    s = S.Session(**kw)
    s._set_stage(stage)
    j = Journal("/nonexistent/journal.json")
    j.data = {"state": "failed", "stage": stage}
    safe = stage in stages(SAFE)
    assert ("nothing was sent" in advice(s)) == safe, (stage, advice(s))
    assert j.in_flight == (not safe), stage
    assert (stage in runner.TRANSFER_STAGES) == (stage in stages(TRANSFER))


# ---------------------------------------------------------------- options
def sample(rule, default):
    """A valid value of ``rule`` other than ``default``."""
    kind = rule[0]
    if kind == "int":
        return rule[2] if default != rule[2] else rule[1]
    if kind == "urcs":
        return 7
    if kind == "one of":
        return [v for v in rule[1:] if v != default][0]
    if kind == "bool":
        return True
    if kind == "text":
        return "EC200TCNDAR02A07M16"
    return {"end_ms": 1234}


OPTION_ROWS = [row for row in OPTIONS]


@pytest.mark.parametrize("row", OPTION_ROWS, ids=[r[0] for r in OPTION_ROWS])
def test_every_option_reaches_the_session_from_the_cli(row, tmp_path, monkeypatch):
    # argparse -> validate -> run_options -> the engine's keyword -> the Session.
    from qfota import runner
    from qfota_tools import cli
    from qfota_tools.commands import update

    name, _flag, default, rule, mode, _gate = row
    flag = update.flag(row)
    value = sample(rule, default)
    assert why(rule, value) is None, (name, value)
    image = tmp_path / "a.bin"
    image.write_bytes(b"x" * 100)
    argv = ["update", "--port", "/dev/null"]
    argv += ["--url", "http://h/a.bin"] if mode == "url" else ["--image", str(image)]
    if rule[0] == "bool":
        argv.append(flag)
    elif name == "timeouts":
        argv += [flag, "end=1.234"]
    else:
        argv += [flag, str(value)]
    monkeypatch.setenv("QFOTA_STATE_DIR", str(tmp_path))
    opts = update.validate(cli.build_parser().parse_args(argv))
    got = {}

    class Engine:
        def update(self, port, **kw):
            got.update(kw)
            raise RuntimeError("stop")

    runner.run_options(opts, None, out=lambda *a: None, engine=Engine())
    assert got.get(name) == value, (name, got)
    # ... and the Session takes it as it is, with no keyword kept by hand.
    kw = {k: got[k] for k in runner.session_keys() if k in got}
    kw.update(length=100) if mode != "url" else kw.update(url="http://h/a.bin")
    s = S.Session(**kw)
    if name == "timeouts":  # given ones over the defaults
        assert s.opt[name] == {**TIMEOUTS, **value} != TIMEOUTS, s.opt[name]
    else:
        assert s.opt[name] == value, (name, s.opt[name])


def test_the_app_takes_every_option_but_the_manifests():
    from qfota import app

    names = {row[0] for row in OPTIONS}
    assert set(app.defaults()) >= names - set(app._FROM_MANIFEST)

    class Board:
        JOURNAL_PATH = "/nonexistent/qfota_journal.json"

    assert set(app.App(Board).options) == names - set(app._FROM_MANIFEST)


def test_a_gated_option_puts_its_step_in_the_plan():
    for name, _flag, _default, rule, _mode, gate in OPTIONS:
        if gate is None:
            continue
        step = gate[0]
        assert step in steps.STEPS, (name, step)
        assert steps.STEPS[step][5], "%s: the step %s reads nothing to gate" % (name, step)
        without = S.Session(length=100)
        with_it = S.Session(length=100, **{name: sample(rule, None)})
        assert step not in without._plan and step in with_it._plan, (name, with_it._plan)


def test_every_option_has_a_help_line_in_the_cli():
    # Written in commands/update.py's HELP, or made from the rule and the gate.
    from qfota_tools.commands.update import option_help

    for row in OPTIONS:
        text = option_help(row)
        assert text and "None" not in text, (row[0], text)
    rssi = [row for row in OPTIONS if row[0] == "min_rssi"][0]
    assert option_help(rssi) == "refuse when AT+CSQ reads less (0-31)", option_help(rssi)


def test_the_session_class_stays_under_350_lines():
    # Issue 20: ``Session`` was 709 lines; what is not its machine (the URC phase's rules,
    # the rare paths, what an answer means, the option checks) lives in modules loaded by
    # phase. A ratchet, so that it does not grow back.
    tree = ast.parse((ENGINE / "session.py").read_text())
    (cls,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Session"]
    assert cls.end_lineno - cls.lineno + 1 < 350, cls.end_lineno - cls.lineno + 1
