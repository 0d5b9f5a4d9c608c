"""Failed downloads say their cause: unit tests of the classification, and real crawls.

A start URL on a host that does not resolve, or on a port that refuses
connections, is a page error that names the host and the cause — robots.txt,
which is fetched first, failing the same way included (it used to drop the
start URL without a trace).
"""

from __future__ import annotations

import socket

import pytest
from OpenSSL import SSL
from scrapy.exceptions import (
    CannotResolveHostError,
    DownloadConnectionRefusedError,
    DownloadFailedError,
    DownloadTimeoutError,
)
from service_identity.exceptions import VerificationError
from twisted.internet import error as net
from twisted.python.failure import Failure as TwistedFailure
from twisted.web._newclient import ResponseNeverReceived

from crawler.failures import Failure, RobotsUnreachable, cause_of, describe, parse
from tests.crawlrun import run_crawl

SITE = "crawler.spiders.site.SiteSpider"
LOOPBACK = {"CRAWLGRAPH_ALLOW_PRIVATE_NETWORKS": True}


def _wrapped(outer: type[Exception], inner: BaseException) -> Exception:
    try:
        try:
            raise inner
        except BaseException as exc:
            raise outer(str(exc)) from exc
    except Exception as exc:  # the exception as Scrapy raises it: outer from inner
        return exc


@pytest.mark.parametrize(("exc", "cause"), [
    (net.DNSLookupError("nope.invalid"), "dns"),
    (_wrapped(CannotResolveHostError, net.DNSLookupError("x")), "dns"),
    (_wrapped(DownloadConnectionRefusedError, net.ConnectionRefusedError()), "refused"),
    (DownloadTimeoutError("Getting x took longer than 1 seconds."), "timeout"),
    (net.TCPTimedOutError(), "timeout"),
    (ResponseNeverReceived([TwistedFailure(net.ConnectionLost())]), "reset"),
    (ResponseNeverReceived([TwistedFailure(SSL.Error([("SSL routines", "", "bad")]))]), "tls"),
    (_wrapped(DownloadFailedError, ResponseNeverReceived(
        [TwistedFailure(SSL.Error([("SSL routines", "", "certificate verify failed")]))])),
     "tls"),
    (ResponseNeverReceived([TwistedFailure(VerificationError([]))]), "tls"),
    (ValueError("something else"), "error"),
])
def test_each_exception_has_its_cause(exc, cause):
    assert cause_of(exc) == cause


def test_the_stored_error_names_cause_host_and_detail_and_parses_back():
    failure = describe(net.DNSLookupError("no-such-host.invalid"), "http://no-such-host.invalid/a")
    assert failure.reason == "no-such-host.invalid: the name does not resolve"
    assert failure.text().startswith("dns: no-such-host.invalid: the name does not resolve (")
    assert parse(failure.text()) == ("dns", failure.reason)
    wrapped = describe(RobotsUnreachable(failure), "http://no-such-host.invalid/b")
    assert wrapped.cause == "dns" and "robots.txt" in wrapped.text()
    assert parse("some old free-text error") is None
    # robots.txt down past the wait (crawler.middlewares.robots): its own cause.
    waited = describe(RobotsUnreachable(Failure("robots_unavailable", "a.example",
                                                "unavailable for 300s, it last answered 503")),
                      "http://a.example/p")
    assert waited.text() == ("robots_unavailable: a.example: robots.txt stayed unavailable past "
                             "the wait, the page was not fetched (robots.txt: unavailable for "
                             "300s, it last answered 503)")
    assert parse(waited.text()) == ("robots_unavailable", waited.reason)
    assert parse("cut off (size limit): x") == ("cut_off", "the answer was cut off at a "
                                                "download limit")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again: nothing listens there


@pytest.mark.parametrize("obey_robots", [True, False])
def test_dead_start_urls_are_page_errors_with_their_cause(obey_robots):
    refused = f"http://127.0.0.1:{_closed_port()}/"
    dead = "http://no-such-host.invalid/"
    result = run_crawl(SITE, {"start_urls": [dead, refused], "obey_robots": obey_robots},
                       {**LOOPBACK, "RETRY_ENABLED": False, "DNS_TIMEOUT": 20})
    by_url = {page["url"]: page for page in result.pages}
    assert set(by_url) == {dead, refused}, result.log[-3000:]
    assert all(page["status"] == 0 for page in by_url.values())
    assert by_url[dead]["error"].startswith(
        "dns: no-such-host.invalid: the name does not resolve (")
    assert by_url[refused]["error"].startswith("refused: 127.0.0.1: the connection was refused (")
    if obey_robots:  # robots.txt failed first; the pages say so
        assert all("robots.txt" in page["error"] for page in by_url.values())
        assert result.stats["robotstxt/unreachable"] == 2
