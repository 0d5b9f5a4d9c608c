"""The committed console (console/dist/) is what its sources and lockfile build, and it loads
nothing from another origin."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

CONSOLE = Path(__file__).resolve().parents[2] / "console"


def test_the_committed_bundle_matches_a_fresh_build(tmp_path):
    work = tmp_path / "console"
    work.mkdir()
    for name in ("build.mjs", "index.html", "package.json", "package-lock.json"):
        shutil.copy(CONSOLE / name, work / name)
    shutil.copytree(CONSOLE / "src", work / "src")
    (work / "node_modules").symlink_to(CONSOLE / "node_modules")
    subprocess.run(["node", "build.mjs"], cwd=work, check=True, capture_output=True, timeout=120)
    built = {p.name: p.read_bytes() for p in (work / "dist").iterdir()}
    committed = {p.name: p.read_bytes() for p in (CONSOLE / "dist").iterdir()}
    assert sorted(built) == sorted(committed)
    stale = [name for name in built if built[name] != committed[name]]
    assert not stale, f"console/dist is stale ({stale}): run `make console` and commit it"


def test_the_console_loads_nothing_from_another_origin():
    page = (CONSOLE / "dist" / "index.html").read_text()
    assert re.findall(r'(?:src|href)="([^"#][^"]*)"', page) == ["/console/console.css",
                                                          "/console/console.js"]
    for name in ("console.js", "layout.js", "console.css"):
        text = (CONSOLE / "dist" / name).read_text()
        assert not re.search(r"""(?:import|from|url\()\s*["']?(?:https?:)?//""", text), name


def test_every_bundled_package_is_pinned_and_its_licence_listed():
    lock = json.loads((CONSOLE / "package-lock.json").read_text())
    wanted = json.loads((CONSOLE / "package.json").read_text())["dependencies"]
    licences = (CONSOLE / "dist" / "licenses.txt").read_text()
    for name, version in wanted.items():
        assert lock["packages"][f"node_modules/{name}"]["version"] == version
        assert f"== {name} {version} (" in licences
