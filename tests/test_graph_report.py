"""The crawl summary `make crawl` prints (`graphs.report.CrawlSummary`)."""

from __future__ import annotations

from pathlib import Path

from graphs.report import CrawlSummary


def _summary(nodes: int, host_edges: int, crawled_hosts: int | None = None, **kw) -> str:
    host = {"node_count": 2, "edge_count": host_edges}
    if crawled_hosts is not None:
        host["summary"] = {"crawled_nodes": crawled_hosts}
    return CrawlSummary(job="J", pages=45, links=202, errors=2, top=[],
                        page_build={"node_count": nodes, "edge_count": 202},
                        host_build=host, **kw).text()


def test_nodes_beyond_the_crawled_pages_are_explained():
    assert ("page graph: 47 nodes, 202 edges (2 more than the pages: URLs linked to but not "
            "crawled, such as offsite ones)") in _summary(47, 1)
    assert "page graph: 45 nodes, 202 edges\n" in _summary(45, 1) + "\n"


def test_host_edges_are_counted_in_words_that_agree():
    assert "hosts    2 (1 host-to-host edge)" in _summary(45, 1)
    assert "hosts    2 (3 host-to-host edges)" in _summary(45, 3)


def test_hosts_only_linked_to_are_told_apart_from_the_crawled_ones():
    assert "hosts    2: 1 crawled, 1 only linked to (1 host-to-host edge)" in _summary(47, 1, 1)
    assert "hosts    2 (1 host-to-host edge)" in _summary(47, 1, 2)


def test_after_the_crawls_own_summary_pages_and_errors_are_not_repeated():
    text = _summary(47, 1, 1, after_crawl_summary=True)
    assert text.startswith("graphs\n  links    202 page-to-page edges\n")
    assert "pages    " not in text and "errors" not in text
    assert "  pages    45\n" in _summary(47, 1, 1) and "  errors   2" in _summary(47, 1, 1)


def test_files_are_shown_under_their_directory_one_name_each():
    files = [Path("out/J/page.gexf"), Path("out/J/nodes.csv")]
    assert _summary(45, 1, files=files).endswith(
        "\n  files    out/J/\n           page.gexf  nodes.csv")
    apart = _summary(45, 1, files=[Path("a/x.csv"), Path("b/y.csv")])
    assert apart.endswith("\n  files\n           a/x.csv\n           b/y.csv")
