"""`crawlgraph graph build | export | top | show` and `crawlgraph graph-worker`.

These commands work on the database named by the settings (`DATABASE_URL`,
or the local stack's) and the graph files under the data directory, as the
operator of this installation: a build belongs to the owner of the job it
is built from.

    crawlgraph graph build JOB --level host --wait
    crawlgraph graph export BUILD --format gexf -o site.gexf
    crawlgraph graph top BUILD --by pagerank --limit 20
    crawlgraph graph diff BUILD_A BUILD_B --metric pagerank --top 20 [--csv]
    crawlgraph graph series SCHEDULE --level page -o series.gexf
    crawlgraph graph rm BUILD
    crawlgraph graph-worker

`rm` asks the API (`--api-url`, default the local stack's), which checks that
the build may be deleted and leaves its purge to the purger.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
import uuid
from collections.abc import Iterable

import msgspec
import psycopg

from cli.client import call_once
from cli.processes import process_settings
from core.settings import Settings
from graphs import store
from graphs.diff import CSV_HEADER, diff_builds, diff_rows
from graphs.dynamic import MAX_CRAWLS, iter_dynamic_gexf
from graphs.errors import GraphBuildFailed, GraphError, GraphNotFound
from graphs.exports import exporter, write_chunks
from graphs.models import DEFAULT_METRICS, EXPORT_FORMATS, LEVELS, METRICS, GraphBuildRequest
from graphs.pipeline import build_now
from graphs.worker import Worker, WorkerConfig
from jobapi.services import graphdiff


def register(subparsers: argparse._SubParsersAction) -> None:
    graph = subparsers.add_parser("graph", help="build, export and query hyperlink graphs")
    sub = graph.add_subparsers(dest="graph_command", metavar="COMMAND", required=True)

    build = sub.add_parser("build", help="build the graph of a crawl job")
    build.add_argument("job", nargs="+", help="job id (several: one graph of all their links)")
    build.add_argument("--level", choices=LEVELS, default="page")
    build.add_argument("--metrics", default=",".join(DEFAULT_METRICS),
                       help=f"comma-separated, of: {', '.join(METRICS)}")
    build.add_argument("--crawled-only", action="store_true",
                       help="leave out link targets that were never fetched")
    build.add_argument("--self-loops", action="store_true", help="keep links to the same node")
    build.add_argument("--no-nofollow", action="store_true", help="leave out nofollow links")
    build.add_argument("--no-fold-redirects", action="store_true",
                       help="keep URLs that redirected as nodes, with an edge to their target")
    build.add_argument("--fold-canonical", action="store_true",
                       help="make a page that declares a canonical URL that URL's node")
    build.add_argument("--damping", type=float, default=0.85, help="PageRank damping")
    mode = build.add_mutually_exclusive_group()
    mode.add_argument("--wait", action="store_true", help="wait until a worker has built it")
    mode.add_argument("--inline", action="store_true",
                      help="build in this process instead of queueing it for a worker")
    build.add_argument("--timeout", type=float, default=3600.0, help="seconds --wait waits")
    build.set_defaults(func=cmd_build)

    export = sub.add_parser("export", help="write a finished build as a file")
    export.add_argument("build")
    export.add_argument("--format", choices=EXPORT_FORMATS, default="gexf")
    export.add_argument("--table", choices=("nodes", "edges"), default="nodes",
                        help="for --format csv: which table")
    export.add_argument("-o", "--output", help="file to write (default: standard output)")
    export.set_defaults(func=cmd_export)

    top = sub.add_parser("top", help="the top nodes of a finished build by a metric")
    top.add_argument("build")
    top.add_argument("--by", default="pagerank", help="a graph_nodes column, e.g. pagerank")
    top.add_argument("--limit", type=int, default=20)
    top.add_argument("--asc", action="store_true", help="smallest first")
    top.set_defaults(func=cmd_top)

    show = sub.add_parser("show", help="a build's status, counts, timings and summary (JSON)")
    show.add_argument("build")
    show.set_defaults(func=cmd_show)

    diff = sub.add_parser("diff", help="what changed from one finished build to another")
    diff.add_argument("a", help="the earlier build")
    diff.add_argument("b", help="the later build (same level)")
    diff.add_argument("--metric", default="pagerank",
                      help="node column whose change ranks the movers (both builds must have it)")
    diff.add_argument("--top", type=int, default=20, help="movers listed")
    diff.add_argument("--limit", type=int, default=100,
                      help="nodes and links listed per kind of change (counts are complete)")
    diff.add_argument("--csv", action="store_true", help="CSV rows instead of JSON")
    diff.set_defaults(func=cmd_diff)

    series = sub.add_parser("series", help="a schedule's crawls as one dynamic GEXF (Gephi)")
    series.add_argument("schedule", help="schedule id")
    series.add_argument("--level", choices=LEVELS, default="page")
    series.add_argument("-o", "--output", help="file to write (default: standard output)")
    series.set_defaults(func=cmd_series)

    rm = sub.add_parser("rm", help="delete a build that is not being built")
    rm.add_argument("build", metavar="BUILD")
    rm.add_argument("--api-url", help="the API (default: the local stack's)")
    rm.set_defaults(func=cmd_rm)

    worker = subparsers.add_parser("graph-worker", help="run the graph build worker")
    worker.add_argument("--once", action="store_true", help="exit when the queue is empty")
    worker.add_argument("--poll", type=float, default=2.0, help="seconds between queue polls")
    worker.add_argument("--heartbeat", type=float, default=5.0, help="seconds between heartbeats")
    worker.add_argument("--stale-after", type=float, default=60.0,
                        help="seconds without a heartbeat after which a running build is retried")
    worker.set_defaults(func=cmd_worker)


def _job_ids(values: list[str]) -> list[uuid.UUID]:
    try:
        return [uuid.UUID(v) for v in values]
    except ValueError:
        raise GraphNotFound(f"{values} is not a list of job ids.",
                            hint="Give job ids (UUIDs) as shown by the job API.") from None


def cmd_build(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    jobs = _job_ids(args.job)
    request = GraphBuildRequest(
        level=args.level,
        metrics=[m.strip() for m in args.metrics.split(",") if m.strip()],
        include_uncrawled=not args.crawled_only,
        self_loops=args.self_loops,
        nofollow=not args.no_nofollow,
        fold_redirects=not args.no_fold_redirects,
        fold_canonical=args.fold_canonical,
        damping=args.damping,
        extra_jobs=jobs[1:],
    ).validate()
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        owners = {}
        for job in jobs:
            row = conn.execute(store.SELECT_JOB_OWNER, (job,)).fetchone()
            if row is None:
                raise GraphNotFound(f"No job {job}.", hint="Check the id with the job API.")
            owners[job] = row[0]
        owner = owners[jobs[0]]
        if args.inline:
            conn.close()
            build_id = build_now(settings.database_url, settings.home, owner, jobs, request)
        else:
            build_id = store.create_build(conn, owner, jobs, request)
    print(build_id)
    if args.wait:
        return _wait(settings, build_id, args.timeout)
    return 0


def _wait(settings: Settings, build_id: uuid.UUID, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        last = None
        while True:
            build = store.get_build(conn, build_id)
            state = (build["status"], build["step"])
            if state != last:
                print(f"crawlgraph: build {build_id}: {build['status']}"
                      + (f" ({build['step']})" if build["step"] else ""), file=sys.stderr)
                last = state
            if build["status"] == "done":
                print(f"crawlgraph: {build['node_count']} nodes, {build['edge_count']} edges",
                      file=sys.stderr)
                return 0
            if build["status"] == "failed":
                raise GraphBuildFailed(f"Build {build_id} failed: {build['error']}")
            if time.monotonic() > deadline:
                raise GraphError(
                    f"Build {build_id} is still {build['status']} after {timeout:g} s.",
                    hint="Is a graph worker running? (`crawlgraph status`)")
            time.sleep(0.5)


def cmd_export(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        build = store.get_build(conn, args.build)
    g = store.load_graph(settings.home, build)
    _emit(exporter(args.format, args.table)(g), args.output)
    return 0


def _emit(chunks: Iterable[str], output: str | None, note: str = "") -> None:
    """Write `chunks` to the file `output` (whole or absent), else to standard output."""
    if output:
        write_chunks(chunks, output)
        print(f"crawlgraph: wrote {output}{note}", file=sys.stderr)
    else:
        for chunk in chunks:
            sys.stdout.write(chunk)


def cmd_top(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        build = store.get_build(conn, args.build)
        rows = store.top_nodes(conn, build, args.by, "asc" if args.asc else "desc", args.limit)
    print(f"{'RANK':>4}  {args.by.upper():>14}  LABEL")
    for rank, row in enumerate(rows, 1):
        value = row[args.by]
        shown = f"{value:.6g}" if isinstance(value, float) else str(value)
        print(f"{rank:>4}  {shown:>14}  {row['label']}")
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    deleted = call_once(args, "DELETE", f"/api/v1/graphs/{args.build}")
    print(f"graph build {deleted['id']} deleted: its nodes and file are purged in the "
          "background")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        build = store.get_build(conn, args.build)
    build.pop("owner_id", None)
    print(json.dumps(msgspec.to_builtins(build), indent=2))
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        a, b = store.get_build(conn, args.a), store.get_build(conn, args.b)
    result = diff_builds(settings.home, a, b, metric=args.metric, top=args.top, limit=args.limit)
    if args.csv:
        csv.writer(sys.stdout, lineterminator="\n").writerows([CSV_HEADER, *diff_rows(result)])
    else:
        print(json.dumps(msgspec.to_builtins(result), indent=2, ensure_ascii=False))
    return 0


def cmd_series(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    schedule = _job_ids([args.schedule])[0]
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        rows = conn.execute(graphdiff.SERIES_BUILDS, {"level": args.level, "schedule": schedule,
                                                      "limit": MAX_CRAWLS}).fetchall()
        graphdiff.plan(rows, schedule, args.level)
        found = [store.get_build(conn, build) for _, _, build in rows]
    crawls = [f"job {job}" for job, _, _ in rows]
    chunks = iter_dynamic_gexf((store.load_graph(settings.home, b) for b in found), crawls,
                               description=f"crawlgraph schedule {schedule}, {args.level} graphs")
    _emit(chunks, args.output, f" ({len(rows)} crawls)")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    settings = process_settings("graph-worker")
    worker = Worker(settings.database_url, settings.home, WorkerConfig(
        poll_seconds=args.poll, heartbeat_every=args.heartbeat, stale_after=args.stale_after))
    worker.install_signal_handlers()
    worker.run(once=args.once)
    return 0
