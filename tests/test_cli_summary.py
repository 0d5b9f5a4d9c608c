"""The summary the command line prints: every part shown, crawled text made harmless."""

from __future__ import annotations

import json

from cli.main import main
from cli.summary import render, site_table
from cli.watch import _progress, watch

SUMMARY = {
    "pages": 25, "pages_by_status": {"2xx": 20, "3xx": 0, "4xx": 2, "5xx": 0, "failed": 3},
    "errors": [
        {"cause": "dns", "meaning": "the name does not resolve", "count": 3,
         "example_url": "https://gone.example/", "example_error":
         "dns: gone.example: the name does not resolve (CannotResolveHostError: x)"},
        {"cause": "http_404", "meaning": "HTTP 404 Not Found", "count": 2,
         "example_url": "https://a.example/\x1b[2Jold", "example_error": None},
    ],
    "robots": [{"decision": "disallowed", "robots_status": 200, "count": 4,
                "example_url": "https://a.example/admin"}],
    "events": [], "offsite_links": 9,
    "cap": {"max_pages": 25, "message": "The crawl stopped at its cap of 25 pages: the graph "
            "is cut.", "command": "crawlgraph crawl-to-graph https://a.example/ --max-pages 250"},
}


def test_every_part_of_the_summary_is_printed():
    text = "\n".join(render(SUMMARY, "crawl-to-graph", {"start_urls": ["https://a.example/"]}))
    assert "pages    25: 2xx 20 · 3xx 0 · 4xx 2 · 5xx 0 · failed 3" in text
    assert "3  the name does not resolve" in text and "(gone.example)" in text
    assert "HTTP 404 Not Found" in text
    assert "4 URLs disallowed by robots.txt (status 200)" in text
    assert "9 links left the crawl's scope" in text
    assert "the graph is cut" in text
    assert ("crawl more: crawlgraph crawl-to-graph https://a.example/ --max-pages 250  "
            "(or: make crawl" in text)


def test_redirects_followed_are_said_so_that_3xx_0_does_not_puzzle():
    text = "\n".join(render({**SUMMARY, "redirects": 10}))
    assert "redirects 10 followed: each page is counted once, where it landed" in text
    assert "redirects" not in "\n".join(render({**SUMMARY, "redirects": 0}))


def test_a_recrawl_says_what_changed_against_the_job_it_recrawls():
    changes = {"new": 3, "changed": 430, "unchanged": 4521, "gone": 49}
    text = "\n".join(render({**SUMMARY, "changes": changes}, params={"recrawl_of": "j-1"}))
    assert "changes  against job j-1: new 3 · changed 430 · unchanged 4,521 · gone 49" in text
    assert "changes" not in "\n".join(render({**SUMMARY, "changes": None}))


def test_the_cap_notice_suggests_the_command_that_was_run():
    params = {"start_urls": ["https://a.example/", "https://b.example/?q=1&r=2"]}
    text = "\n".join(render(SUMMARY, "crawl", params))
    assert ("crawl more: crawlgraph crawl https://a.example/ 'https://b.example/?q=1&r=2' "
            "--max-pages 250") in text
    assert "crawl-to-graph" not in text and "make crawl" not in text


def test_control_characters_from_crawled_urls_never_reach_the_terminal():
    text = "\n".join(render(SUMMARY))
    assert "\x1b" not in text and "https://a.example/?[2Jold" in text


def test_progress_shows_a_percentage_only_against_a_near_cap():
    job = {"status": "running", "stats": {"pages": 99, "pages_per_s": 7.0}}
    stored = {"pages": 40, "pages_by_status": {"2xx": 37, "4xx": 1, "failed": 2}}
    far = _progress(job, stored, 20.0, 100_000)
    assert "%" not in far and "pages 40 of at most 100,000" in far and "2.0 pages/s" in far
    near = _progress(job, stored, 20.0, 100)
    assert "40%" in near and "[########" in near
    assert "%" not in _progress(job, stored, 20.0, None)


def _site(name: str, pages: int, errors: int = 0, robots: str = "allowed",
          kept_out: int = 0) -> dict:
    return {"site": name, "pages": pages, "errors": errors, "robots": robots,
            "robots_kept_out": kept_out,
            "pages_by_status": {"2xx": pages - errors, "3xx": 0, "4xx": errors, "5xx": 0,
                                "failed": 0}}


def test_a_long_site_table_shows_the_top_sites_and_how_many_more():
    sites = [_site(f"site{i:03d}.test", 100 - i, errors=i % 3) for i in range(25)]
    sites[1] = _site("bad\x1b[2J.test", 99, robots="disallowed", kept_out=5)
    lines = site_table({"job_id": "J1", "sites": sites, "site_count": 25}, top=10)
    text = "\n".join(lines)
    assert lines[0] == "  sites    25, the most pages first:"
    assert len(lines) == 1 + 1 + 10 + 1  # the heading, the header, ten rows, the rest
    assert "site000.test" in lines[2] and "100" in lines[2]
    assert "disallowed (5 URLs kept out)" in lines[3] and "\x1b" not in text
    assert "site009.test" in text and "site010.test" not in text
    assert lines[-1].strip() == "… and 15 more (every site: crawlgraph summary J1 --json)"
    # A job of one site has no table: the figures above it say it all.
    assert site_table({"sites": [_site("a.example", 3)], "site_count": 1}) == []


class _Api:
    """The API's answers for a finished job (a fake of the HTTP client, for the watcher)."""

    def __init__(self, summary: dict) -> None:
        self.summary = summary
        self.calls: list[tuple[str, dict | None]] = []

    def call(self, method: str, path: str, params: dict | None = None) -> dict:
        self.calls.append((path, params))
        if path.endswith("/summary"):
            return self.summary if params is None else {**self.summary, "sites": []}
        return {"id": "J1", "status": "finished", "close_reason": "max_pages",
                "params": {"start_urls": ["https://a.example/"]},
                "stats": {"pages": 27, "items": 90, "rows_stored": 90}, "frontier": {}}

    def close(self) -> None:
        pass


class _Out:
    def __init__(self) -> None:
        self.text = ""

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> None:
        self.text += text

    def flush(self) -> None:
        pass


def test_the_progress_line_and_the_summary_count_the_same_pages():
    api, out = _Api({**SUMMARY, "sites": [_site("a.example", 20), _site("b.example", 5)],
                     "site_count": 2}), _Out()
    assert watch(api, "J1", max_pages=25, out=out, command="crawl") == 0
    progress = next(line for line in out.text.splitlines() if " pages " in line)
    # 25 pages stored (robots.txt is no page: the job's 27 responses are not the figure).
    assert "pages 25" in progress and "errors 5" in progress
    assert "pages    25: 2xx 20" in out.text
    assert "crawl more: crawlgraph crawl https://a.example/ --max-pages 250" in out.text
    assert "b.example" in out.text  # the site table
    # The progress asks for the figures only, without the site table.
    assert ("/api/v1/jobs/J1/summary", {"sites": 0}) in api.calls


def test_summary_command_prints_the_whole_summary_as_json(monkeypatch, capsys):
    sites = [_site(f"s{i}.test", 30 - i) for i in range(30)]
    api = _Api({**SUMMARY, "job_id": "J1", "sites": sites, "site_count": 30})
    monkeypatch.setattr("cli.summary.client_for", lambda args: api)
    assert main(["summary", "J1", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["sites"]) == 30
    assert main(["summary", "J1"]) == 0
    out = capsys.readouterr().out
    assert "s9.test" in out and "s10.test" not in out and "and 20 more" in out


def test_make_crawls_summary_ends_with_the_site_table():
    from graphs.report import CrawlSummary

    stored = {"job_id": "J1", "site_count": 12,
              "sites": [_site(f"s{i:02d}.test", 20 - i) for i in range(12)]}
    text = CrawlSummary(job="J1", pages=174, links=300, errors=0,
                        page_build={"node_count": 174, "edge_count": 300}, top=[],
                        site_lines=site_table(stored)).text()
    assert text.splitlines()[-1].endswith("… and 2 more (every site: crawlgraph summary J1 "
                                          "--json)")
    assert "  sites    12, the most pages first:" in text and "s09.test" in text
