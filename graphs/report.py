"""The end of `make crawl`: a crawl's page and host graphs, their files and a summary.

    from graphs.report import crawl_report
    report = crawl_report(settings.database_url, settings.home, job_id, Path("out") / str(job_id))
    print(report.text)

`crawl_report` builds the page and host graphs in this process (no worker
needed), writes `page.gexf`, `page.graphml`, `host.gexf`, `nodes.csv` and
`edges.csv` into the output directory, and returns the summary text: pages,
links, hosts, errors, the 10 pages with the highest PageRank and the
components. `summarize` gives the same text for builds that already exist.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from graphs import store
from graphs.errors import GraphNotFound
from graphs.exports import write_bundle
from graphs.models import GraphBuildRequest
from graphs.pipeline import build_now

PAGE_METRICS = ["degree", "pagerank", "components", "kcore", "reciprocity", "density"]
HOST_METRICS = ["degree", "pagerank", "components", "reciprocity", "density"]

_COUNTS = """
SELECT
    (SELECT count(*) FROM pages WHERE job_id = %(job)s),
    (SELECT count(*) FROM links WHERE job_id = %(job)s),
    (SELECT coalesce(sum(count), 0) FROM links WHERE job_id = %(job)s),
    (SELECT count(*) FROM pages WHERE job_id = %(job)s AND (status >= 400 OR status = 0
                                                             OR error IS NOT NULL))
"""
_ERROR_KINDS = """
SELECT CASE WHEN status = 0 OR error IS NOT NULL THEN coalesce(left(error, 60), 'no response')
            ELSE 'HTTP ' || status END AS kind, count(*)
FROM pages WHERE job_id = %(job)s AND (status >= 400 OR status = 0 OR error IS NOT NULL)
GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 5
"""


@dataclass
class CrawlReport:
    """What `crawl_report` made: the build ids, the files and the summary text."""

    job_id: uuid.UUID
    page_build: uuid.UUID
    host_build: uuid.UUID
    files: list[Path] = field(default_factory=list)
    text: str = ""


@dataclass
class CrawlSummary:
    """The figures of a crawl's summary, however they were gathered (database or API)."""

    job: str
    pages: int
    links: int
    errors: int
    page_build: dict
    top: list[dict]
    status: str | None = None
    anchors: int | None = None
    host_build: dict | None = None
    error_kinds: list[tuple[str, int]] = field(default_factory=list)
    #: The per-site table as the command line renders it (`cli.summary.site_table`).
    site_lines: list[str] = field(default_factory=list)
    #: The crawl's own summary (pages, errors) was printed just before: not again.
    after_crawl_summary: bool = False
    files: list[Path] = field(default_factory=list)

    def text(self) -> str:
        """The summary as `make crawl` prints it."""
        page, host = self.page_build, self.host_build
        if self.after_crawl_summary:
            lines = ["graphs"]
        else:
            lines = [f"crawl {self.job}" + (f": {self.status}" if self.status else ""),
                     f"  pages    {self.pages:,}"]
        if self.anchors is not None:
            lines.append(f"  links    {self.links:,} distinct ({self.anchors:,} <a> elements)")
        else:
            lines.append(f"  links    {self.links:,} page-to-page edges")
        if host is not None:
            lines.append(_hosts_line(host))
        if not self.after_crawl_summary:
            lines.append(f"  errors   {self.errors:,}" + (
                "  (" + ", ".join(f"{kind}: {n}" for kind, n in self.error_kinds) + ")"
                if self.error_kinds else ""))
        nodes = page["node_count"]
        unfetched = (f" ({nodes - self.pages:,} more than the pages: URLs linked to but not "
                     "crawled, such as offsite ones)" if nodes > self.pages else "")
        lines.append(f"  page graph: {nodes:,} nodes, {page['edge_count']:,} edges{unfetched}")
        comp = (page.get("summary") or {}).get("components")
        if comp:
            lines.append(f"  components: {comp['weak']:,} weak (largest {comp['largest_weak']:,} "
                         f"nodes), {comp['strong']:,} strong (largest "
                         f"{comp['largest_strong']:,})")
        if self.top:
            lines.append(f"  top {len(self.top)} pages by PageRank:")
            for rank, node in enumerate(self.top, 1):
                lines.append(f"    {rank:>2}. {node.get('pagerank') or 0:.5f}  {node['label']}")
        return "\n".join(lines + self.site_lines + _files_lines(self.files))


def _hosts_line(host: dict) -> str:
    """Hosts, and how many of them were only linked to (an offsite link's host)."""
    nodes, edges = host["node_count"], host["edge_count"]
    crawled = (host.get("summary") or {}).get("crawled_nodes")
    split = (f": {crawled:,} crawled, {nodes - crawled:,} only linked to"
             if crawled is not None and crawled < nodes else "")
    return f"  hosts    {nodes:,}{split} ({edges:,} host-to-host edge{'s' * (edges != 1)})"


def _files_lines(files: Sequence[Path]) -> list[str]:
    """The exported files: their directory once, then their names."""
    if not files:
        return []
    folders = {path.parent for path in files}
    if len(folders) == 1:
        return [f"  files    {folders.pop()}/", "           "
                + "  ".join(path.name for path in files)]
    return ["  files"] + [f"           {path}" for path in files]


def summarize(database_url: str, job_id: uuid.UUID | str, page_build: uuid.UUID | str,
              host_build: uuid.UUID | str | None = None, top: int = 10,
              files: Sequence[Path] = ()) -> str:
    """The summary of a crawl from its finished page (and host) builds."""
    job = uuid.UUID(str(job_id))
    with psycopg.connect(database_url, autocommit=True) as conn:
        pages, links, anchors, errors = conn.execute(_COUNTS, {"job": job}).fetchone()
        kinds = conn.execute(_ERROR_KINDS, {"job": job}).fetchall()
        page = store.get_build(conn, page_build)
        best = store.top_nodes(conn, page, "pagerank", "desc", top)
        host = store.get_build(conn, host_build) if host_build else None
        if host is not None:
            store.require_done(host)
    return CrawlSummary(job=str(job), pages=pages, links=links, anchors=anchors,
                        errors=errors, error_kinds=[tuple(k) for k in kinds], page_build=page,
                        host_build=host, top=best, files=list(files)).text()


def crawl_report(database_url: str, home: Path, job_id: uuid.UUID | str, out_dir: Path,
                 owner_id: int | None = None) -> CrawlReport:
    """Build the page and host graphs of a job, write its files, and summarize it."""
    job = uuid.UUID(str(job_id))
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(store.SELECT_JOB_OWNER, (job,)).fetchone()
    if row is None:
        raise GraphNotFound(f"No job {job}.", hint="Check the job id.")
    owner = owner_id if owner_id is not None else row[0]
    page_build = build_now(database_url, home, owner, [job],
                           GraphBuildRequest(level="page", metrics=PAGE_METRICS))
    host_build = build_now(database_url, home, owner, [job],
                           GraphBuildRequest(level="host", metrics=HOST_METRICS))
    with psycopg.connect(database_url, autocommit=True) as conn:
        page_graph = store.load_graph(home, store.get_build(conn, page_build))
        host_graph = store.load_graph(home, store.get_build(conn, host_build))
    files = write_bundle(out_dir, page_graph, host_graph)
    text = summarize(database_url, job, page_build, host_build, files=files)
    return CrawlReport(job_id=job, page_build=page_build, host_build=host_build, files=files,
                       text=text)
