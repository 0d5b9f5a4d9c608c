"""Recrawls against the real stack: a site crawled, changed, and crawled again conditionally.

The mock server honours `If-None-Match` / `If-Modified-Since` and logs every
answer it sends; `tests.siteversions` changes, removes and adds pages and
says which. The recrawl must download exactly the changed and new pages
(304s for the rest, no body sent), mark every page as the generator says,
and build the new version's link graph.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from pathlib import Path

import networkx as nx
import psycopg

from graphs import store
from graphs.exports import write_export
from graphs.models import GraphBuildRequest
from graphs.pipeline import build_now
from tests.crawlrun import run_crawl
from tests.graphdata import make_job, make_user
from tests.siteversions import truth

SITE = "crawler.spiders.site.SiteSpider"


def _crawl(database_url: str, redis_url: str, owner: int, start_url: str,
           recrawl_of: uuid.UUID | None = None) -> uuid.UUID:
    with psycopg.connect(database_url, autocommit=True) as conn:
        job = make_job(conn, owner, status="running")
        conn.execute("UPDATE jobs SET recrawl_of = %s WHERE id = %s", (recrawl_of, job))
    args = {"job_id": str(job), "start_urls": json.dumps([start_url])}
    if recrawl_of is not None:
        args["recrawl_of"] = str(recrawl_of)
    settings = {"CRAWLGRAPH_DATABASE_URL": database_url, "CRAWLGRAPH_REDIS_URL": redis_url,
                "CRAWLGRAPH_ALLOW_PRIVATE_NETWORKS": True}
    result = run_crawl(SITE, args, settings, stack=True, timeout=240)
    assert result.reason == "finished", result.log[-3000:]
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE jobs SET status = 'finished' WHERE id = %s", (job,))
    return job


def _changes(database_url: str, job: uuid.UUID) -> dict[str, str | None]:
    with psycopg.connect(database_url) as conn:
        return dict(conn.execute("SELECT url, change FROM pages WHERE job_id = %s",
                                 (job,)).fetchall())


def _exported_edges(database_url: str, home: Path, job: uuid.UUID) -> tuple[
        set[str], dict[tuple[str, str], int]]:
    with psycopg.connect(database_url) as conn:
        owner = conn.execute(store.SELECT_JOB_OWNER, (job,)).fetchone()[0]
    build_id = build_now(database_url, home, owner, [job], GraphBuildRequest(metrics=["degree"]))
    with psycopg.connect(database_url) as conn:
        g = store.load_graph(home, store.get_build(conn, build_id))
    graph = nx.node_link_graph(json.loads(write_export(g, "json", home / f"{build_id}.json")
                                          .read_text()), edges="links")
    labels = dict(graph.nodes(data="label"))
    return set(labels.values()), {(labels[s], labels[t]): d["weight"]
                                  for s, t, d in graph.edges(data=True)}


def test_a_recrawl_downloads_only_what_changed_and_builds_the_new_graph(
        mock_server, database_url, redis_url, tmp_path):
    server = mock_server(pages=40, seed=5, links_per_page=4, conditional=True)
    origin, old = server.origin, server.site
    with psycopg.connect(database_url, autocommit=True) as conn:
        owner = make_user(conn)
    first = _crawl(database_url, redis_url, owner, server.start_url)
    assert set(_changes(database_url, first).values()) == {None}  # no recrawl, no marks
    assert all(a["status"] == 200 for a in server.responses())

    server.configure(version=1)
    new = server.site
    expected = truth(old, new, origin)
    counts = Counter(expected.values())
    assert counts["changed"] and counts["unchanged"] and counts["new"] and counts["gone"]
    sent_before = len(server.responses())
    second = _crawl(database_url, redis_url, owner, server.start_url, recrawl_of=first)

    # The server's own log: a 304 with no body for every unchanged page, a 200 for the rest.
    answers = {origin + a["path"]: a for a in server.responses()[sent_before:]}
    assert set(answers) == {u for u, c in expected.items() if c != "gone"}
    for url, answer in answers.items():
        if expected[url] == "unchanged":
            assert (answer["status"], answer["bytes"]) == (304, 0), url
        else:
            assert answer["status"] == 200 and answer["bytes"] > 0, url

    # Every page marked as the generator says; gone = the previous pages not reached.
    marks = _changes(database_url, second)
    assert marks == {u: c for u, c in expected.items() if c != "gone"}
    gone = set(_changes(database_url, first)) - set(marks)
    assert gone == {u for u, c in expected.items() if c == "gone"}

    # The recrawl's page graph is the new version's link graph, 304s included.
    links: Counter = Counter()
    for path, spec in new.pages.items():
        for link in spec.links:
            if link.target != path:
                links[(origin + path, origin + link.target)] += 1
    nodes, edges = _exported_edges(database_url, tmp_path, second)
    assert nodes == new.page_urls(origin)
    assert edges == dict(links)
