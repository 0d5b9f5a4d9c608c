"""The README's example spider runs as written, and `scrapy list` / genspider work."""

from __future__ import annotations

import json
import subprocess
import sys

import parsel

from tests.crawlrun import REPO, run_crawl

LOOPBACK = {"CRAWLGRAPH_ALLOW_PRIVATE_NETWORKS": True}


def test_example_spider_yields_one_summary_per_detail_page(mock_server):
    server = mock_server(pages=40, seed=9, links_per_page=6)
    result = run_crawl("crawler.spiders.example.ExampleSpider",
                       {"start_urls": json.dumps([server.start_url])}, LOOPBACK)
    assert result.reason == "finished", result.log[-2000:]
    listing = server.site.pages["/p/0"]
    detail_urls = {server.origin + link.target for link in listing.links}
    assert {item["url"] for item in result.other} == detail_urls
    for item in result.other:
        page = server.site.pages[item["url"][len(server.origin):]]
        assert item["title"] == page.title
        assert item["words"] == len(page.text.split())
    # The kit stored a Page for the listing and every detail page, and their links.
    assert {p["final_url"] for p in result.pages} == detail_urls | {server.start_url}
    assert {(link["source_url"], link["target_url"]) for link in result.links} == {
        pair for pair in server.site.link_set(server.origin)
        if pair[0] in detail_urls | {server.start_url}}


def test_scrapy_list_shows_the_spiders():
    out = subprocess.run([sys.executable, "-m", "scrapy", "list"], cwd=REPO, check=True,
                         capture_output=True, text=True).stdout.split()
    assert {"site", "example"} <= set(out)


def test_genspider_template_makes_a_kit_spider(tmp_path):
    # An empty NEWSPIDER_MODULE writes the file here, not into the project.
    subprocess.run([sys.executable, "-m", "scrapy", "genspider", "-s", "NEWSPIDER_MODULE=",
                    "shop", "shop.example.org"],
                   cwd=tmp_path, check=True, capture_output=True, text=True,
                   env={"SCRAPY_SETTINGS_MODULE": "crawler.settings", "PYTHONPATH": str(REPO),
                        "PATH": "/usr/bin:/bin"})
    source = (tmp_path / "shop.py").read_text()
    assert "class ShopSpider(CrawlgraphSpider):" in source
    assert 'name = "shop"' in source and "https://shop.example.org" in source
    namespace: dict = {}
    exec(compile(source, "shop.py", "exec"), namespace)  # noqa: S102 - our own template
    spider = namespace["ShopSpider"]()
    assert spider.args.start_urls == ["https://shop.example.org"]
    assert parsel.Selector(text="<p>ok</p>").css("p::text").get() == "ok"


def test_the_docs_show_the_example_as_it_is():
    doc = (REPO / "README.md").read_text()
    source = (REPO / "crawler" / "spiders" / "example.py").read_text()
    code = source[source.index("from __future__"):]
    assert code in doc


def test_a_spider_can_add_its_own_arguments():
    from crawler.spiders.base import CrawlgraphSpider, SpiderArgs

    class ShopArgs(SpiderArgs, kw_only=True, forbid_unknown_fields=True):
        category: str = "all"

    class ShopSpider(CrawlgraphSpider):
        name = "shop"
        Args = ShopArgs

    spider = ShopSpider(start_urls="https://shop.example.org/", category="books",
                        max_depth="2")
    assert spider.args_error is None
    assert spider.args.category == "books" and spider.args.max_depth == 2
    assert "colour" in ShopSpider(colour="red").args_error
