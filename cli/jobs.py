"""`crawlgraph crawl | jobs | show | cancel | pages | token`: crawl jobs from a shell.

The commands talk only to the API (`--api-url`, default the local stack's)
through `cli.client.ApiClient`. `crawl --wait` (and `show JOB --wait`) shows a
progress line until the job ends (`cli.watch`).
"""

from __future__ import annotations

import argparse
import json
from typing import Any, get_args

from cli.client import call_once, client_for
from cli.format import queue_length, stat, status_text, table
from cli.watch import watch
from crawler.spiders.args import ScopeKind

SCOPE_HELP = ("what the start URLs stand for: site (default; with and without www., http "
              "and https, and where they redirect), host (exactly their hosts and ports), "
              "domain (the registered domain and its subdomains) or prefix (URLs starting "
              "with one)")


def cmd_crawl(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"start_urls": args.urls, "spider": args.spider,
                            "workers": args.workers, "render_js": args.js}
    if args.max_pages is not None:
        body["max_pages"] = args.max_pages
    if args.depth is not None:
        body["max_depth"] = args.depth
    if args.scope is not None:
        body["scope"] = args.scope
    if args.allow:
        body["allowed_domains"] = args.allow
    if args.tag:
        body["tags"] = args.tag
    if args.warc:
        body["warc"] = True
    if args.recrawl_of:
        body["recrawl_of"] = args.recrawl_of
    client = client_for(args)
    try:
        job = client.call("POST", "/api/v1/jobs", json=body)
        print(f"job {job['id']} submitted ({job['spider']}, {len(args.urls)} start URL"
              f"{'s' if len(args.urls) != 1 else ''}, {job['workers']} worker"
              f"{'s' if job['workers'] != 1 else ''})")
        if not args.wait:
            print(f"watch it with: crawlgraph show {job['id']}")
            return 0
        return watch(client, job["id"], max_pages=args.max_pages)
    finally:
        client.close()


def cmd_jobs(args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"limit": args.limit}
    if args.status:
        params["status"] = args.status
    if args.tag:
        params["tag"] = args.tag
    client = client_for(args)
    try:
        page = client.call("GET", "/api/v1/jobs", params=params)
    finally:
        client.close()
    rows = [[j["id"], j["status"], j["spider"], str(int(stat(j, "pages"))),
             j["created_at"][:19].replace("T", " "), ",".join(j["tags"])]
            for j in page["items"]]
    print(table(rows, ["ID", "STATUS", "SPIDER", "PAGES", "CREATED", "TAGS"]))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    client = client_for(args)
    try:
        job = client.call("GET", f"/api/v1/jobs/{args.job}")
        if args.wait:
            return watch(client, job["id"], max_pages=job["params"].get("max_pages"))
    finally:
        client.close()
    if args.json:
        print(json.dumps(job, indent=2))
        return 0
    print(f"job      {job['id']}\nstatus   {status_text(job)}"
          f"\nspider   {job['spider']}\nworkers  {job['workers']}\ncreated  "
          f"{job['created_at']}\nstart    {', '.join(job['params'].get('start_urls', [])[:5])}")
    print(f"pages {int(stat(job, 'pages'))}, items {int(stat(job, 'items'))}, errors "
          f"{int(stat(job, 'errors'))}, queue {queue_length(job)}")
    if job.get("error"):
        print(f"error    {job['error']}")
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    client = client_for(args)
    try:
        job = client.call("POST", f"/api/v1/jobs/{args.job}/cancel")
    finally:
        client.close()
    print(f"job {job['id']} {job['status']}")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    deleted = call_once(args, "DELETE", f"/api/v1/jobs/{args.job}")
    builds = deleted.get("graph_builds") or []
    print(f"job {deleted['id']} deleted"
          + (f", with {len(builds)} graph build{'s' if len(builds) != 1 else ''}"
             if builds else "")
          + ": it is gone from every listing; its data is purged in the background")
    return 0


def cmd_pages(args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"limit": min(args.limit, 500)}
    if args.status is not None:
        params["status"] = args.status
    if args.prefix:
        params["url_prefix"] = args.prefix
    client = client_for(args)
    shown = 0
    try:
        while shown < args.limit:
            page = client.call("GET", f"/api/v1/jobs/{args.job}/pages", params=params)
            for item in page["items"][: args.limit - shown]:
                print(f"{item['status']:>3}  {item['url']}"
                      + (f"  {item['title']}" if item.get("title") else ""))
                shown += 1
            if not page.get("next_cursor"):
                break
            params["cursor"] = page["next_cursor"]
    finally:
        client.close()
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    client = client_for(args)
    try:
        print(client.token(fresh=args.fresh))
    finally:
        client.close()
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--api-url", help="the API (default: the local stack's)")

    crawl = subparsers.add_parser("crawl", parents=[common], help="submit a crawl job")
    crawl.add_argument("urls", nargs="+", metavar="URL", help="start URLs")
    crawl.add_argument("--spider", default="site", help="spider to run (default: site)")
    crawl.add_argument("--max-pages", type=int, help="stop after this many pages")
    crawl.add_argument("--depth", type=int, help="follow links this many levels deep")
    crawl.add_argument("--js", action="store_true", help="render pages in Chromium")
    crawl.add_argument("--workers", type=int, default=1, help="crawler processes (default 1)")
    crawl.add_argument("--scope", choices=get_args(ScopeKind), help=SCOPE_HELP)
    crawl.add_argument("--allow", action="append", metavar="DOMAIN",
                       help="allowed domain (repeat; default: the --scope of the start URLs)")
    crawl.add_argument("--tag", action="append", help="tag the job (repeat)")
    crawl.add_argument("--warc", action="store_true",
                       help="archive every request and response as WARC files "
                            "(list them with: crawlgraph warcs JOB)")
    crawl.add_argument("--recrawl-of", metavar="JOB",
                       help="recrawl this job: what it stored is asked for conditionally "
                            "(a 304 downloads nothing), and every page is marked new, changed "
                            "or unchanged against it")
    crawl.add_argument("--wait", action="store_true", help="show progress until it ends")
    crawl.set_defaults(func=cmd_crawl)

    jobs = subparsers.add_parser("jobs", parents=[common], help="list your jobs, newest first")
    jobs.add_argument("--status", choices=["pending", "running", "paused", "finished",
                                           "failed", "cancelled"])
    jobs.add_argument("--tag")
    jobs.add_argument("--limit", type=int, default=20)
    jobs.set_defaults(func=cmd_jobs)

    show = subparsers.add_parser("show", parents=[common], help="show one job")
    show.add_argument("job", metavar="JOB")
    show.add_argument("--json", action="store_true", help="print the API's JSON")
    show.add_argument("--wait", action="store_true", help="show progress until it ends")
    show.set_defaults(func=cmd_show)

    cancel = subparsers.add_parser("cancel", parents=[common], help="cancel a job")
    cancel.add_argument("job", metavar="JOB")
    cancel.set_defaults(func=cmd_cancel)

    delete = subparsers.add_parser("delete", parents=[common],
                                   help="delete a job that has ended, with its data and graphs")
    delete.add_argument("job", metavar="JOB")
    delete.set_defaults(func=cmd_delete)

    pages = subparsers.add_parser("pages", parents=[common], help="list a job's pages")
    pages.add_argument("job", metavar="JOB")
    pages.add_argument("--status", type=int, help="only this HTTP status")
    pages.add_argument("--prefix", help="only URLs starting with this")
    pages.add_argument("--limit", type=int, default=100)
    pages.set_defaults(func=cmd_pages)

    token = subparsers.add_parser("token", parents=[common],
                                  help="print an access token (for curl: -H 'Authorization: "
                                       "Bearer ...')")
    token.add_argument("--fresh", action="store_true", help="log in again")
    token.set_defaults(func=cmd_token)
