"""``qfota deploy``, the packages (manifests, package.json) and the .mpy build, against the
simulated board."""

import hashlib
import json
import subprocess
from pathlib import Path

import pytest
from cli_rig import run as qfota

from qfota_tools import build_mpy, build_package
from qfota_tools.commands import deploy
from qfota_tools.simulators.board_sim import BoardSim, mpremote, mpremote_argv

pytestmark = pytest.mark.timeout(120)

REPO = build_package.REPO
ENGINE = sorted(p.name for p in (REPO / "firmware" / "qfota").glob("*.py"))
HOST_ONLY = ["info.py", "relay.py", "runner.py", "tty.py"]  # unix port / host only: never on an MCU
SHIPPED = sorted(set(ENGINE) - set(HOST_ONLY))  # what an MCU board gets
PACKAGES = ("qfota-core", "qfota-url", "qfota-http", "qfota-app", "qfota-fleet")  # for every board
UNIX = "qfota-unix"  # the unix port only (boards/unix.py imports qfota.tty and qfota.runner)


def snapshot(root):
    """{relative path: sha256} of every file on the simulated board."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(Path(root).rglob("*"))
        if p.is_file()
    }


def package_json(name=None):
    folder = REPO if name is None else REPO / "firmware" / "packages" / name
    return folder / "package.json"


def test_generated_files_are_fresh():
    # Every package.json (root and per package) and every manifest's version.
    assert build_package.stale() == [], "stale: run python -m qfota_tools.build_package"
    assert build_package.main(["--check"]) == 0


def test_packages_split_the_engine():
    pkgs = {p.name: p for p in build_package.packages(board="unix")}
    assert sorted(pkgs) == sorted(PACKAGES + (UNIX,))
    assert sorted(p.name for p in build_package.packages(board="rp2")) == sorted(PACKAGES)
    assert [p.name for p in build_package.packages()][0] == "qfota-core"  # install order
    assert (REPO / "firmware" / "packages" / "qfota-core" / "manifest.py").is_file()
    assert pkgs["qfota-url"].requires == ["qfota-core"]
    assert pkgs["qfota-app"].requires == ["qfota-core"]
    assert pkgs["qfota-core"].requires == []
    assert pkgs[UNIX].requires == ["qfota-core"]
    files = {name: sorted(dev for dev, _l in p.files) for name, p in pkgs.items()}
    assert files["qfota-url"] == ["qfota/urls.py"]
    assert files["qfota-app"] == ["main.py", "qfota/app.py"]
    assert "qfota/__init__.py" in files["qfota-core"] and "qfota/driver.py" in files["qfota-core"]
    assert files[UNIX] == ["qfota/" + n for n in HOST_ONLY]
    every = sorted(dev for f in files.values() for dev in f)
    assert every == sorted(["main.py"] + ["qfota/" + n for n in ENGINE])
    assert sorted(dev for dev, _l in build_package.urls()) == sorted(
        ["main.py"] + ["qfota/" + n for n in SHIPPED]
    )
    for p in pkgs.values():
        assert p.meta["description"] and p.meta["license"] == "MIT"


def test_one_version_everywhere():
    import qfota

    assert build_package.version() == qfota.__version__
    for p in build_package.packages():
        assert p.version == qfota.__version__, p.name
    for name in (None,) + PACKAGES + (UNIX,):
        assert json.loads(package_json(name).read_text())["version"] == qfota.__version__


def test_a_manifest_version_not_the_package_version_is_stale(tmp_path):
    import shutil

    shutil.copytree(REPO / "firmware", tmp_path / "firmware")
    (tmp_path / "package.json").write_text((REPO / "package.json").read_text())
    assert build_package.stale(tmp_path) == []
    manifest = tmp_path / "firmware" / "packages" / "qfota-url" / "manifest.py"
    manifest.write_text(manifest.read_text().replace('version="', 'version="9.9.9-'))
    assert build_package.stale(tmp_path) == [manifest.resolve()]
    assert (
        'version="%s"' % build_package.version(tmp_path)
        in build_package.outputs(tmp_path)[manifest.resolve()]
    )


def test_manifest_mistakes_are_refused(tmp_path):
    import shutil

    shutil.copytree(REPO / "firmware", tmp_path / "firmware")
    url = tmp_path / "firmware" / "packages" / "qfota-url" / "manifest.py"
    text = url.read_text()
    url.write_text(text.replace('files=("urls.py",)', 'files=("urls.py", "app.py")'))
    with pytest.raises(build_package.ManifestError, match="qfota/app.py is in both"):
        build_package.packages(tmp_path)
    url.write_text(text.replace('require("qfota-core")', 'require("qfota-nosuch")'))
    with pytest.raises(build_package.ManifestError, match="requires qfota-nosuch"):
        build_package.packages(tmp_path)
    url.write_text(text.replace('"urls.py"', '"gone.py"'))
    with pytest.raises(build_package.ManifestError, match="no such file"):
        build_package.packages(tmp_path)


def test_mip_install_of_each_package(board, tmp_path):
    # The packages' own package.json, in install order, from a folder that is not the
    # repository: their urls resolve against the package.json, not mpremote's cwd.
    root, dev = board
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    argv = [*mpremote_argv(), "connect", dev, "mip", "install"]
    argv += [str(package_json(name)) for name in PACKAGES]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=cwd)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert sorted(p.name for p in (root / "lib" / "qfota").iterdir()) == SHIPPED
    assert (root / "lib" / "main.py").read_bytes() == (REPO / "firmware/main.py").read_bytes()
    code = "import qfota.app, qfota.urls, qfota.driver; print(qfota.app.__file__)"
    assert mpremote(dev, "exec", code).stdout.strip() == "/lib/qfota/app.py"


def test_mip_install_of_the_core_alone_imports(board):
    root, dev = board
    mpremote(dev, "mip", "install", str(package_json("qfota-core")))
    names = sorted(p.name for p in (root / "lib" / "qfota").iterdir())
    shipped_elsewhere = {
        "app.py",
        "urls.py",
        "action.py",
        "ddi.py",
        "deployment.py",
        "swu.py",
        "fleet.py",
        "fleetdl.py",
        "fleetupd.py",
        "serve.py",
        "servecfg.py",
        "httpat.py",
        "httpcfg.py",
        "httpreq.py",
        "httptail.py",
        "httpdrv.py",
    }
    assert names == sorted(set(SHIPPED) - shipped_elsewhere)
    code = "import qfota.driver, qfota.uart, qfota.report; print(qfota.driver.__file__)"
    assert mpremote(dev, "exec", code).stdout.strip() == "/lib/qfota/driver.py"


def test_mip_install_of_root_package_json(board):
    root, dev = board
    mpremote(dev, "mip", "install", str(package_json()))
    listed = json.loads(package_json().read_text())["urls"]
    assert sorted("qfota/" + p.name for p in (root / "lib" / "qfota").iterdir()) == sorted(
        dev for dev, _local in listed if dev.startswith("qfota/")
    )
    assert sorted(p.name for p in (root / "lib" / "qfota").iterdir()) == SHIPPED
    out = mpremote(dev, "exec", "import qfota.errors; print(qfota.errors.__file__)").stdout
    assert out.strip() == "/lib/qfota/errors.py"


def test_deploy_twice(board):
    root, dev = board
    first = qfota("deploy", "--board", "unix", "--device", dev)
    assert first.returncode == 0, first.stderr
    last, report = first.stdout.splitlines()[-2:]
    assert last.startswith("deployed board unix: %d installed" % (len(ENGINE) + 2))
    # The closing line: what is on the board, as the board lists it.
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert report.startswith("on the board: %d files, %s bytes (qfota/ %d files " % (
        len(ENGINE) + 2, "{:,}".format(size), len(ENGINE)))  # fmt: skip
    assert "(qfota-core, " in last and all(name in last for name in PACKAGES + (UNIX,))
    files = snapshot(root)
    assert files["board.py"] == hashlib.sha256((REPO / "boards/unix.py").read_bytes()).hexdigest()
    assert sorted(k for k in files if k.startswith("qfota/")) == ["qfota/" + n for n in ENGINE]
    assert files["main.py"] == hashlib.sha256((REPO / "firmware/main.py").read_bytes()).hexdigest()
    second = qfota("deploy", "--board", "unix", "--device", dev)
    assert second.returncode == 0, second.stderr
    assert second.stdout.startswith("up to date")
    # The same files and bytes (the host disk's free space moves with other work).
    assert second.stdout.splitlines()[-1].split(";")[0] == report.split(";")[0]
    assert snapshot(root) == files
    out = mpremote(dev, "exec", "import qfota.errors; print(qfota.errors.__file__)").stdout
    assert out.strip() == "qfota/errors.py"


def test_deploy_mpy_replaces_sources(board):
    root, dev = board
    assert qfota("deploy", "--board", "unix", "--device", dev).returncode == 0
    proc = qfota("deploy", "--board", "unix", "--mpy", "--device", dev)
    assert proc.returncode == 0, proc.stderr
    names = sorted(p.name for p in (root / "qfota").iterdir())
    assert names == sorted(n[:-3] + ".mpy" for n in ENGINE)
    # The board file too: board.mpy replaces board.py (which would shadow it).
    assert (root / "board.mpy").is_file() and not (root / "board.py").exists()
    assert "removed /board.py" in proc.stdout.splitlines()
    code = "import qfota.errors, board; print(qfota.errors.__file__, board.__file__)"
    assert mpremote(dev, "exec", code).stdout.split() == ["qfota/errors.mpy", "board.mpy"]
    files = snapshot(root)
    assert qfota("deploy", "--board", "unix", "--mpy", "--device", dev).stdout.startswith("up to")
    assert snapshot(root) == files


def test_deploy_for_an_mcu_leaves_out_the_unix_modules(board):
    # An MCU board deployed before the split carries the unix-only modules: they go.
    root, dev = board
    (root / "qfota").mkdir()
    for name in HOST_ONLY:
        (root / "qfota" / name).write_text("# old\n")
    proc = qfota("deploy", "--board", "rp2", "--device", dev)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-2].endswith(
        "(qfota-core, qfota-app, qfota-http, qfota-fleet, qfota-url %s)" % build_package.version()
    )
    assert sorted(p.name for p in (root / "qfota").iterdir()) == SHIPPED
    assert sorted("removed /qfota/" + n for n in HOST_ONLY) == sorted(
        line for line in proc.stdout.splitlines() if line.startswith("removed")
    )
    plan = deploy.plan("rp2", mpy=True)
    assert sorted(d for d, _l in plan if d.startswith("qfota/")) == sorted(
        "qfota/" + n[:-3] + ".mpy" for n in SHIPPED
    )


def test_deploy_refuses_missing_board_file(tmp_path):
    with pytest.raises(deploy.DeployError, match="no board file boards/rp2.py"):
        deploy.plan("rp2", repo=tmp_path)
    proc = qfota("deploy", "--board", "nosuch", "--device", "/dev/null")
    assert proc.returncode != 0 and "invalid choice" in proc.stderr


def test_build_mpy_imports_on_micropython(tmp_path, micropython):
    built = build_mpy.build(out=tmp_path)
    assert sorted(Path(p).name for _d, p in built) == sorted(n[:-3] + ".mpy" for n in ENGINE)
    probe = subprocess.run(
        [micropython, "-c", "import sys; print(sys.implementation._mpy)"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    sys_mpy = int(probe.stdout)
    assert all(build_mpy.compatible(p, sys_mpy) for _d, p in built)
    with BoardSim(tmp_path / "b") as dev:
        mpremote(dev, "fs", "cp", "-r", str(tmp_path / "qfota"), ":")
        code = "import qfota.errors, qfota.compat; print(qfota.errors.__file__)"
        assert mpremote(dev, "exec", code).stdout.strip() == "qfota/errors.mpy"


def test_build_mpy_per_board_march(tmp_path):
    built = build_mpy.build("rp2", out=tmp_path, names=SHIPPED)
    assert sorted(Path(p).name for _d, p in built) == sorted(n[:-3] + ".mpy" for n in SHIPPED)
    assert built and all(build_mpy.header(p)[0] == build_mpy.MPY_VERSION for _d, p in built)


def test_help():
    proc = qfota("deploy", "--help")
    assert proc.returncode == 0 and "--mpy" in proc.stdout
