"""Scenario 27: `kill -9` a worker of a recrawl mid-crawl, start another.

The pages the victim had leased are fetched again by the next worker, with
the same conditional requests (their validators come from the previous job,
not from anything the victim wrote): every page of the new version is still
marked as the site generator says, an unchanged page is never downloaded,
and the recrawl's links are the new version's.
"""

from __future__ import annotations

import json
import os
import signal
from collections import defaultdict

import psycopg
import pytest

from tests.siteversions import truth
from tests.test_crawl_reliability import wait_pages, wait_running
from tests.test_spider_site_stack import make_job, schedule_site, seed, wait_finished

PAGES = 400


def _crawl(scrapyd_url: str, database_url: str, redis_url: str, start_url: str,
           **args: str) -> tuple[str, str]:
    job = make_job(database_url)
    seed(redis_url, job, [start_url])
    scrapyd_job = schedule_site(scrapyd_url, job, {"start_urls": json.dumps([start_url]),
                                                   **args},
                                database_url, redis_url, CRAWLGRAPH_LEASE_SECONDS=4)
    return job, scrapyd_job


@pytest.mark.slow
@pytest.mark.scenario(27, done="kill -9 the worker of a recrawl mid-crawl, start another",
                      checked="every page marked new/changed/unchanged as the generator says; "
                              "no unchanged page answered 200; the links are the new version's")
def test_a_killed_recrawl_worker_loses_no_mark_and_downloads_nothing_unchanged(
        mock_server, scrapyd_url, database_url, redis_url) -> None:
    server = mock_server(pages=PAGES, seed=27, links_per_page=4, conditional=True,
                         page_delay=0.01)
    origin, old = server.origin, server.site
    first, process = _crawl(scrapyd_url, database_url, redis_url, server.start_url)
    wait_finished(scrapyd_url, [process], timeout=240)
    server.configure(version=1)
    expected = {u: c for u, c in truth(old, server.site, origin).items() if c != "gone"}
    sent_before = len(server.responses())

    second, victim_job = _crawl(scrapyd_url, database_url, redis_url, server.start_url,
                                recrawl_of=first)
    victim = wait_running(scrapyd_url, victim_job)
    wait_pages(database_url, second, 100)
    os.kill(victim, signal.SIGKILL)
    replacement = schedule_site(scrapyd_url, second, {"start_urls": json.dumps(
        [server.start_url]), "recrawl_of": first}, database_url, redis_url,
        CRAWLGRAPH_LEASE_SECONDS=4)
    wait_finished(scrapyd_url, [victim_job, replacement], timeout=240)

    with psycopg.connect(database_url) as conn:
        marks = dict(conn.execute("SELECT url, change FROM pages WHERE job_id = %s",
                                  (second,)).fetchall())
        links = set(conn.execute("SELECT source_url, target_url FROM link_urls WHERE job_id = %s",
                                 (second,)).fetchall())
    assert marks == expected
    statuses: dict[str, set[int]] = defaultdict(set)
    for answer in server.responses()[sent_before:]:
        statuses[origin + answer["path"]].add(answer["status"])
    assert set(statuses) == set(expected)
    for url, change in expected.items():
        assert statuses[url] == ({304} if change == "unchanged" else {200}), url
    assert links == server.site.link_set(origin)
