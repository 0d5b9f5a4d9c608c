"""`GET /api/v1/jobs/{id}/summary`: pages by status class, errors by cause, robots, the cap.

The rows are written the way the crawler writes them (a failed fetch's error
starts with its cause, `crawler.failures`), and the summary is compared with
what was written.
"""

from __future__ import annotations

import json
import uuid

import psycopg

from tests.api_fixtures import assert_error, login

pytest_plugins = ["tests.api_fixtures"]

PAGES = [  # url, status, error
    ("https://a.example/", 200, None),
    ("https://a.example/1", 200, None),
    ("https://a.example/moved", 301, None),
    ("https://a.example/old", 404, None),
    ("https://a.example/older", 404, None),
    ("https://a.example/boom", 503, None),
    ("https://gone.example/", 0,
     "dns: gone.example: the name does not resolve (CannotResolveHostError: no results)"),
    ("https://gone.example/x", 0,
     "dns: gone.example: the name does not resolve (CannotResolveHostError: no results)"),
    ("https://gone.example/y", 0,
     "dns: gone.example: the name does not resolve (CannotResolveHostError: no results)"),
    ("https://slow.example/", 0, "timeout: slow.example: no answer in time (DownloadTimeout)"),
    ("https://legacy.example/", 0, "TimeoutError: an error stored before causes were kept"),
]


def make_job(database_url: str, owner: int, *, status: str, close_reason: str | None,
             max_pages: int | None) -> uuid.UUID:
    job_id = uuid.uuid4()
    params = {"start_urls": ["https://a.example/"], "max_pages": max_pages}
    with psycopg.connect(database_url) as conn:
        conn.execute("INSERT INTO jobs (id, owner_id, spider, status, params, close_reason, "
                     "stats) VALUES (%s, %s, 'site', %s, %s, %s, %s)",
                     (job_id, owner, status, json.dumps(params), close_reason,
                      json.dumps({"pages": len(PAGES), "offsite": 7})))
        for url, code, error in PAGES:
            conn.execute("INSERT INTO pages (job_id, url, final_url, status, fetched_at, error) "
                         "VALUES (%s, %s, %s, %s, now(), %s)", (job_id, url, url, code, error))
        conn.execute("INSERT INTO robots_decisions (job_id, url, host, decision, robots_status) "
                     "VALUES (%s, 'https://a.example/admin', 'a.example', 'disallowed', 200), "
                     "(%s, 'https://a.example/admin/2', 'a.example', 'disallowed', 200)",
                     (job_id, job_id))
        conn.execute("INSERT INTO crawl_events (job_id, host, kind, url, status, detail) "
                     "VALUES (%s, 'a.example', 'cut_off', 'https://a.example/big', 0, 'size')",
                     (job_id,))
    return job_id


def test_summary_counts_what_was_stored(client, users, database_url):
    job_id = make_job(database_url, users["alice"], status="finished",
                      close_reason="max_pages", max_pages=11)
    response = client.get(f"/api/v1/jobs/{job_id}/summary", headers=login(client, "alice"))
    assert response.status_code == 200, response.text
    summary = response.json()
    assert summary["pages"] == len(PAGES)
    assert summary["pages_by_status"] == {"2xx": 2, "3xx": 1, "4xx": 2, "5xx": 1, "failed": 5}
    errors = [(e["cause"], e["count"]) for e in summary["errors"]]
    assert errors == [("dns", 3), ("http_404", 2), ("error", 1), ("http_503", 1),
                      ("timeout", 1)]
    dns = summary["errors"][0]
    assert dns["meaning"] == "the name does not resolve"
    assert dns["example_url"] == "https://gone.example/"
    assert summary["errors"][1]["meaning"] == "HTTP 404 Not Found"
    assert summary["robots"] == [{"decision": "disallowed", "robots_status": 200, "count": 2,
                                  "example_url": "https://a.example/admin"}]
    assert [(e["kind"], e["count"]) for e in summary["events"]] == [("cut_off", 1)]
    assert summary["offsite_links"] == 7
    cap = summary["cap"]
    assert cap["max_pages"] == 11 and "the graph is cut" in cap["message"]
    assert "--max-pages 110" in cap["command"] and "https://a.example/" in cap["command"]


def test_no_cap_notice_when_the_crawl_was_not_cut(client, users, database_url):
    job_id = make_job(database_url, users["alice"], status="finished", close_reason="finished",
                      max_pages=1000)
    summary = client.get(f"/api/v1/jobs/{job_id}/summary",
                         headers=login(client, "alice")).json()
    assert summary["cap"] is None


def test_another_users_summary_is_a_404(client, users, database_url):
    job_id = make_job(database_url, users["alice"], status="running", close_reason=None,
                      max_pages=None)
    response = client.get(f"/api/v1/jobs/{job_id}/summary", headers=login(client, "bob"))
    assert_error(response, 404, "not_found")


SITE_PAGES = [  # url, final url, status, error
    ("https://www.a.example/", "https://www.a.example/", 200, None),
    ("http://a.example/x", "https://www.a.example/x", 200, None),  # found through the apex
    ("https://a.example/gone", "https://a.example/gone", 404, None),
    ("https://www.a.example/boom", "https://www.a.example/boom", 503, None),
    ("https://b.example:8443/", "https://b.example:8443/", 200, None),
    ("https://dead.example/", "https://dead.example/", 0,
     "robots_unreachable: dead.example: robots.txt could not be fetched (refused)"),
    ("https://blog.a.example/", "https://blog.a.example/", 200, None),
]


def make_sites_job(database_url: str, owner: int, scope: str = "site",
                   obey_robots: bool = True) -> uuid.UUID:
    job_id = uuid.uuid4()
    params = {"start_urls": ["https://www.a.example/"], "scope": scope,
              "obey_robots": obey_robots}
    with psycopg.connect(database_url) as conn:
        conn.execute("INSERT INTO jobs (id, owner_id, spider, status, params) "
                     "VALUES (%s, %s, 'site', 'finished', %s)",
                     (job_id, owner, json.dumps(params)))
        for url, final, code, error in SITE_PAGES:
            conn.execute("INSERT INTO pages (job_id, url, final_url, status, fetched_at, error) "
                         "VALUES (%s, %s, %s, %s, now(), %s)", (job_id, url, final, code, error))
        conn.execute("INSERT INTO robots_decisions (job_id, url, host, decision, robots_status) "
                     "VALUES (%s, 'https://www.a.example/admin', 'www.a.example', 'disallowed', "
                     "200), (%s, 'https://b.example:8443/x', 'b.example:8443', 'unavailable', "
                     "503)", (job_id, job_id))
        conn.execute("INSERT INTO crawl_events (job_id, host, kind, url, status, detail) VALUES "
                     "(%s, 'dead.example', 'robots_unavailable', 'https://dead.example/robots.txt'"
                     ", 0, 'refused'), (%s, 'b.example:8443', 'robots_unavailable', "
                     "'https://b.example:8443/robots.txt', 503, 'server error')",
                     (job_id, job_id))
    return job_id


def _sites(client, job_id, **params) -> dict:
    response = client.get(f"/api/v1/jobs/{job_id}/summary", params=params,
                          headers=login(client, "alice"))
    assert response.status_code == 200, response.text
    return response.json()


def test_the_site_table_groups_www_and_the_apex_and_says_what_robots_did(
        client, users, database_url):
    job_id = make_sites_job(database_url, users["alice"])
    summary = _sites(client, job_id)
    sites = {s["site"]: s for s in summary["sites"]}
    assert summary["site_count"] == 4 and len(summary["sites"]) == 4
    # The most pages first.
    assert [s["site"] for s in summary["sites"]] == [
        "a.example", "b.example:8443", "blog.a.example", "dead.example"]
    a = sites["a.example"]
    assert a["pages"] == 4 and a["errors"] == 2
    assert a["pages_by_status"] == {"2xx": 2, "3xx": 0, "4xx": 1, "5xx": 1, "failed": 0}
    assert (a["robots"], a["robots_kept_out"]) == ("disallowed", 1)
    b = sites["b.example:8443"]
    assert (b["pages"], b["errors"], b["robots"], b["robots_kept_out"]) == (1, 0, "error", 1)
    dead = sites["dead.example"]
    assert (dead["pages"], dead["errors"], dead["robots"]) == (1, 1, "unreachable")
    assert sites["blog.a.example"]["robots"] == "allowed"
    # The table adds up to the job's figures.
    assert sum(s["pages"] for s in summary["sites"]) == summary["pages"]
    for name, count in summary["pages_by_status"].items():
        assert sum(s["pages_by_status"][name] for s in summary["sites"]) == count


def test_the_site_table_follows_the_scope_and_can_be_cut(client, users, database_url):
    by_host = _sites(client, make_sites_job(database_url, users["alice"], scope="host"))
    assert {s["site"]: s["pages"] for s in by_host["sites"]} == {
        "www.a.example": 3, "a.example": 1, "b.example:8443": 1, "dead.example": 1,
        "blog.a.example": 1}
    by_domain = _sites(client, make_sites_job(database_url, users["alice"], scope="domain"))
    assert {s["site"]: s["pages"] for s in by_domain["sites"]} == {
        "a.example": 5, "b.example": 1, "dead.example": 1}
    job_id = make_sites_job(database_url, users["alice"], obey_robots=False)
    top = _sites(client, job_id, sites=1)
    assert [s["site"] for s in top["sites"]] == ["a.example"] and top["site_count"] == 4
    assert top["sites"][0]["robots"] == "not_obeyed"
    none = _sites(client, job_id, sites=0)
    assert none["sites"] == [] and none["site_count"] is None and none["pages"] == 7


def test_summary_counts_the_redirect_hops_followed(client, users, database_url):
    job_id = make_job(database_url, users["alice"], status="finished", close_reason="finished",
                      max_pages=None)
    with psycopg.connect(database_url) as conn:
        conn.execute("INSERT INTO redirects (job_id, url, target_url, status) VALUES "
                     "(%s, 'http://a.example/', 'https://a.example/', 301), "
                     "(%s, 'https://a.example/moved', 'https://a.example/1', 302)",
                     (job_id, job_id))
    headers = login(client, "alice")
    summary = client.get(f"/api/v1/jobs/{job_id}/summary", headers=headers).json()
    assert summary["redirects"] == 2
    assert summary["pages_by_status"]["3xx"] == 1  # the stored 301 page, not the hops
