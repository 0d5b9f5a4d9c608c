# crawlgraph: the commands people run. Every target sets up what it needs first.
VENV    ?= .venv
PY      := $(VENV)/bin/python
CG      := $(VENV)/bin/crawlgraph
URL     ?=

.PHONY: setup upgrade up down status test verify bench lint crawl console

setup:
	@sh scripts/setup.sh

# Re-resolve requirements/lock.txt (every pin to its newest release, hashes, numpy
# and scipy held at Debian's versions) with pip-tools, then install it.
upgrade:
	@sh scripts/setup.sh --upgrade

up: setup
	@$(CG) up

down: setup
	@$(CG) down

status: setup
	@$(CG) status

test: setup lint
	@$(PY) -m pytest $(PYTEST_ARGS)

verify: setup
	@$(PY) -m pytest tests/faults tests/security --scenario-table $(PYTEST_ARGS)

bench: setup
	@set -e; for script in bench/*.py; do \
		[ "$$script" = bench/common.py ] && continue; echo "== $$script"; $(PY) $$script; done

# Style (ruff) and the layering contract (import-linter, see pyproject.toml).
lint: setup
	@$(VENV)/bin/ruff check core crawler graphs jobapi stack cli tests bench
	@out=$$($(VENV)/bin/lint-imports --no-cache 2>&1) || { echo "$$out"; exit 1; }; \
		echo "import-linter: $$(echo "$$out" | tail -n 1)"

# Rebuild the console (console/dist/, committed) from console/src with esbuild.
console: setup
	@cd console && node build.mjs

crawl: setup
	@if [ -z "$(URL)" ]; then echo "usage: make crawl URL=https://example.org/" >&2; exit 2; fi
	@$(CG) up
	@$(CG) crawl-to-graph $(URL) $(CRAWL_ARGS)
