#!/bin/sh
# Set up everything crawlgraph needs on a Debian machine; safe to run again.
#   1. the Debian packages (PostgreSQL server, Redis, graph-tool, Chromium),
#   2. .venv made from Debian's Python with its site packages (graph-tool lives there),
#   3. the pinned, hash-checked dependencies of requirements/lock.txt, then the project
#      itself (no dependencies of its own), with numpy and scipy held at Debian's versions,
#   4. the console's npm packages (console/package-lock.json: the build and the browser
#      tests' axe-core; the built console itself is committed in console/dist/),
#   5. a check that every key module imports and that the lock satisfies pyproject.toml.
# With --upgrade (make upgrade), step 3 first re-resolves the lock, every pin to its
# newest release, against the Debian-held versions (requirements/debian.txt).
set -eu

VENV=${VENV:-.venv}
LOCK=requirements/lock.txt
HELD=requirements/debian.txt
case "${1:-}" in
    "") upgrade="" ;;
    --upgrade) upgrade=1 ;;
    *) echo "usage: sh scripts/setup.sh [--upgrade]" >&2; exit 2 ;;
esac
PACKAGES="postgresql redis-server python3-graph-tool chromium python3-venv python3-pip"
# Node and npm build the console: Debian's, unless a node with its npm is already there.
command -v npm >/dev/null 2>&1 || PACKAGES="$PACKAGES nodejs npm"

missing=""
for pkg in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
        || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "crawlgraph setup: missing Debian packages. Run this, then run make again:" >&2
        echo "  sudo apt-get update && sudo apt-get install -y$missing" >&2
        exit 1
    fi
    echo "crawlgraph setup: installing$missing"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
    /usr/bin/python3 -m venv --system-site-packages "$VENV"
    created="created $VENV"
else
    created="kept $VENV"
fi

pip() {
    log="$VENV/pip-install.log"
    "$VENV/bin/python" -m pip --disable-pip-version-check "$@" >"$log" 2>&1 \
        || { grep -v '^WARNING: Location' "$log" >&2; exit 1; }
}

# graph-tool is built against Debian's numpy (and uses its scipy): pip must never
# replace them, so they stay out of the lock and are held at Debian's versions.
held_versions() {
    /usr/bin/python3 -c 'import numpy, scipy; print(f"numpy=={numpy.__version__}\nscipy=={scipy.__version__}")'
}

if [ -n "$upgrade" ]; then
    "$VENV/bin/python" -c 'import piptools' 2>/dev/null || pip install -q -c "$HELD" "pip-tools>=7.4"
    { sed -n '/^#/p' "$HELD"; held_versions; } > "$HELD.new" && mv "$HELD.new" "$HELD"
    # The command pip-compile writes at the top of the lock; README.md shows it too.
    "$VENV/bin/pip-compile" --quiet --upgrade --generate-hashes --no-allow-unsafe \
        --strip-extras --extra=bench --extra=test --constraint=$HELD \
        --unsafe-package=numpy --unsafe-package=scipy --unsafe-package=pip --unsafe-package=setuptools \
        --no-emit-index-url --no-emit-find-links --output-file=$LOCK pyproject.toml \
        2>"$VENV/pip-compile.log" || { grep -v '^WARNING: Location' "$VENV/pip-compile.log" >&2; exit 1; }
fi

# The project's metadata (its packages, its entry points) comes from pyproject.toml.
stamp="$VENV/.crawlgraph-installed"
want=$(cat "$LOCK" pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    held_versions > "$VENV/constraints.txt"
    pip install -q --require-hashes -c "$VENV/constraints.txt" -r "$LOCK"
    # pip and setuptools are the venv's own, from Debian: no build download either.
    pip install -q --no-deps --no-build-isolation -e .
    echo "$want" > "$stamp"
    installed="installed $LOCK and the project"
else
    installed="project already installed"
fi

# The console's npm packages, exactly as console/package-lock.json pins them (no
# install scripts run: esbuild's binary comes as an npm package of its own).
npm_stamp=console/node_modules/.crawlgraph-installed
npm_want=$(sha256sum console/package-lock.json | cut -d' ' -f1)
if [ ! -f "$npm_stamp" ] || [ "$(cat "$npm_stamp")" != "$npm_want" ]; then
    (cd console && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null) \
        || { echo "crawlgraph setup: npm ci in console/ failed" >&2; exit 1; }
    echo "$npm_want" > "$npm_stamp"
fi

"$VENV/bin/python" - <<'PY'
import importlib, sys
mods = ["graph_tool", "scrapy", "scrapyd", "scrapy_redis", "scrapy_playwright",
        "litestar", "msgspec", "psycopg", "importlinter", "numpy"]
failed = []
for name in mods:
    try:
        importlib.import_module(name)
    except Exception as exc:  # report every failure, not only the first
        failed.append(f"{name}: {exc}")
import numpy
if int(numpy.__version__.split(".")[0]) >= 2:
    failed.append(f"numpy {numpy.__version__} is not Debian's (graph-tool needs numpy < 2)")
if failed:
    sys.exit("crawlgraph setup: these do not import: " + "; ".join(failed))

from importlib.metadata import PackageNotFoundError, requires, version
from packaging.requirements import Requirement
stale = []
for spec in requires("crawlgraph") or []:
    req = Requirement(spec)
    if req.marker and not any(req.marker.evaluate({"extra": e}) for e in ("test", "bench")):
        continue
    try:
        have = version(req.name)
    except PackageNotFoundError:
        stale.append(f"{req.name} is not installed")
        continue
    if not req.specifier.contains(have, prereleases=True):
        stale.append(f"{req.name}{req.specifier} but {have} is installed")
if stale:
    sys.exit("crawlgraph setup: the installed packages do not satisfy pyproject.toml ("
             + "; ".join(stale) + "): if its dependencies changed, run make upgrade to"
             " re-resolve requirements/lock.txt")
PY
echo "crawlgraph setup: Debian packages present, $created, $installed, all key modules import."
