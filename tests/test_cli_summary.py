"""The summary the command line prints: every part shown, crawled text made harmless."""

from __future__ import annotations

from cli.summary import render
from cli.watch import _progress

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
    text = "\n".join(render(SUMMARY))
    assert "pages    25: 2xx 20 · 3xx 0 · 4xx 2 · 5xx 0 · failed 3" in text
    assert "3  the name does not resolve" in text and "(gone.example)" in text
    assert "HTTP 404 Not Found" in text
    assert "4 URLs disallowed by robots.txt (status 200)" in text
    assert "9 links left the crawl's scope" in text
    assert "the graph is cut" in text and "--max-pages 250" in text


def test_control_characters_from_crawled_urls_never_reach_the_terminal():
    text = "\n".join(render(SUMMARY))
    assert "\x1b" not in text and "https://a.example/?[2Jold" in text


def test_progress_shows_a_percentage_only_against_a_near_cap():
    job = {"status": "running", "stats": {"pages": 40, "pages_per_s": 2.0}}
    far = _progress(job, 20.0, 100_000)
    assert "%" not in far and "pages 40 of at most 100,000" in far and "2.0 pages/s" in far
    near = _progress(job, 20.0, 100)
    assert "40%" in near and "[########" in near
    assert "%" not in _progress(job, 20.0, None)
