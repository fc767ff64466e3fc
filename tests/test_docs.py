"""The docs against the code, so that neither drifts from the other unnoticed.

- No file cites the team's old notes file (a user of the package has no such file): the
  facts the code relies on are in docs/FIELD.md, cited as ``docs/FIELD.md, "<section>"``,
  and every such citation names a section that exists.
- docs/FIELD.md's "Waits" and the README's list of defaults give every wait of
  ``qfota.defaults.TIMEOUTS`` with its default.
- Every test the docs name exists; every ``--option`` a ``--help`` text names exists there.
- The README's package lists, deploy example and FTP password rules match the code.
"""

import argparse
import re
from pathlib import Path

import pytest
from conftest import repo_files

from qfota.defaults import TIMEOUTS
from qfota_tools import build_package, cli
from qfota_tools.commands import deploy

ROOT = Path(__file__).resolve().parent.parent
FIELD = ROOT / "docs" / "FIELD.md"
SECTIONS = (
    "URC shapes",
    "Echo and boot",
    "Error codes beyond the note",
    "Waits",
    "UART per port",
    "Wiring",
    "MicroPython",
    "mpremote",
    "HTTP AT commands",
)
DOCS = sorted((ROOT / "docs").glob("*.md")) + [
    ROOT / "README.md",
    ROOT / "DEVELOPERS.md",
    ROOT / "boards" / "README.md",
]


def _tree():
    """Every file of the tree (tracked, or new and not ignored) with its text."""
    for rel in repo_files():
        try:
            yield rel, (ROOT / rel).read_text()
        except UnicodeDecodeError:
            continue


def _sections():
    return re.findall(r"^## (.+)$", FIELD.read_text(), re.M)


def _section(title):
    text = FIELD.read_text()
    start = text.index("\n## %s\n" % title)
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else len(text)]


def test_nothing_cites_the_old_notes_file():
    needle = "FIELD" + "_NOTES"  # spelled apart so this file does not match itself
    found = [rel for rel, text in _tree() if needle in text]
    assert found == [], 'cite docs/FIELD.md, "<section>" instead: %s' % found


def test_field_md_has_its_sections_and_citations_name_them():
    assert [s for s in SECTIONS if s not in _sections()] == []
    cited = {}
    for rel, text in _tree():
        for m in re.finditer(r'docs/FIELD\.md,\s*(?:#\s*)?"([^"]+)"', text):
            # a citation wrapped across lines (and a comment's "#") is still one title
            title = " ".join(m.group(1).replace("#", " ").split())
            cited.setdefault(title, []).append(rel)
    cited.pop("<section>", None)  # how to cite, as the docs say it
    assert cited, "no citation of docs/FIELD.md found: the pattern is wrong"
    unknown = {title: files for title, files in cited.items() if title not in _sections()}
    assert unknown == {}, "cited sections docs/FIELD.md does not have"


def _ms(value, unit):
    return int(value) * {"s": 1000, "min": 60_000}[unit]


def test_every_wait_is_documented_with_its_default():
    rows = re.findall(r"^\| `(\w+)` \| (\d+) (s|min) \|", _section("Waits"), re.M)
    documented = {name + "_ms": _ms(v, u) for name, v, u in rows}
    assert documented == TIMEOUTS, 'docs/FIELD.md, "Waits" differs from TIMEOUTS'
    readme = (ROOT / "README.md").read_text()
    bullet = readme[readme.index("- `--timeout NAME=SECONDS`") :]
    bullet = bullet[: bullet.index("\n- ")]
    listed = {n + "_ms": _ms(v, u) for n, v, u in re.findall(r"(\w+) (\d+) (s|min)\b", bullet)}
    assert listed == TIMEOUTS, "README's --timeout defaults differ from TIMEOUTS"


def _test_refs(text):
    """(test file, pattern of the name or None) for every ``test_x.py[::name]`` and ``::name`` (same file
    as the one before) in ``text``; ``*[case_x]`` names an engine case."""
    last = None
    for m in re.finditer(r"(?:(tests/)?(test_\w+)\.py)?::(\*|\w+)(?:\[([^\]]*)\])?", text):
        if m.group(2):
            last = m.group(2)
        if m.group(3) == "*":  # test_engine.py::*[case_x]: a case, or cases by prefix
            case = (m.group(4) or "").strip("*")
            if not case.startswith("case_"):  # test_x.py::*[*-note]: every test of the file
                yield last, None
            elif case != "case_x":  # the docs' own placeholder
                yield "engine_cases", case + (r"\w*" if m.group(4).endswith("*") else r"\b")
        elif last:
            yield last, re.escape(m.group(3)) + r"\b"
    for m in re.finditer(r"\b(test_\w+)\.py\b", text):
        yield m.group(1), None


def test_docs_name_only_tests_that_exist():
    missing = []
    checked = 0
    for doc in DOCS:
        for module, name in _test_refs(doc.read_text()):
            path = ROOT / "tests" / (module + ".py")
            checked += 1
            if not path.is_file():
                missing.append("%s: %s.py" % (doc.name, module))
            elif name and not re.search(r"^def " + name, path.read_text(), re.M):
                missing.append("%s: %s.py::%s" % (doc.name, module, name))
    assert checked > 20, "the docs' test references were not found: the pattern is wrong"
    assert missing == []


def _subparsers():
    parser = cli.build_parser()
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return {name: sub for name, sub in action.choices.items()}


def test_help_texts_name_only_options_they_have():
    subs = _subparsers()
    assert set(subs) >= {"update", "recover", "info", "sim", "stage", "deploy"}
    wrong = []
    for name, sub in sorted(subs.items()):
        visible = {o for a in sub._actions if a.help != argparse.SUPPRESS for o in a.option_strings}
        for option in set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", sub.format_help())):
            if option not in visible:
                wrong.append("qfota %s --help: %s" % (name, option))
    assert wrong == []


def test_readme_package_lists_match_the_manifests():
    readme = (ROOT / "README.md").read_text()
    pkgs = {p.name: p for board in ("rp2", "unix") for p in build_package.packages(board=board)}
    compared = 0
    for name, described in re.findall(r"\*\*(qfota-[a-z]+)\*\* \(([^)]*)\)", readme):
        listed = set(re.findall(r"`(\w+\.py)`", described))
        if listed:  # a description that names files names all of them
            files = {Path(local).name for _dev, local in pkgs[name].files} - {"__init__.py"}
            assert listed == files, name
            compared += 1
    assert compared >= 3


def test_deploy_examples_count_what_deploy_installs():
    count = len(deploy.plan("rp2"))
    texts = ((ROOT / "README.md").read_text(), deploy.__doc__)
    numbers = [int(n) for t in texts for n in re.findall(r"deployed board rp2: (\d+) installed", t)]
    numbers += [
        int(n) for n in re.findall(r"up to date: (\d+) files \(board rp2\)", deploy.__doc__)
    ]
    assert len(numbers) >= 3 and set(numbers) == {count}


# The README's list of what an FTP password may not hold: (its words, a sample).
PASSWORD_REFUSED = (
    ("CR", "\r"),
    ("LF", "\n"),
    ("double\n  quote", '"'),
    ("control", "\t"),
    ("non-ASCII", "\u00e9"),
    ("`/`", "/"),
    ("`,`", ","),
    ("a space", " "),
)


def _password_refused(ch, capsys, monkeypatch):
    monkeypatch.setenv("QFOTA_TEST_PASSWORD", "pass" + ch + "word")
    argv = ["update", "--port", "/dev/nonexistent-qfota", "--url", "ftp://fota@127.0.0.1/f.bin"]
    status = cli.main(argv + ["--password-env", "QFOTA_TEST_PASSWORD"])
    out = capsys.readouterr().out
    assert status == 2, out  # refused, or the port cannot be opened: nothing sent either way
    return "password holds" in out


def test_readme_says_which_characters_an_ftp_password_may_not_hold(capsys, monkeypatch):
    readme = (ROOT / "README.md").read_text()
    rules = readme[readme.index("- FTP password off the command line") :]
    rules = rules[: rules.index("\n- ")]
    for words, ch in PASSWORD_REFUSED:
        assert words in rules, words
        assert _password_refused(ch, capsys, monkeypatch), repr(ch)
    # ... and nothing else printable is refused: the list is complete.
    refused = {ch for ch in map(chr, range(32, 127)) if _password_refused(ch, capsys, monkeypatch)}
    assert refused == {ch for _w, ch in PASSWORD_REFUSED if 32 <= ord(ch) < 127}


@pytest.mark.parametrize("title", SECTIONS)
def test_field_md_sections_are_not_empty(title):
    assert len(_section(title).split()) > 40


# Where a path the docs name may start: the repository, or a package's folder.
_BASES = ("", "firmware/", "host_tools/", "host_tools/qfota_tools/")


def test_docs_name_only_files_that_exist():
    missing = []
    checked = 0
    for doc in DOCS:
        for path in set(
            re.findall(r"`([\w.-]+(?:/[\w.-]+)+\.(?:py|md|json|mjs))`", doc.read_text())
        ):
            checked += 1
            if not any((ROOT / (base + path)).is_file() for base in _BASES):
                missing.append("%s: %s" % (doc.name, path))
    assert checked > 20, "the docs' file references were not found: the pattern is wrong"
    assert missing == []


def test_readme_usage_names_only_options_the_commands_have():
    readme = (ROOT / "README.md").read_text()
    block = readme[readme.index("qfota update --port DEV") :]
    block = block[: block.index("```")]
    subs = _subparsers()
    wrong = []
    command = None
    for line in block.splitlines():
        if line.startswith("qfota "):
            command = line.split()[1]
        options = {o for a in subs[command]._actions for o in a.option_strings}
        for option in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", line):
            if option not in options:
                wrong.append("qfota %s %s" % (command, option))
    assert command == "info" and wrong == []


def test_dry_run_examples_are_what_deploy_plans(capsys):
    texts = [p.read_text() for p in DOCS] + [deploy.__doc__]
    lines = {m for t in texts for m in re.findall(r"^ *(board \w+ gets .*)$", t, re.M)}
    assert lines, "no dry-run example found: the pattern is wrong"
    for line in sorted(lines):
        board = line.split()[1]
        mpy = ["--mpy"] if "board.mpy" in line else []
        assert cli.main(["deploy", "--board", board, *mpy, "--dry-run"]) == 0
        assert capsys.readouterr().out.strip() == line.strip()
