"""CRAWLGRAPH_RESOLVE: names mapped to addresses, the resolver answering them, the guard's view."""

from __future__ import annotations

import json
from typing import Any

import pytest
from twisted.internet.address import IPv4Address, IPv6Address

from core.errors import ConfigError
from crawler.middlewares.addressguard import refused_reason
from crawler.resolver import HostMap, MappedResolver, Target, parse_entry
from tests.crawlrun import run_crawl

SITE = "crawler.spiders.site.SiteSpider"


# ---------------------------------------------------------------- the mapping
def test_entries_map_a_name_and_port_to_addresses():
    hosts = HostMap.parse(["example.test:443:127.0.0.1", "Example.TEST.:443:127.0.0.2",
                           "www.example.test:80:127.0.0.1:8080", "v6.example.test:443:[::1]"])
    assert hosts.lookup("example.test", 443) == [Target("127.0.0.1", 443),
                                                  Target("127.0.0.2", 443)]
    assert hosts.lookup("EXAMPLE.test.", 443) == hosts.lookup("example.test", 443)
    assert hosts.lookup("www.example.test", 80) == [Target("127.0.0.1", 8080)]
    assert hosts.lookup("v6.example.test", 443) == [Target("::1", 443)]
    # Another port, another name: not mapped.
    assert hosts.lookup("example.test", 80) is None
    assert hosts.lookup("other.test", 443) is None
    # By URL: the scheme's default port when the URL gives none.
    assert hosts.addresses("https://example.test/x") == ["127.0.0.1", "127.0.0.2"]
    assert hosts.addresses("http://www.example.test/") == ["127.0.0.1"]
    assert hosts.addresses("http://www.example.test:8080/") is None
    assert hosts.addresses("http://example.test/") is None


def test_a_command_line_string_is_comma_separated_and_empty_is_nothing():
    hosts = HostMap.parse("a.test:80:10.0.0.1, b.test:80:10.0.0.2,")
    assert hosts.lookup("a.test", 80) == [Target("10.0.0.1", 80)]
    assert hosts.lookup("b.test", 80) == [Target("10.0.0.2", 80)]
    assert not HostMap.parse("") and not HostMap.parse([]) and len(hosts) == 2


def test_an_international_name_is_keyed_in_its_ascii_form():
    hosts = HostMap.parse(["bücher.test:443:10.0.0.1"])
    assert hosts.lookup("xn--bcher-kva.test", 443) == [Target("10.0.0.1", 443)]
    assert parse_entry("bücher.test:443:10.0.0.1")[0] == "xn--bcher-kva.test"


@pytest.mark.parametrize("entry", [
    "example.test", "example.test:443", "example.test:443:", ":443:127.0.0.1",
    "example.test:https:127.0.0.1", "example.test:0:127.0.0.1", "example.test:70000:127.0.0.1",
    "example.test:443:localhost", "example.test:443:127.0.0.1:x",
    "example.test:443:127.0.0.1:99999", "example.test:443:::1", "example.test:443:[::1",
    "example.test:443:[::1]8080", "exa mple.test:443:127.0.0.1", "a/b.test:443:127.0.0.1",
])
def test_a_bad_entry_is_a_clear_error_naming_it(entry):
    with pytest.raises(ConfigError) as caught:
        HostMap.parse(["good.test:443:127.0.0.1", entry])
    message = str(caught.value)
    assert "CRAWLGRAPH_RESOLVE" in message and repr(entry) in message
    assert "HOST:PORT:ADDRESS" in message  # the hint: how to write one


# ---------------------------------------------------------------- the resolver
class _Receiver:
    def __init__(self) -> None:
        self.began = self.complete = False
        self.addresses: list[Any] = []

    def resolutionBegan(self, resolution: Any) -> None:
        self.began = True

    def addressResolved(self, address: Any) -> None:
        self.addresses.append(address)

    def resolutionComplete(self) -> None:
        self.complete = True


class _Next:
    """The resolver installed before ours: records what it is asked."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, int]] = []

    def resolveHostName(self, receiver: Any, name: str, port: int = 0, *args: Any) -> Any:
        self.asked.append((name, port))
        receiver.resolutionBegan(None)
        receiver.addressResolved(IPv4Address("TCP", "192.0.2.7", port))
        receiver.resolutionComplete()
        return receiver


class _Reactor:
    def __init__(self) -> None:
        self.nameResolver: Any = _Next()

    def installNameResolver(self, resolver: Any) -> Any:
        previous, self.nameResolver = self.nameResolver, resolver
        return previous


class _Fallback:
    installed = 0

    def install_on_reactor(self) -> None:
        self.installed += 1


def _resolver(entries: list[str]) -> tuple[MappedResolver, _Reactor, _Fallback]:
    reactor, fallback = _Reactor(), _Fallback()
    resolver = MappedResolver(reactor, HostMap.parse(entries), fallback)
    resolver.install_on_reactor()
    return resolver, reactor, fallback


def test_mapped_names_go_to_their_address_and_the_rest_to_the_fallback():
    resolver, reactor, fallback = _resolver(["example.test:80:127.0.0.1:8080",
                                             "example.test:443:[::1]:8443"])
    nxt = resolver._next
    assert fallback.installed == 1 and reactor.nameResolver is resolver
    http, https, other = _Receiver(), _Receiver(), _Receiver()
    resolver.resolveHostName(http, "example.test", 80)
    resolver.resolveHostName(https, "www.example.test", 443)
    assert http.began and http.complete
    assert http.addresses == [IPv4Address("TCP", "127.0.0.1", 8080)]
    resolver.resolveHostName(https, "EXAMPLE.test", 443)
    assert https.addresses[-1] == IPv6Address("TCP", "::1", 8443)
    # Not mapped (another name, another port): asked of the resolver before ours.
    resolver.resolveHostName(other, "example.test", 8000)
    assert nxt.asked == [("www.example.test", 443), ("example.test", 8000)]
    assert other.addresses == [IPv4Address("TCP", "192.0.2.7", 8000)]


def test_an_address_family_not_asked_for_is_left_out():
    resolver, _, _ = _resolver(["example.test:443:[::1]", "example.test:443:127.0.0.1"])
    receiver = _Receiver()
    resolver.resolveHostName(receiver, "example.test", 443, [IPv4Address])
    assert receiver.addresses == [IPv4Address("TCP", "127.0.0.1", 443)] and receiver.complete


def test_nothing_mapped_installs_the_fallback_alone():
    resolver, reactor, fallback = _resolver([])
    assert fallback.installed == 1 and reactor.nameResolver is not resolver


def test_a_crawl_connects_mapped_names_to_their_address_and_resolves_the_others(mock_server):
    server = mock_server(pages=3)
    result = run_crawl(SITE, {"start_urls": json.dumps(["http://example.test/p/0",
                                                        f"http://localhost:{server.port}/p/1"]),
                              "max_depth": "0"},
                       {"CRAWLGRAPH_ALLOW_PRIVATE_NETWORKS": True,
                        "CRAWLGRAPH_RESOLVE": [f"example.test:80:127.0.0.1:{server.port}"]})
    assert result.reason == "finished", result.log[-3000:]
    assert {p["final_url"]: p["status"] for p in result.pages} == {
        "http://example.test/p/0": 200, f"http://localhost:{server.port}/p/1": 200}
    # The name is kept for the Host header; localhost resolved as usual.
    assert {(r.host, r.path) for r in server.requests() if r.path != "/robots.txt"} == {
        ("example.test", "/p/0"), (f"localhost:{server.port}", "/p/1")}


@pytest.mark.parametrize("allow_private", [False, True])
def test_a_bad_entry_stops_the_crawl_at_start_naming_it(allow_private):
    # The guard (on) reads the entries first; with it off, the resolver does.
    result = run_crawl(SITE, {"start_urls": "http://example.test/"},
                       {"CRAWLGRAPH_RESOLVE": ["example.test:80:nowhere"],
                        "CRAWLGRAPH_ALLOW_PRIVATE_NETWORKS": allow_private},
                       env={"ALLOW_PRIVATE_NETWORKS": ""}, timeout=60)
    assert result.reason is None and result.pages == []  # the spider never opened
    assert "CRAWLGRAPH_RESOLVE entry 'example.test:80:nowhere'" in result.log


# ---------------------------------------------------------------- the address guard
def test_the_guard_judges_a_mapped_name_by_its_mapped_address():
    hosts = HostMap.parse(["staging.test:443:127.0.0.1", "public.test:80:93.184.216.34",
                           "localhost:80:93.184.216.34"])
    assert refused_reason("https://staging.test/", hosts=hosts) == \
        "staging.test resolves to 127.0.0.1 (loopback)"
    # Unmapped port: the name is looked up as usual (.test does not resolve: not refused).
    assert refused_reason("http://staging.test/", hosts=hosts) is None
    assert refused_reason("http://public.test/", hosts=hosts) is None
    # The mapping wins over what the system says of the name.
    assert refused_reason("http://localhost/", hosts=hosts) is None
    assert refused_reason("http://localhost:8080/", hosts=hosts)


def test_the_guard_refuses_a_name_mapped_to_loopback_unless_private_networks_are_on(
        mock_server):
    server = mock_server(pages=3)
    args = {"start_urls": "http://staging.test/p/0", "max_depth": "0"}
    resolve = {"CRAWLGRAPH_RESOLVE": [f"staging.test:80:127.0.0.1:{server.port}"]}
    off = run_crawl(SITE, args, {**resolve, "CRAWLGRAPH_ALLOW_PRIVATE_NETWORKS": False},
                    env={"ALLOW_PRIVATE_NETWORKS": ""})
    assert off.pages == [] and off.stats["addressguard/refused"] >= 1
    assert server.requests() == []  # not even robots.txt
    on = run_crawl(SITE, args, {**resolve, "CRAWLGRAPH_ALLOW_PRIVATE_NETWORKS": True})
    assert [(p["final_url"], p["status"]) for p in on.pages] == [
        ("http://staging.test/p/0", 200)]
    assert {r.host for r in server.requests()} == {"staging.test"}
