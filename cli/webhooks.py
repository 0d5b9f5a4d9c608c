"""`crawlgraph webhook add | list | rm | deliveries | deliver`.

`add`, `list`, `rm` and `deliveries` talk only to the API (`--api-url`,
default the local stack's). `deliver` runs the process that sends the
deliveries (`jobapi.services.webhooks_loop`) against the database of the
settings; the local stack starts one.

    crawlgraph webhook add https://example.org/hook --event job.finished --event graph.done
    crawlgraph webhook add https://example.org/hook --schedule SCHEDULE
    crawlgraph webhook deliveries WEBHOOK
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from cli.client import call_once
from cli.format import table, utc_time
from cli.processes import process_settings

EVENTS = ("job.finished", "job.failed", "job.cancelled", "graph.done", "graph.failed")


def cmd_add(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"url": args.url, "events": args.event or list(EVENTS)}
    if args.schedule:
        body["schedule_id"] = args.schedule
    hook = call_once(args, "POST", "/api/v1/webhooks", json=body)
    print(f"webhook {hook['id']} added for {', '.join(hook['events'])}")
    print(f"secret  {hook['secret']}  (shown once: keep it to check the signatures)")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    page = call_once(args, "GET", "/api/v1/webhooks", params={"limit": args.limit})
    rows = [[h["id"], h["url"][:50], h.get("schedule_id") or "all", ",".join(h["events"])]
            for h in page["items"]]
    print(table(rows, ["ID", "URL", "SCHEDULE", "EVENTS"]))
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    call_once(args, "DELETE", f"/api/v1/webhooks/{args.webhook}")
    print(f"webhook {args.webhook} deleted")
    return 0


def cmd_deliveries(args: argparse.Namespace) -> int:
    page = call_once(args, "GET", f"/api/v1/webhooks/{args.webhook}/deliveries",
                 params={"limit": args.limit})
    rows = []
    for d in page["items"]:
        last = d["log"][-1] if d["log"] else {}
        answer = last.get("status") or (last.get("error") or "")[:40]
        rows.append([d["id"], d["event"], d["state"], d["attempts"], answer or "-",
                     utc_time(d["created_at"])])
    print(table(rows, ["ID", "EVENT", "STATE", "TRIES", "LAST ANSWER", "CREATED"]))
    return 0


def cmd_deliver(args: argparse.Namespace) -> int:
    from jobapi.services.webhooks_loop import run_sender

    settings = process_settings("webhooks")
    asyncio.run(run_sender(settings, poll_seconds=args.poll, retry_base=args.retry_base))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--api-url", help="the API (default: the local stack's)")
    group = subparsers.add_parser("webhook", help="URLs called when jobs and builds end")
    sub = group.add_subparsers(dest="webhook_command", metavar="COMMAND", required=True)

    add = sub.add_parser("add", parents=[common], help="add a webhook (prints its secret)")
    add.add_argument("url")
    add.add_argument("--event", action="append", choices=EVENTS,
                     help="an event to send (repeat; default all)")
    add.add_argument("--schedule", metavar="SCHEDULE", help="only this schedule's jobs")
    add.set_defaults(func=cmd_add)

    listing = sub.add_parser("list", parents=[common], help="list your webhooks")
    listing.add_argument("--limit", type=int, default=50)
    listing.set_defaults(func=cmd_list)

    rm = sub.add_parser("rm", parents=[common], help="delete a webhook")
    rm.add_argument("webhook", metavar="WEBHOOK")
    rm.set_defaults(func=cmd_rm)

    deliveries = sub.add_parser("deliveries", parents=[common],
                                help="a webhook's deliveries and their last answers")
    deliveries.add_argument("webhook", metavar="WEBHOOK")
    deliveries.add_argument("--limit", type=int, default=50)
    deliveries.set_defaults(func=cmd_deliveries)

    deliver = sub.add_parser("deliver", help="run the process that sends the deliveries")
    deliver.add_argument("--poll", type=float, default=1.0,
                         help="seconds between looks when nothing is due")
    deliver.add_argument("--retry-base", type=float, default=30.0,
                         help="seconds before the first retry; doubled at each one")
    deliver.set_defaults(func=cmd_deliver)
