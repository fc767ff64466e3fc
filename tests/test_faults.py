"""The simulator's faults are one table (``model.FAULTS``): docs/FAULTS.md, the soak and the
end-to-end tests read it. These fail when the doc drifts from the rows, or names a test
that does not exist."""

import re
from pathlib import Path

import pytest

from qfota_tools.simulators.ec200 import model

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "FAULTS.md"


def doc_rows():
    """``{fault: outcome cell}`` of the doc's table of the modem's faults."""
    text = DOC.read_text()
    section = text.split("## Faults of the modem", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        m = re.fullmatch(r"`([a-z0-9-]+)`", cells[0]) if len(cells) >= 5 else None
        if m:
            rows[m.group(1)] = cells[2]
    return rows


@pytest.mark.parametrize("fault", model.FAULT_NAMES)
def test_the_doc_says_what_each_fault_ends_in(fault):
    rows = doc_rows()
    assert fault in rows, "docs/FAULTS.md has no row for the fault %s" % fault
    cell = rows[fault]
    want = model.fault_outcome(fault) or model.fault_outcome(fault, "http")
    if want is None:
        assert cell.startswith("succeeds"), (fault, cell)
        return
    stages, code, status, _text = want
    for stage in stages:
        assert "`%s`" % stage in cell, (fault, stage, cell)
    assert "**%d**" % status in cell, (fault, status, cell)
    if code is not None:
        assert str(code) in cell, (fault, code, cell)


def test_the_doc_names_no_fault_the_simulator_lacks():
    assert set(doc_rows()) <= set(model.FAULT_NAMES), set(doc_rows()) - set(model.FAULT_NAMES)


def test_every_test_the_doc_names_exists():
    text = DOC.read_text().split("## Faults of the modem", 1)[1]  # past the legend
    named = set(re.findall(r"(test_\w+\.py)::(\*|test_\w+)(?:\[([^\]]*)\])?", text))
    assert len(named) > 20, "the pattern found too few: it proves nothing"
    cases = (ROOT / "tests" / "engine_cases.py").read_text()
    for path, func, param in named:
        source = ROOT / "tests" / path
        assert source.exists(), "docs/FAULTS.md names %s, which does not exist" % path
        body = source.read_text()
        if func != "*":
            assert re.search(r"^def %s\(" % func, body, re.M), "%s::%s does not exist" % (
                path,
                func,
            )
        if path == "test_engine.py":
            case = (param or "").strip().replace("*", r"\w*")  # case_recover_*: some case
            assert re.search(r"^def %s\(" % case, cases, re.M), "no engine case %s" % param


def test_the_cli_lists_every_fault_with_its_help():
    from qfota_tools.simulators.ec200.cli import _fault_help

    text = _fault_help()
    for name, help_text, _file, _url in model.FAULTS:
        assert "%-20s %s" % (name, help_text) in text
