"""The network in a real browser: build a crawl's page graph from the job page, draw every
node (counted in graphology's own state), search a URL, click a node and see its
neighbours, download the GEXF (it parses) and a PNG snapshot; the top pages table."""

from __future__ import annotations

import time

import httpx
import networkx as nx
import psycopg
from playwright.sync_api import expect

from tests.console.fixtures import api_token, wait_job
from tests.graphdata import add_links, add_pages, make_job

pytest_plugins = ["tests.console.fixtures"]


def test_build_draw_search_click_and_export_the_network(console, console_stack, console_users,
                                                        mock_server, tmp_path):
    site = mock_server(pages=40, seed=9)
    alice = console_users["alice"][0]
    headers = api_token(console_stack, alice)
    api = console_stack.settings.api_url + "/api/v1"
    job = httpx.post(f"{api}/jobs", json={"start_urls": [site.url("/p/0")]}, headers=headers,
                     timeout=30).json()
    assert wait_job(console_stack, headers, job["id"])["status"] == "finished"

    console.login(alice)
    page = console.page
    page.goto(f"{console.base}/#/jobs/{job['id']}")
    page.get_by_role("button", name="Build the graph").click()
    page.locator("#open-network").click(timeout=90_000)
    build_id = page.url.rsplit("/", 1)[1]
    build = httpx.get(f"{api}/graphs/{build_id}", headers=headers, timeout=30).json()
    stage = page.locator("#network")
    expect(stage).to_have_attribute("data-layout", "done", timeout=60_000)
    assert int(stage.get_attribute("data-nodes")) == build["node_count"]
    assert page.evaluate("window.crawlgraphNetwork.graph.order") == build["node_count"]
    assert page.evaluate("window.crawlgraphNetwork.graph.size") == build["edge_count"]
    expect(page.locator("#net-notice")).to_be_hidden()  # every node drawn, none cut
    expect(page.locator("#legend li").first).to_be_visible()
    # Small nodes are unlabelled at this zoom; the page says how to see their labels.
    expect(page.locator("#net-label-hint")).to_contain_text("zoom in to see more")
    console.screenshot("network")

    # Search a URL: the node is selected and its details shown.
    wanted = site.url("/p/3")
    page.locator("#net-search").fill(wanted)
    page.get_by_role("button", name="Find", exact=True).click()
    expect(page.locator("#net-search-result")).to_contain_text(wanted)
    expect(page.locator("#node-details .node-label")).to_have_text(wanted)

    # Click a node on the canvas: its neighbours are listed and highlighted.
    page.get_by_role("button", name="Reset view").click()
    page.wait_for_function("() => !window.crawlgraphNetwork.renderer.getCamera().isAnimated()")
    node, x, y, neighbours = page.evaluate("""() => {
        const { graph, renderer, drawing } = window.crawlgraphNetwork;
        const node = '0';
        const p = renderer.graphToViewport(graph.getNodeAttributes(node));
        return [drawing.labels[0], p.x, p.y, graph.neighbors(node).length];
    }""")
    box = stage.bounding_box()
    page.mouse.move(box["x"] + x, box["y"] + y)  # hover first, as a hand does
    page.mouse.click(box["x"] + x, box["y"] + y)
    expect(page.locator("#node-details .node-label")).to_have_text(node)
    listed = page.locator("#node-details .neighbours li")
    out_in = page.evaluate("""() => {
        const { graph } = window.crawlgraphNetwork;
        const cut = (nodes) => Math.min(nodes.length, 50);
        return cut(graph.outNeighbors('0')) + cut(graph.inNeighbors('0'));
    }""")
    expect(listed).to_have_count(out_in)
    assert neighbours > 0
    # The neighbours are drawn highlighted, the rest greyed (sigma's reducer output).
    colours = page.evaluate("""() => {
        const { graph, renderer } = window.crawlgraphNetwork;
        const near = new Set(graph.neighbors('0'));
        const far = graph.nodes().find((n) => n !== '0' && !near.has(n));
        return [renderer.getNodeDisplayData(graph.neighbors('0')[0]).color,
                far === undefined ? null : renderer.getNodeDisplayData(far).color];
    }""")
    assert colours[0] != "#e4e4e4" and colours[1] in ("#e4e4e4", None)
    console.screenshot("network-node")

    with page.expect_download() as info:
        page.locator("a[data-format=gexf]").click()
    gexf = tmp_path / "page.gexf"
    info.value.save_as(gexf)
    assert nx.read_gexf(gexf).number_of_nodes() == build["node_count"]
    with page.expect_download() as info:
        page.locator("#net-png").click()
    png = tmp_path / "network.png"
    info.value.save_as(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # Top pages, by PageRank as the API ranks them.
    page.get_by_role("link", name="Top pages table").click()
    top = httpx.get(f"{api}/graphs/{build_id}/nodes", params={"limit": 5}, headers=headers,
                    timeout=30).json()["nodes"]
    first = page.locator("#top-table tbody tr").first
    expect(first).to_contain_text(top[0]["label"])
    console.screenshot("top-pages")
    page.get_by_role("button", name="in_degree").click()
    expect(page.locator("#top-table caption")).to_contain_text("by in_degree")
    console.assert_clean()


def wait_build(api: str, headers: dict[str, str], build_id: str) -> dict:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        build = httpx.get(f"{api}/graphs/{build_id}", headers=headers, timeout=30).json()
        if build["status"] in ("done", "failed"):
            assert build["status"] == "done", build
            return build
        time.sleep(0.5)
    raise AssertionError(f"graph build {build_id} did not finish in 120 s")


def test_a_network_of_many_edges_draws_them_once_the_layout_is_done(console, console_stack,
                                                                     console_users):
    """Over 20,000 edges the view hides them while ForceAtlas2 runs: they must come back."""
    alice, alice_id = console_users["alice"]
    headers = api_token(console_stack, alice)
    api = console_stack.settings.api_url + "/api/v1"
    pages = [f"https://many.example/p/{i}" for i in range(2500)]
    with psycopg.connect(console_stack.settings.database_url, autocommit=True) as conn:
        job = make_job(conn, alice_id)
        add_pages(conn, job, pages)
        add_links(conn, job, ((pages[i], pages[(i * 7 + k * 13 + 1) % len(pages)], 1, False)
                              for i in range(len(pages)) for k in range(10)))
    built = httpx.post(f"{api}/jobs/{job}/graphs", json={"level": "page"}, headers=headers,
                       timeout=30).json()
    build = wait_build(api, headers, built["id"])
    assert build["edge_count"] > 20_000

    console.login(alice)
    page = console.page
    page.goto(f"{console.base}/#/graphs/{build['id']}")
    stage = page.locator("#network")
    expect(stage).to_have_attribute("data-layout", "done", timeout=120_000)
    assert page.evaluate("window.crawlgraphNetwork.graph.size") == build["edge_count"]
    hidden = page.evaluate("""() => { const { graph, renderer } = window.crawlgraphNetwork;
        return graph.edges().filter((e) => renderer.getEdgeDisplayData(e).hidden).length; }""")
    assert hidden == 0
    expect(page.locator("#net-status")).to_contain_text("laid out by ForceAtlas2")
    console.screenshot("network-many-edges")
    console.assert_clean()
