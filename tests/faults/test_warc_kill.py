"""Scenario 25: `kill -9` a crawler worker that writes a job's WARC files, start another.

The victim's file is left ``.open`` with whatever reached the disk; the next
worker of the job closes it out (keeps its whole records, cuts a half one,
renames it, records it in ``warc_files``), and the pages the victim had
leased are fetched again and archived again: the job's WARC files hold every
page of the site, readable end to end by warcio.
"""

from __future__ import annotations

import json
import os
import signal
from collections import Counter
from pathlib import Path

import psycopg
import pytest
from warcio.archiveiterator import ArchiveIterator

from crawler.warcfiles import NAME
from tests.test_crawl_reliability import leased_urls, wait_pages, wait_running
from tests.test_spider_site_stack import make_job, schedule_site, seed, wait_finished

PAGES = 600


def read_file(path: Path) -> list[tuple[str, str | None]]:
    """(type, target URI) of every record; fails on any unreadable byte or bad digest."""
    with open(path, "rb") as fh:
        return [(r.rec_type, r.rec_headers.get_header("WARC-Target-URI"))
                for r in ArchiveIterator(fh, check_digests="raise")]


@pytest.mark.slow
@pytest.mark.scenario(25, done="kill -9 a worker of a warc: true job mid-crawl, start another",
                      checked="the dead worker's file closed out and readable by warcio to its "
                              "last record, recorded closed with its size; every page of the "
                              "site archived; only pages leased at the kill archived twice")
def test_a_killed_workers_warc_file_is_closed_out_and_its_pages_archived_again(
        mock_server, scrapyd_url, database_url, redis_url, tmp_path) -> None:
    server = mock_server(pages=PAGES, seed=25, page_delay=0.01)
    job = make_job(database_url)
    seed(redis_url, job, [server.start_url])
    args = {"start_urls": json.dumps([server.start_url]), "warc": "true"}
    settings = {"CRAWLGRAPH_WARC_DIR": tmp_path, "CRAWLGRAPH_LEASE_SECONDS": 4}
    first = schedule_site(scrapyd_url, job, args, database_url, redis_url, **settings)
    victim = wait_running(scrapyd_url, first)
    wait_pages(database_url, job, 150)
    os.kill(victim, signal.SIGKILL)
    held_at_kill = leased_urls(redis_url, job)
    left_open = [p.name for p in tmp_path.glob("*.open")]
    assert len(left_open) == 1, left_open
    replacement = schedule_site(scrapyd_url, job, args, database_url, redis_url, **settings)
    wait_finished(scrapyd_url, [first, replacement], timeout=240)

    files = sorted(tmp_path.iterdir())
    assert all(NAME.match(p.name) for p in files), [p.name for p in files]  # none left .open
    assert len(files) == 2
    contents = {p.name: read_file(p) for p in files}
    dead = left_open[0].removesuffix(".open")
    assert contents[dead][0][0] == "warcinfo" and len(contents[dead]) > 2
    with psycopg.connect(database_url) as conn:
        rows = {r[0]: r[1:] for r in conn.execute(
            "SELECT name, bytes, records, closed_at IS NOT NULL FROM warc_files "
            "WHERE job_id = %s", (job,))}
    assert rows == {p.name: (p.stat().st_size, len(contents[p.name]), True) for p in files}

    responses = Counter(uri for records in contents.values()
                        for kind, uri in records if kind == "response")
    robots = server.origin + "/robots.txt"
    assert set(responses) == server.site.page_urls(server.origin) | {robots}
    twice = {uri for uri, n in responses.items() if n > 1} - {robots}
    # The victim archived pages it had not acknowledged yet: those are fetched again.
    assert twice, "no page was archived by both workers"
    assert twice <= held_at_kill, sorted(twice - held_at_kill)[:5]
    # No archived response without a request from the server's point of view.
    fetched = Counter(server.origin + r.path for r in server.requests())
    assert all(responses[uri] <= fetched[uri] for uri in responses)
