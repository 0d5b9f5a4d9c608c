"""The crawl summary `make crawl` prints (`graphs.report.CrawlSummary`)."""

from __future__ import annotations

from graphs.report import CrawlSummary


def _summary(nodes: int, host_edges: int) -> str:
    return CrawlSummary(job="J", pages=45, links=202, errors=2, top=[],
                        page_build={"node_count": nodes, "edge_count": 202},
                        host_build={"node_count": 2, "edge_count": host_edges}).text()


def test_nodes_beyond_the_crawled_pages_are_explained():
    assert ("page graph: 47 nodes, 202 edges (2 more than the pages: URLs linked to but not "
            "crawled, such as offsite ones)") in _summary(47, 1)
    assert "page graph: 45 nodes, 202 edges\n" in _summary(45, 1) + "\n"


def test_host_edges_are_counted_in_words_that_agree():
    assert "hosts    2 (1 host-to-host edge)" in _summary(45, 1)
    assert "hosts    2 (3 host-to-host edges)" in _summary(45, 3)
