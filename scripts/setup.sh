#!/bin/sh
# Set up everything crawlgraph needs on a Debian machine; safe to run again.
#   1. the Debian packages (PostgreSQL server, Redis, graph-tool, Chromium),
#   2. .venv made from Debian's Python with its site packages (graph-tool lives there),
#   3. the project and its test extra, with numpy held at Debian's version,
#   4. a check that every key module imports.
set -eu

VENV=${VENV:-.venv}
PACKAGES="postgresql redis-server python3-graph-tool chromium python3-venv python3-pip"

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

stamp="$VENV/.crawlgraph-installed"
want=$(cat pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    # graph-tool is built against Debian's numpy: never let pip replace it.
    numpy_version=$(/usr/bin/python3 -c 'import numpy; print(numpy.__version__)')
    echo "numpy==$numpy_version" > "$VENV/constraints.txt"
    log="$VENV/pip-install.log"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
        -c "$VENV/constraints.txt" -e ".[test,bench]" >"$log" 2>&1 \
        || { grep -v '^WARNING: Location' "$log" >&2; exit 1; }
    echo "$want" > "$stamp"
    installed="installed the project"
else
    installed="project already installed"
fi

"$VENV/bin/python" - <<'PY'
import importlib, sys
mods = ["graph_tool", "scrapy", "scrapyd", "scrapy_redis", "scrapy_playwright",
        "litestar", "msgspec", "psycopg", "numpy"]
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
PY
echo "crawlgraph setup: Debian packages present, $created, $installed, all key modules import."
