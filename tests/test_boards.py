"""Board facts live in one place, the board's file: every list the host keeps is derived
from ``boards/*.py`` (``qfota_tools.boards``), and these tests fail when a board lacks a
declaration or a list drifts."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from qfota_tools import boards, build_mpy, build_package, cli
from qfota_tools.commands import deploy

REPO = Path(__file__).resolve().parents[1]
NAMES = boards.names()


def test_every_board_is_a_file_and_declares_what_the_host_needs():
    assert NAMES == sorted(p.stem for p in (REPO / "boards").glob("*.py"))
    assert {"rp2", "esp32", "stm32", "unix"} <= set(NAMES)
    for name in NAMES:
        facts = boards.facts(name)
        assert sorted(facts) == sorted(boards.DECLARATIONS), name


def test_a_board_without_a_declaration_is_refused(tmp_path):
    folder = tmp_path / "boards"
    folder.mkdir()
    text = (REPO / "boards" / "stm32.py").read_text()
    (folder / "mine.py").write_text(text.replace('MPY_ARCH = "armv7emsp"', "MPY_ARCH = arch()"))
    with pytest.raises(boards.BoardError, match="declares no MPY_ARCH"):
        boards.facts("mine", folder)
    (folder / "mine.py").write_text(text.replace("MPY_LINES = False", 'MPY_LINES = "no"'))
    with pytest.raises(boards.BoardError, match="MPY_LINES must be a bool"):
        boards.facts("mine", folder)
    with pytest.raises(boards.BoardError, match="no board file boards/nosuch.py"):
        boards.facts("nosuch", folder)


def test_the_cli_offers_exactly_the_boards():
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for command in ("deploy",):
        board = next(a for a in sub.choices[command]._actions if a.dest == "board")
        assert sorted(board.choices) == NAMES, command
    assert sorted(deploy.BOARDS) == NAMES


def test_each_board_compiles_for_its_arch(tmp_path):
    src = REPO / "firmware" / "qfota" / "errors.py"
    sizes = {}
    for name in NAMES:
        facts = boards.facts(name)
        out = build_mpy.compile_file(src, tmp_path / (name + ".mpy"), "qfota/errors.py", name)
        assert build_mpy.header(out)[0] == build_mpy.MPY_VERSION
        sizes[facts["MPY_LINES"]] = out.stat().st_size
    assert sizes[False] < sizes[True]  # no line numbers: smaller


def test_each_board_has_its_pinned_stubs_and_a_pyright_project():
    pinned = [
        line.split("==")[0]
        for line in (REPO / "requirements-stubs.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    ]
    for name in NAMES:
        facts = boards.facts(name)
        assert facts["STUBS"] in pinned, name
        project = REPO / boards.pyright_config(name)
        config = boards.read_jsonc(project)
        base = project.parent
        assert (base / config["stubPath"]).resolve() == (REPO / "typings" / name), name
        assert any(
            (base / inc).resolve() == REPO / "boards" / (name + ".py") for inc in config["include"]
        )
    # Every pyright project belongs to a board (none left over from a removed board).
    assert sorted(p.stem for p in (REPO / "boards" / "pyright").glob("*.json")) == sorted(
        n for n in NAMES if boards.pyright_config(n) != "pyrightconfig.json"
    )


def test_the_makefile_reads_the_board_files():
    text = (REPO / "Makefile").read_text()
    assert "boards.py stubs" in text and "boards.py pyright" in text
    for name in NAMES:  # no hand-kept list of boards
        assert "boards/pyright/%s.json" % name not in text
    out = subprocess.run(
        [sys.executable, str(REPO / "host_tools" / "qfota_tools" / "boards.py"), "stubs"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0
    assert [line.split()[0] for line in out.stdout.splitlines()] == NAMES


def test_each_board_runs_packages_that_exist_and_fit_together(tmp_path):
    known = {p.parent.name for p in (REPO / "firmware" / "packages").glob("*/manifest.py")}
    for name in NAMES:
        declared = boards.facts(name)["PACKAGES"]
        assert set(declared) <= known, name
        assert [p.name for p in deploy.packages(name)][0] == "qfota-core"
    # A package for one port only goes to that port's board alone.
    for pkg, port in build_package.PORT_ONLY.items():
        assert [n for n in NAMES if pkg in boards.facts(n)["PACKAGES"]] == [port]
    # A board declaring a package without the one it requires is refused.
    shutil.copytree(REPO / "firmware", tmp_path / "firmware")
    (tmp_path / "boards").mkdir()
    text = (REPO / "boards" / "stm32.py").read_text()
    (tmp_path / "boards" / "stm32.py").write_text(
        text.replace('PACKAGES = ("qfota-core", "qfota-app")', 'PACKAGES = ("qfota-app",)')
    )
    with pytest.raises(deploy.DeployError, match="qfota-app requires qfota-core"):
        deploy.plan("stm32", repo=tmp_path)


def test_boards_readme_documents_every_board_and_settings():
    text = (REPO / "boards" / "README.md").read_text()
    for name in NAMES:
        assert "`%s`" % name in text or "| %s |" % name in text, name
    for decl in list(boards.DECLARATIONS) + ["SETTINGS"]:
        assert "`%s`" % decl in text, decl


def test_board_settings_are_app_settings():
    import re

    from qfota import app

    for name in NAMES:
        settings = boards.constants(REPO / "boards" / (name + ".py")).get("SETTINGS", {})
        assert set(settings) <= set(app.defaults()), name
    # boards/README.md lists the settings once, all of them.
    text = (REPO / "boards" / "README.md").read_text()
    listed = re.search(r"the keys of\s+`qfota.app.defaults\(\)` \(([^)]*)\)", text)
    assert listed, "boards/README.md does not list the keys of qfota.app.defaults()"
    assert re.findall(r"`(\w+)`", listed.group(1)) == list(app.defaults())
