"""Generate the mip ``package.json`` files from the packages' ``manifest.py``.

The firmware ships as three packages, each a folder of ``firmware/packages/`` with a
micropython-lib style ``manifest.py`` (``metadata()``, ``require()``, ``package()``,
``module()``; paths relative to the manifest, sources in ``firmware/qfota/``)::

    qfota-core   the engine: update()/recover(), UART port, Reporter, Journal
    qfota-url    URL updates (the modem fetches the package): qfota/urls.py
    qfota-app    the boot-time app: qfota/app.py and main.py (requires qfota-core)
    qfota-unix   the unix port only: qfota/tty.py, runner.py, info.py, relay.py (boards/unix.py)

This tool evaluates those manifests (the subset of MicroPython's ``manifestfile.py`` they
use, with its path rules) and writes:

- ``firmware/packages/<name>/package.json``: that package alone, its ``urls`` relative to
  the package.json (``mpremote mip install firmware/packages/qfota-core/package.json``);
- ``package.json`` at the root: every file an MCU board runs (core, then app and url: a
  package after those it requires; not qfota-unix), ``mpremote mip install ./package.json`` or ``github:<owner>/<repo>``.

The version is ``qfota.__version__`` (``firmware/qfota/__init__.py``): this tool writes it
into each manifest's ``metadata(version=...)`` and each package.json.

No ``deps`` are written. mpremote 1.29's ``mip install`` resolves a dependency that is a
path to a ``.json`` against its own working directory, not against the package.json that
names it; one that is a bare name goes to the micropython.org index; only ``github:``
URLs resolve anywhere, and they name a fixed repository. So a package's ``require()``
stays in its manifest (where MicroPython's manifest tools honour it), and installers
install the packages in order: ``qfota deploy`` does, or, by hand::

    mpremote mip install firmware/packages/qfota-core/package.json \\
        firmware/packages/qfota-url/package.json firmware/packages/qfota-app/package.json

::

    $ python -m qfota_tools.build_package            # rewrite what is stale
    $ python -m qfota_tools.build_package --check    # exit 1 when anything is stale

``tests/test_deploy.py`` fails when any of them is stale. ``qfota deploy`` reads the
manifests through ``packages()`` and ``urls()`` (in a wheel, from its copy of them, see
``qfota_tools.tree``); generating the package.json files is for a checkout.
"""

import argparse
import json
import os
import re
import sys
from pathlib import Path

from qfota_tools import tree

REPO = tree.ROOT  # the repository, or the copy of its firmware/ and boards/ in a wheel
PACKAGES = Path("firmware") / "packages"
# Packages for one port only (micropython-lib keeps such ones apart in unix-ffi/):
# installed only for that board, absent from the root package.json.
PORT_ONLY = {"qfota-unix": "unix"}
_VERSION_RE = re.compile(r'^__version__\s*=\s*"([^"]+)"', re.MULTILINE)
_META_VERSION_RE = re.compile(r'(\bversion\s*=\s*")([^"]*)(")')


class ManifestError(Exception):
    """A manifest that cannot be evaluated, or packages that do not fit together."""


def version(repo=REPO):
    """The project's version: ``__version__`` in firmware/qfota/__init__.py."""
    text = (Path(repo) / "firmware" / "qfota" / "__init__.py").read_text()
    match = _VERSION_RE.search(text)
    if not match:
        raise ManifestError("no __version__ in firmware/qfota/__init__.py")
    return match.group(1)


class Package:
    """One evaluated manifest: name, metadata, required packages, [(device, local)] files."""

    def __init__(self, name, folder):
        self.name = name
        self.folder = Path(folder)
        self.manifest = self.folder / "manifest.py"
        self.meta = {}
        self.requires = []
        self.files = []  # (path on the board, absolute local path)

    @property
    def version(self):
        return self.meta.get("version")

    def _base(self, base_path):
        return (self.folder / base_path).resolve()

    def _add(self, local, dev):
        if not local.is_file():
            raise ManifestError("%s: no such file %s" % (self.manifest, local))
        if local.suffix != ".py":
            raise ManifestError("%s: not a .py file: %s" % (self.manifest, local))
        self.files.append((dev, local))

    # The manifest's vocabulary (MicroPython's tools/manifestfile.py, same signatures).
    def metadata(self, description=None, version=None, license=None, author=None, **kw):
        for key, value in (("description", description), ("version", version)):
            if value is not None:
                self.meta[key] = value
        if license is not None:
            self.meta["license"] = license
        if author is not None:
            self.meta["author"] = author
        return self.meta

    def require(self, name, version=None, **kwargs):
        if not self.meta:
            raise ManifestError("%s: metadata() must come first" % self.manifest)
        self.requires.append(name)

    def package(self, package_path, files=None, base_path=".", opt=None):
        base = self._base(base_path)
        if files is None:
            root = base / package_path
            names = sorted(str(p.relative_to(root)) for p in root.rglob("*.py"))
        else:
            names = list(files)
        for name in names:
            dev = "%s/%s" % (package_path, name)
            self._add(base / package_path / name, dev)

    def module(self, module_path, base_path=".", opt=None):
        self._add(self._base(base_path) / module_path, module_path)

    def evaluate(self):
        code = self.manifest.read_text()
        names = {n: getattr(self, n) for n in ("metadata", "require", "package", "module")}
        try:
            exec(compile(code, str(self.manifest), "exec"), names)
        except ManifestError:
            raise
        except Exception as exc:
            raise ManifestError("%s: %s: %s" % (self.manifest, type(exc).__name__, exc)) from None
        if not self.meta.get("version") or not self.meta.get("description"):
            raise ManifestError("%s: metadata() needs version and description" % self.manifest)
        return self


def packages(repo=REPO, board=None):
    """The packages for ``board`` (None: any MCU, no port-only one), evaluated, in install
    order (a package after those it requires)."""
    root = Path(repo) / PACKAGES
    found = {
        p.parent.name: Package(p.parent.name, p.parent).evaluate()
        for p in sorted(root.glob("*/manifest.py"))
    }
    owner = {}
    for pkg in found.values():
        for name in pkg.requires:
            if name not in found:
                raise ManifestError("%s requires %s, which is not in %s" % (pkg.name, name, root))
        for dev, _local in pkg.files:
            if dev in owner:
                raise ManifestError("%s is in both %s and %s" % (dev, owner[dev], pkg.name))
            owner[dev] = pkg.name
    order = []

    def visit(name, trail):
        if name in order:
            return
        if name in trail:
            raise ManifestError("require() cycle: %s" % " -> ".join(trail + (name,)))
        for dep in found[name].requires:
            visit(dep, trail + (name,))
        order.append(name)

    for name in sorted(found):
        if PORT_ONLY.get(name, board) == board:
            visit(name, ())
    return [found[n] for n in order]


def urls(repo=REPO, board=None):
    """[device path, repo path] of every file ``board`` runs (None: any MCU), in install
    order."""
    return [
        [dev, str(local.relative_to(Path(repo).resolve()))]
        for pkg in packages(repo, board)
        for dev, local in pkg.files
    ]


def _render(pairs, ver):
    body = ",\n".join("    " + json.dumps(pair) for pair in pairs)
    return '{\n  "urls": [\n%s\n  ],\n  "version": %s\n}\n' % (body, json.dumps(ver))


def outputs(repo=REPO):
    """{path: text} of every generated file (manifests with the version set, package.json)."""
    repo = Path(repo).resolve()
    ver = version(repo)
    out = {}
    names = {p.parent.name for p in (repo / PACKAGES).glob("*/manifest.py")}
    pkgs = {p.name: p for board in {None, *PORT_ONLY.values()} for p in packages(repo, board)}
    missing = names - set(pkgs)
    if missing:
        raise ManifestError("packages for no board: %s" % ", ".join(sorted(missing)))
    for pkg in pkgs.values():
        text = pkg.manifest.read_text()
        if len(_META_VERSION_RE.findall(text)) != 1:
            raise ManifestError('%s: needs exactly one version="..."' % pkg.manifest)
        out[pkg.manifest] = _META_VERSION_RE.sub(lambda m: m.group(1) + ver + m.group(3), text)
        pairs = [[dev, os.path.relpath(local, pkg.folder)] for dev, local in pkg.files]
        out[pkg.folder / "package.json"] = _render(pairs, ver)
    out[repo / "package.json"] = _render(urls(repo), ver)
    return out


def render(repo=REPO):
    """The text the root package.json must have."""
    return outputs(repo)[Path(repo).resolve() / "package.json"]


def stale(repo=REPO):
    """The generated files whose text differs from what they must be."""
    return [
        path
        for path, text in outputs(repo).items()
        if not path.is_file() or path.read_text() != text
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m qfota_tools.build_package")
    parser.add_argument("--check", action="store_true", help="exit 1 if anything is stale")
    args = parser.parse_args(argv)
    try:
        todo = stale()
        texts = outputs()
    except ManifestError as exc:
        print("build_package: %s" % exc, file=sys.stderr)
        return 1
    for path in todo:
        rel = path.relative_to(REPO)
        if args.check:
            print("%s is stale: run python -m qfota_tools.build_package" % rel)
        else:
            path.write_text(texts[path])
            print("wrote %s" % rel)
    return 1 if args.check and todo else 0


if __name__ == "__main__":
    sys.exit(main())
