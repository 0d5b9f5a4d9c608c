"""The private-address guard: classification, refusal on loopback, redirects checked."""

from __future__ import annotations

import pytest

from crawler.middlewares.addressguard import (
    address_reason,
    is_refused_address,
    private_networks_allowed,
    refused_reason,
)
from tests.crawlrun import run_crawl

SITE = "crawler.spiders.site.SiteSpider"


@pytest.mark.parametrize(("address", "reason"), [
    ("127.0.0.1", "loopback"), ("::1", "loopback"), ("10.2.3.4", "private"),
    ("172.16.5.4", "private"), ("192.168.0.1", "private"), ("fd12::1", "private"),
    ("169.254.169.254", "metadata"), ("169.254.1.1", "link-local"), ("fe80::1", "link-local"),
    ("100.64.0.1", "cgnat"), ("100.127.255.254", "cgnat"), ("0.0.0.0", "unspecified"),
    ("224.0.0.1", "multicast"), ("::ffff:127.0.0.1", "loopback"), ("240.0.0.1", "reserved"),
    ("93.184.216.34", None), ("2606:4700::1111", None), ("100.128.0.1", None),
])
def test_address_classification(address, reason):
    assert address_reason(address) == reason
    assert is_refused_address(address) is (reason is not None)


def test_urls_and_the_switch():
    assert refused_reason("http://127.0.0.1:8000/x")
    assert refused_reason("http://localhost/")
    assert refused_reason("http://[::1]/")
    assert refused_reason("http://host.invalid/") is None  # does not resolve: not ours to judge
    # The setting only: crawler.addon fills it from ALLOW_PRIVATE_NETWORKS (tests/test_addon.py).
    assert private_networks_allowed("1") and not private_networks_allowed("false")
    assert not private_networks_allowed() and private_networks_allowed(True)


def test_loopback_is_refused_when_private_networks_are_off(mock_server):
    server = mock_server(pages=5)
    result = run_crawl(SITE, {"start_urls": server.start_url},
                       {"CRAWLGRAPH_ALLOW_PRIVATE_NETWORKS": False},
                       env={"ALLOW_PRIVATE_NETWORKS": ""})
    assert server.requests() == []  # not even robots.txt
    assert result.pages == [] and result.stats["addressguard/refused"] >= 1


def test_a_redirect_to_a_private_address_is_refused(mock_server):
    server = mock_server(pages=5)
    start = server.url("/redirect?to=http://169.254.169.254/latest/meta-data/&status=302")
    result = run_crawl(SITE, {"start_urls": start},
                       {"CRAWLGRAPH_ALLOW_PRIVATE_NETWORKS": False,
                        # Let this test reach the mock server, and nothing else private.
                        "CRAWLGRAPH_ADDRESSGUARD_ALLOWED_NETWORKS": ["127.0.0.1/32"]},
                       env={"ALLOW_PRIVATE_NETWORKS": ""})
    assert [r.path.split("?")[0] for r in server.requests()] == ["/robots.txt", "/redirect"]
    assert result.stats["addressguard/refused"] == 1
    assert result.pages == []
