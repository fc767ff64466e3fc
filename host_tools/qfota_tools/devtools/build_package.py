"""Generate ``package.json`` (mip's format) from the firmware files that exist.

``mpremote mip install ./package.json`` (or ``github:<owner>/<repo>``) then installs
``qfota/*.py`` and ``main.py`` under its target (``/lib`` by default; ``qfota deploy``
uses ``/``)::

    $ python -m qfota_tools.devtools.build_package            # rewrite package.json
    $ python -m qfota_tools.devtools.build_package --check    # exit 1 when it is stale

``tests/test_deploy.py`` fails when package.json is stale.
"""

import argparse
import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def version(repo=REPO):
    """The project's version, from pyproject.toml."""
    text = (repo / "pyproject.toml").read_text()
    match = re.search(r'^version\s*=\s*"([^"]+)"', text, re.MULTILINE)
    return match.group(1) if match else "0.0.0"


def urls(repo=REPO):
    """[device path, repo path] for each firmware file, in a stable order."""
    pairs = [
        ["qfota/" + p.name, "firmware/qfota/" + p.name]
        for p in sorted((repo / "firmware" / "qfota").glob("*.py"))
    ]
    if (repo / "firmware" / "main.py").is_file():
        pairs.append(["main.py", "firmware/main.py"])
    return pairs


def render(repo=REPO):
    """The text package.json must have (one [device, repo] pair a line)."""
    pairs = ",\n".join("    " + json.dumps(pair) for pair in urls(repo))
    return '{\n  "urls": [\n%s\n  ],\n  "version": %s\n}\n' % (pairs, json.dumps(version(repo)))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m qfota_tools.devtools.build_package")
    parser.add_argument("--check", action="store_true", help="exit 1 if package.json is stale")
    args = parser.parse_args(argv)
    path = REPO / "package.json"
    text = render()
    current = path.read_text() if path.exists() else None
    if args.check:
        if current != text:
            print("package.json is stale: run python -m qfota_tools.devtools.build_package")
            return 1
        return 0
    if current != text:
        path.write_text(text)
        print("wrote %s (%d files)" % (path, len(urls())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
