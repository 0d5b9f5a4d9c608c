"""The `crawlgraph` command.

Each group of commands lives in its own module of `cli` with a
`register(subparsers)` function; this module only assembles them and maps
errors to exit codes (2 for a crawlgraph error, with its message and hint).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from cli import crawl, graphs, jobs, purge, schedules, stack, summary, users, warcs, webhooks
from core.errors import CrawlgraphError

COMMAND_MODULES = [stack, jobs, summary, users, graphs, crawl, schedules, webhooks, warcs, purge]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crawlgraph",
        description="Crawl websites and turn what is crawled into networks.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CrawlgraphError as exc:
        print(f"crawlgraph: error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"crawlgraph: {exc.hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
