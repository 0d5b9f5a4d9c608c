"""`crawlgraph graph ...` commands and the crawl report of `make crawl`."""

from __future__ import annotations

import threading
import uuid

import networkx as nx
import psycopg
import pytest

from cli.main import main
from graphs.report import crawl_report
from graphs.worker import Worker, WorkerConfig
from tests.graphdata import add_links, add_pages, make_job, make_user

PAGES = [f"http://www.site.test/{i}" for i in range(20)] + ["http://docs.site.test/"]
LINKS = [(PAGES[i], PAGES[(i * 3 + 2) % 21], 1, False) for i in range(21)]
LINKS += [(PAGES[i], PAGES[0], 2, False) for i in range(1, 21)]  # every page links home
LINKS += [(PAGES[0], "http://other.test/", 1, False)]


@pytest.fixture
def env(database_url, tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("CRAWLGRAPH_HOME", str(tmp_path / "home"))
    with psycopg.connect(database_url, autocommit=True) as conn:
        job = make_job(conn, make_user(conn))
        add_pages(conn, job, PAGES)
        add_pages(conn, job, ["http://www.site.test/missing"], status=404)
        add_links(conn, job, LINKS)
    return job, tmp_path


def test_build_inline_top_and_export(env, capsys):
    job, tmp_path = env
    assert main(["graph", "build", str(job), "--level", "page", "--inline"]) == 0
    build_id = uuid.UUID(capsys.readouterr().out.strip())
    assert main(["graph", "top", str(build_id), "--by", "pagerank", "--limit", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["RANK", "PAGERANK", "LABEL"]
    assert lines[1].split()[2] == PAGES[0] and len(lines) == 4
    out = tmp_path / "page.gexf"
    assert main(["graph", "export", str(build_id), "--format", "gexf", "-o", str(out)]) == 0
    graph = nx.read_gexf(out)
    assert graph.number_of_nodes() == len(PAGES) + 2  # with the 404 page and other.test
    assert main(["graph", "show", str(build_id)]) == 0
    assert '"status": "done"' in capsys.readouterr().out


def test_build_wait_with_a_worker(env, capsys):
    job, tmp_path = env
    worker = Worker(__import__("os").environ["DATABASE_URL"], tmp_path / "home",
                    WorkerConfig(poll_seconds=0.1))
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        assert main(["graph", "build", str(job), "--level", "host", "--wait",
                     "--timeout", "60"]) == 0
    finally:
        worker.stop()
        thread.join(timeout=30)
    captured = capsys.readouterr()
    assert "done" in captured.err and "3 nodes" in captured.err


def test_errors_are_clear(env, capsys):
    job, _ = env
    assert main(["graph", "build", str(uuid.uuid4())]) == 2
    assert "No job" in capsys.readouterr().err
    assert main(["graph", "build", str(job), "--metrics", "pagerank,fame"]) == 2
    err = capsys.readouterr().err
    assert "Unknown metric: 'fame'" in err and "betweenness" in err
    assert main(["graph", "top", str(uuid.uuid4())]) == 2
    assert "No graph build" in capsys.readouterr().err


def test_crawl_report_writes_the_files_and_the_summary(env):
    job, tmp_path = env
    url = __import__("os").environ["DATABASE_URL"]
    report = crawl_report(url, tmp_path / "home", job, tmp_path / "out" / str(job))
    names = sorted(p.name for p in report.files)
    assert names == sorted(["page.gexf", "page.graphml", "host.gexf", "nodes.csv", "edges.csv"])
    text = report.text
    assert f"pages    {len(PAGES) + 1}" in text
    assert f"links    {len(LINKS)} distinct" in text
    # other.test is only linked to: the summary says so.
    assert "hosts    3: 2 crawled, 1 only linked to (" in text
    assert "errors   1  (HTTP 404: 1)" in text
    assert f"  files    {tmp_path / 'out' / str(job)}/\n" in text
    assert text.endswith("  page.gexf  page.graphml  host.gexf  nodes.csv  edges.csv")
    top = text.split("top 10 pages by PageRank:")[1].splitlines()
    assert top[1].split()[-1] == PAGES[0] and len([t for t in top if t.strip()]) >= 10
    assert "components: 2 weak (largest 22 nodes)" in text  # the 404 page links nowhere
    host = nx.read_gexf(tmp_path / "out" / str(job) / "host.gexf")
    assert sorted(d["label"] for _, d in host.nodes(data=True)) == [
        "docs.site.test", "other.test", "www.site.test"]


def test_build_fold_canonical(env, database_url, capsys):
    job, tmp_path = env
    variant = PAGES[3] + "?ref=home"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO pages (job_id, url, final_url, status, fetched_at, "
                     "canonical_url) VALUES (%s, %s, %s, 200, now(), %s)",
                     (job, variant, variant, PAGES[3]))
        add_links(conn, job, [(PAGES[0], variant, 1, False)])
    nodes = {}
    for flags in ([], ["--fold-canonical"]):
        assert main(["graph", "build", str(job), "--inline", *flags]) == 0
        build_id = capsys.readouterr().out.strip()
        out = tmp_path / f"{build_id}.gexf"
        assert main(["graph", "export", build_id, "--format", "gexf", "-o", str(out)]) == 0
        nodes[bool(flags)] = {d["label"]: d.get("canonical")
                              for _, d in nx.read_gexf(out).nodes(data=True)}
    assert nodes[False][variant] == PAGES[3]  # a node with its canonical
    assert variant not in nodes[True] and PAGES[3] in nodes[True]  # folded into it
    assert len(nodes[True]) == len(nodes[False]) - 1
