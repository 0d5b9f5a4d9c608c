"""`crawlgraph purge`: the process that removes what deleted jobs and graph builds leave.

It works on the database named by the settings (`DATABASE_URL`, or the local
stack's) and the data directory of this node (`jobapi.services.purge_loop`);
the local stack runs one. Run one on every node that holds WARC files.
"""

from __future__ import annotations

import argparse
import asyncio

from cli.processes import process_settings


def cmd_purge(args: argparse.Namespace) -> int:
    from jobapi.services.purge_loop import run_purger

    settings = process_settings("purge")
    asyncio.run(run_purger(settings, poll_seconds=args.poll, batch=args.batch))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    purge = subparsers.add_parser(
        "purge", help="run the process that purges deleted jobs and graph builds")
    purge.add_argument("--poll", type=float, default=2.0,
                       help="seconds between looks when nothing is left to purge")
    purge.add_argument("--batch", type=int, default=2000,
                       help="rows deleted per transaction (default 2000)")
    purge.set_defaults(func=cmd_purge)
