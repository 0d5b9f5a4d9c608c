"""`crawlgraph crawl-to-graph URL...`: the whole of `make crawl`, through the API.

It submits the crawl, shows its progress until it ends, asks the graph workers
for the page and host graphs, downloads their exports into `out/<job id>/`
(`page.gexf`, `page.graphml`, `host.gexf`, `nodes.csv`, `edges.csv`) and
prints a summary: pages, links, hosts, errors, the ten pages with the highest
PageRank, the components and, for a crawl of several sites, the per-site table
(`cli.summary.site_table`).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, get_args

from cli.client import ApiCallError, ApiClient, client_for
from cli.jobs import SCOPE_HELP
from cli.summary import site_table
from cli.watch import watch
from crawler.spiders.args import ScopeKind
from graphs.errors import GraphBuildFailed
from graphs.report import HOST_METRICS, PAGE_METRICS, CrawlSummary

BUILD_TIMEOUT = 3600.0
# (level, format, table, file name)
EXPORTS = [
    ("page", "gexf", None, "page.gexf"),
    ("page", "graphml", None, "page.graphml"),
    ("host", "gexf", None, "host.gexf"),
    ("page", "csv", "nodes", "nodes.csv"),
    ("page", "csv", "edges", "edges.csv"),
]


def register(subparsers: argparse._SubParsersAction) -> None:
    cmd = subparsers.add_parser(
        "crawl-to-graph", help="crawl, then build and export the page and host graphs"
    )
    cmd.add_argument("urls", nargs="+", metavar="URL", help="start URLs")
    cmd.add_argument("--max-pages", type=int, default=1000,
                     help="stop after this many pages (default 1000)")
    cmd.add_argument("--depth", type=int, help="follow links this many levels deep")
    cmd.add_argument("--workers", type=int, default=1, help="crawler processes (default 1)")
    cmd.add_argument("--scope", choices=get_args(ScopeKind), help=SCOPE_HELP)
    cmd.add_argument("--js", action="store_true", help="render pages in Chromium")
    cmd.add_argument("--out", default="out", help="directory for the exports (default out/)")
    cmd.add_argument("--api-url", help="the API (default: the local stack's)")
    cmd.set_defaults(func=cmd_crawl_to_graph)


def cmd_crawl_to_graph(args: argparse.Namespace) -> int:
    client = client_for(args)
    try:
        body: dict[str, Any] = {"start_urls": args.urls, "workers": args.workers,
                                "max_pages": args.max_pages}
        if args.depth is not None:
            body["max_depth"] = args.depth
        if args.scope is not None:
            body["scope"] = args.scope
        if args.js:
            body["render_js"] = "always"
        job = client.call("POST", "/api/v1/jobs", json=body)
        print(f"job {job['id']} submitted; crawling (Ctrl-C stops watching)")
        status = watch(client, job["id"], max_pages=args.max_pages, command="crawl-to-graph")
        if status != 0:
            return status
        builds = {
            level: _request_build(client, job["id"], level, metrics)
            for level, metrics in (("page", PAGE_METRICS), ("host", HOST_METRICS))
        }
        print("building the page and host graphs ...")
        done = {level: _wait_build(client, build["id"]) for level, build in builds.items()}
        out_dir = Path(args.out) / job["id"]
        files = _download(client, done, out_dir)
        print(_summary(client, job["id"], done, files))
        return 0
    finally:
        client.close()


def _request_build(client: ApiClient, job_id: str, level: str, metrics: list[str]) -> dict:
    return client.call("POST", f"/api/v1/jobs/{job_id}/graphs",
                       json={"level": level, "metrics": metrics})


def _wait_build(client: ApiClient, build_id: str) -> dict:
    deadline = time.monotonic() + BUILD_TIMEOUT
    delay = 0.2
    while time.monotonic() < deadline:
        build = client.call("GET", f"/api/v1/graphs/{build_id}")
        if build["status"] == "done":
            return build
        if build["status"] == "failed":
            raise GraphBuildFailed(
                f"Graph build {build_id} failed: {build.get('error')}",
                hint="Read logs/graph-worker-1.log in the data directory.",
            )
        time.sleep(delay)
        delay = min(delay * 1.5, 2.0)
    raise GraphBuildFailed(
        f"Graph build {build_id} did not finish within {BUILD_TIMEOUT:.0f} s.",
        hint="Check `crawlgraph status` (is a graph worker running?).",
    )


def _download(client: ApiClient, builds: dict[str, dict], out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    files = []
    for level, fmt, table, name in EXPORTS:
        params = {"format": fmt}
        if table:
            params["table"] = table
        path = out_dir / name
        tmp = path.with_suffix(path.suffix + ".part")
        headers = {"Authorization": f"Bearer {client.token()}"}
        url = f"/api/v1/graphs/{builds[level]['id']}/export"
        with client.http.stream("GET", url, params=params, headers=headers) as response:
            if not response.is_success:
                raise ApiCallError(f"Export {name} failed (HTTP {response.status_code}).")
            with open(tmp, "wb") as fh:
                for chunk in response.iter_bytes():
                    fh.write(chunk)
        tmp.replace(path)  # a file is either whole or absent
        files.append(path)
    return files


def _summary(client: ApiClient, job_id: str, builds: dict[str, dict], files: list[Path]) -> str:
    job = client.call("GET", f"/api/v1/jobs/{job_id}")
    stored = client.call("GET", f"/api/v1/jobs/{job_id}/summary")
    classes = stored["pages_by_status"]
    page = builds["page"]
    top = client.call("GET", f"/api/v1/graphs/{page['id']}/nodes",
                      params={"sort": "pagerank", "limit": 10})
    errors = classes.get("4xx", 0) + classes.get("5xx", 0) + classes.get("failed", 0)
    summary = CrawlSummary(job=job_id, status=job["status"], pages=stored["pages"],
                           links=page["edge_count"], errors=errors,
                           page_build=page, host_build=builds["host"], top=top["nodes"],
                           site_lines=site_table(stored), after_crawl_summary=True,
                           files=files)
    return summary.text()
