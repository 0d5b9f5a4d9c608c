"""`crawlgraph up | down | status` and `crawlgraph db upgrade`."""

from __future__ import annotations

import argparse

from core.migrate import upgrade
from core.settings import CREDENTIALS_FILE, Settings
from stack import Stack


def register(subparsers: argparse._SubParsersAction) -> None:
    up = subparsers.add_parser("up", help="start the embedded local stack")
    up.set_defaults(func=cmd_up)
    down = subparsers.add_parser("down", help="stop what `up` started")
    down.set_defaults(func=cmd_down)
    status = subparsers.add_parser("status", help="show each service, its pid and health")
    status.set_defaults(func=cmd_status)
    db = subparsers.add_parser("db", help="database schema")
    db_sub = db.add_subparsers(dest="db_command", metavar="COMMAND", required=True)
    db_upgrade = db_sub.add_parser("upgrade", help="apply the migrations not yet applied")
    db_upgrade.set_defaults(func=cmd_db_upgrade)


def cmd_up(args: argparse.Namespace) -> int:
    stack = Stack()
    started = stack.up()
    settings = stack.settings
    print("crawlgraph: " + (f"started {', '.join(started)}" if started else "already running"))
    rows = stack.status()
    width = _name_width(rows)
    for row in rows:
        print(f"  {row['service']:<{width}} {row['address']:<22} pid {row['pid']}")
    print(f"  {'API':<{width}} {settings.api_url}  (OpenAPI at {settings.api_url}/schema)")
    print(f"  admin login and service secrets: {settings.home / CREDENTIALS_FILE} (mode 0600)")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    stopped = Stack().down()
    print("crawlgraph: " + (f"stopped {', '.join(stopped)}" if stopped else "nothing was running"))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    rows = Stack().status()
    width = _name_width(rows)
    print(f"{'SERVICE':<{width}} {'PID':>8}  {'ADDRESS':<22} HEALTH")
    for row in rows:
        pid = row["pid"] if row["pid"] is not None else "-"
        health = "healthy" if row["healthy"] else ("unhealthy" if row["pid"] else "stopped")
        print(f"{row['service']:<{width}} {pid:>8}  {row['address']:<22} {health}")
    return 0 if all(row["healthy"] for row in rows) else 1


def _name_width(rows: list[dict]) -> int:
    """The services' column: as wide as the longest name (graph-worker-1, webhook-sender)."""
    return max([12, *(len(row["service"]) for row in rows)])


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    applied = upgrade(Settings.from_env().database_url)
    print("crawlgraph: " + (f"applied {', '.join(applied)}" if applied else "schema up to date"))
    return 0
