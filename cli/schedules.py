"""`crawlgraph schedule add | list | show | pause | resume | rm` and `crawlgraph scheduler`.

The `schedule` commands talk only to the API (`--api-url`, default the local
stack's), like the job commands. `scheduler` runs the process that fires the
due slots (`jobapi.services.schedules_loop`) against the database, Redis and
scrapyd of the settings; the local stack starts one.

    crawlgraph schedule add nightly https://example.org/ --cron "0 3 * * *" --tz Europe/Paris
    crawlgraph schedule add hourly https://example.org/ --every 3600 --overlap queue
    crawlgraph schedule show SCHEDULE
    crawlgraph scheduler --poll 1 --grace 60
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from cli.client import call_once
from cli.format import table, utc_time
from cli.processes import process_settings


def _timing(schedule: dict[str, Any]) -> str:
    if schedule.get("cron"):
        return f"{schedule['cron']} ({schedule['timezone']})"
    return f"every {schedule['interval_seconds']} s"


def cmd_add(args: argparse.Namespace) -> int:
    job: dict[str, Any] = {"start_urls": args.urls, "spider": args.spider,
                           "workers": args.workers}
    if args.max_pages is not None:
        job["max_pages"] = args.max_pages
    if args.depth is not None:
        job["max_depth"] = args.depth
    if args.tag:
        job["tags"] = args.tag
    body: dict[str, Any] = {"name": args.name, "job": job, "overlap": args.overlap,
                            "catchup": args.catchup, "enabled": not args.paused,
                            "keep_last": args.keep_last}
    if args.cron is not None:
        body.update(cron=args.cron, timezone=args.tz)
    else:
        body["interval_seconds"] = args.every
    schedule = call_once(args, "POST", "/api/v1/schedules", json=body)
    print(f"schedule {schedule['id']} added: {_timing(schedule)}, next "
          f"{utc_time(schedule['next_fire_at'])}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    page = call_once(args, "GET", "/api/v1/schedules", params={"limit": args.limit})
    rows = [[s["id"], s["name"][:30], _timing(s), "yes" if s["enabled"] else "paused",
             utc_time(s["next_fire_at"])] for s in page["items"]]
    print(table(rows, ["ID", "NAME", "WHEN", "ENABLED", "NEXT"]))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    schedule = call_once(args, "GET", f"/api/v1/schedules/{args.schedule}")
    if args.json:
        print(json.dumps(schedule, indent=2))
        return 0
    print(f"schedule {schedule['id']}  {schedule['name']}\nwhen     {_timing(schedule)}"
          f"\nenabled  {'yes' if schedule['enabled'] else 'no (paused)'}\noverlap  "
          f"{schedule['overlap']}, catch-up {schedule['catchup']}\nkeeps    "
          f"{_kept(schedule)}\nstart    "
          f"{', '.join(schedule['job'].get('start_urls', [])[:5])}")
    for when in schedule["next_fire_times"]:
        print(f"next     {utc_time(when)}")
    for run in schedule["last_runs"]:
        print(f"run      {utc_time(run['slot'])}  {run['outcome']:<9}  "
              f"{run.get('job_id') or ''}  {run.get('reason') or ''}".rstrip())
    return 0


def _kept(schedule: dict[str, Any]) -> str:
    n = schedule.get("keep_last") or 0
    return f"its {n} newest crawl{'s' if n != 1 else ''}" if n else "every crawl"


def _set_state(args: argparse.Namespace, action: str) -> int:
    schedule = call_once(args, "POST", f"/api/v1/schedules/{args.schedule}/{action}")
    state = "enabled" if schedule["enabled"] else "paused"
    print(f"schedule {schedule['id']} {state}, next {utc_time(schedule['next_fire_at'])}")
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    call_once(args, "DELETE", f"/api/v1/schedules/{args.schedule}")
    print(f"schedule {args.schedule} deleted (its jobs stay)")
    return 0


def cmd_scheduler(args: argparse.Namespace) -> int:
    from jobapi.services.schedules_loop import run_scheduler

    settings = process_settings("scheduler")
    asyncio.run(run_scheduler(settings, poll_seconds=args.poll, grace_seconds=args.grace))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--api-url", help="the API (default: the local stack's)")
    group = subparsers.add_parser("schedule", help="crawl jobs that recur")
    sub = group.add_subparsers(dest="schedule_command", metavar="COMMAND", required=True)

    add = sub.add_parser("add", parents=[common], help="add a schedule")
    add.add_argument("name")
    add.add_argument("urls", nargs="+", metavar="URL", help="start URLs")
    when = add.add_mutually_exclusive_group(required=True)
    when.add_argument("--cron", help="cron expression: 5 fields, or 6 with seconds first")
    when.add_argument("--every", type=int, metavar="SECONDS", help="an interval instead")
    add.add_argument("--tz", default="UTC", help="time zone of --cron (default UTC)")
    add.add_argument("--overlap", choices=("skip", "queue"), default="skip",
                     help="while the previous job runs: skip the slot (default) or queue it")
    add.add_argument("--catchup", choices=("latest", "none"), default="latest",
                     help="after a downtime: fire the newest missed slot (default) or none")
    add.add_argument("--paused", action="store_true", help="add it paused")
    add.add_argument("--keep-last", type=int, default=0, metavar="N",
                     help="keep only its N newest crawls, deleting older ones once ended "
                          "(default 0: keep all)")
    add.add_argument("--spider", default="site")
    add.add_argument("--max-pages", type=int)
    add.add_argument("--depth", type=int)
    add.add_argument("--workers", type=int, default=1)
    add.add_argument("--tag", action="append", help="tag its jobs (repeat)")
    add.set_defaults(func=cmd_add)

    listing = sub.add_parser("list", parents=[common], help="list your schedules")
    listing.add_argument("--limit", type=int, default=50)
    listing.set_defaults(func=cmd_list)

    show = sub.add_parser("show", parents=[common],
                          help="a schedule, its next fire times and its last runs")
    show.add_argument("schedule", metavar="SCHEDULE")
    show.add_argument("--json", action="store_true", help="print the API's JSON")
    show.set_defaults(func=cmd_show)

    for action, func, text in (("pause", lambda a: _set_state(a, "pause"), "pause a schedule"),
                               ("resume", lambda a: _set_state(a, "resume"),
                                "resume it from the next slot"),
                               ("rm", cmd_rm, "delete a schedule (its jobs stay)")):
        command = sub.add_parser(action, parents=[common], help=text)
        command.add_argument("schedule", metavar="SCHEDULE")
        command.set_defaults(func=func)

    scheduler = subparsers.add_parser("scheduler", help="run the process that fires schedules")
    scheduler.add_argument("--poll", type=float, default=1.0, help="seconds between passes")
    scheduler.add_argument("--grace", type=float, default=60.0,
                           help="seconds a slot may be late and still be on time")
    scheduler.set_defaults(func=cmd_scheduler)
