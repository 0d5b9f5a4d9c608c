"""`make crawl` end to end: `crawlgraph crawl-to-graph` against the whole local stack."""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys

import networkx as nx
import pytest

from stack import Stack
from tests.conftest import make_home, stack_environ


@pytest.fixture
def full_stack():
    home = make_home()
    stack = Stack(stack_environ(home))
    try:
        stack.up()
        yield stack
    finally:
        stack.down()
        shutil.rmtree(home, ignore_errors=True)


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cli", "crawl-to-graph", *args],
        env=env, capture_output=True, text=True, timeout=300,
    )


def test_crawl_to_graph_writes_the_site_graph_and_a_summary(full_stack, mock_server, tmp_path):
    site = mock_server(pages=60, seed=11)
    origin = site.url("/").rstrip("/")
    result = _run(full_stack.environ, site.url("/p/0"), "--out", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr

    (job_dir,) = list(tmp_path.iterdir())
    names = sorted(p.name for p in job_dir.iterdir())
    assert names == ["edges.csv", "host.gexf", "nodes.csv", "page.gexf", "page.graphml"]

    expected_pages = site.site.page_urls(origin)
    expected_links = site.site.link_set(origin)
    graph = nx.read_graphml(job_dir / "page.graphml")
    labels = {data["label"] for _, data in graph.nodes(data=True)}
    assert {label for label in labels if label in expected_pages} == expected_pages
    with open(job_dir / "nodes.csv") as fh:
        assert len(list(csv.DictReader(fh))) == graph.number_of_nodes()
    label = nx.get_node_attributes(graph, "label")
    edges = {(label[a], label[b]) for a, b in graph.edges()}
    # The page graph drops self-loops by default.
    assert edges == {(a, b) for a, b in expected_links if a != b}
    host = nx.read_gexf(job_dir / "host.gexf")
    assert host.number_of_nodes() == 1

    out = result.stdout
    # The progress line counts what the summary counts: pages stored (robots.txt is
    # a response, not a page).
    progress = [int(m.group(1).replace(",", "")) for line in out.splitlines()
                if "pages/s" in line and (m := re.search(r" pages ([\d,]+)", line))]
    stored = int(re.search(r"  pages    ([\d,]+):", out).group(1).replace(",", ""))
    responses = int(re.search(r"responses (\d+) \(robots.txt included\)", out).group(1))
    assert progress and progress[-1] == stored and responses > stored
    assert stored >= len(expected_pages)
    assert "  sites " not in out  # one site: no per-site table
    assert "top 10 pages by PageRank" in out
    assert f"page graph: {graph.number_of_nodes()} nodes, {len(edges)} edges" in out
    assert "components:" in out
    # The graphs' part does not repeat the crawl's pages and errors; the files are
    # listed under their directory.
    graphs = out.split("\ngraphs\n")[1]
    assert "  pages    " not in graphs and "  errors   " not in graphs
    assert f"  files    {job_dir}/\n" in out


def test_private_url_without_permission_says_how_to_allow_it(full_stack, mock_server, tmp_path):
    site = mock_server(pages=3)
    env = {**full_stack.environ, "ALLOW_PRIVATE_NETWORKS": "0"}
    Stack(env).up()  # restarts the API and scrapyd with the setting off
    result = _run(env, site.url("/p/0"), "--out", str(tmp_path))
    assert result.returncode == 2
    assert "loopback" in result.stderr
    assert "ALLOW_PRIVATE_NETWORKS=1" in result.stderr
    assert "Traceback" not in result.stderr
    assert not any(tmp_path.iterdir())
    assert os.path.exists(full_stack.settings.home / "api.pid")
