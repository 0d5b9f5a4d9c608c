"""The mock web server and the site generator behave as the crawl tests rely on."""

from __future__ import annotations

import gzip
import http.client
import json
import socket
import time
from urllib.parse import urljoin

import parsel
import pytest
from w3lib.url import canonicalize_url

from tests.mockserver import normalize_path
from tests.sitegen import generate_site


def get(server, path: str, headers: dict[str, str] | None = None,
        timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


# --- the generator --------------------------------------------------------------------
def test_generate_site_is_deterministic():
    a = generate_site(200, seed=7, tricky=True)
    b = generate_site(200, seed=7, tricky=True)
    c = generate_site(200, seed=8, tricky=True)
    origin = "http://h:1"
    assert a.link_set(origin) == b.link_set(origin)
    assert a.link_set(origin) != c.link_set(origin)


def test_tricky_site_has_what_it_promises():
    site = generate_site(300, seed=1, tricky=True)
    hrefs = [link.href for page in site.pages.values() for link in page.links]
    assert any(h.startswith("{origin}") for h in hrefs)  # absolute
    assert any(h.startswith("HTTP://") for h in hrefs)  # scheme in upper case
    assert any("%3" in h for h in hrefs)  # percent-encoded digits
    assert any("/../" in h or h.startswith("./") for h in hrefs)  # dot segments
    assert any("#" in h for h in hrefs)  # fragments
    assert any(h.startswith("mailto:") for h in hrefs)
    assert any(p.base_href for p in site.pages.values())
    assert site.redirects and any(s == 302 for s, _ in site.redirects.values())
    assert site.nofollow_links("http://h:1")
    statuses = {p.status for p in site.pages.values()}
    assert statuses == {200, 404}
    origin = "http://h:1"
    # Every page (HTML, text, 404) is reachable from the start page, and cycles exist.
    assert site.reachable(origin) == site.page_urls(origin)
    links = site.link_set(origin)
    assert (origin + "/p/299", origin + "/p/0") in links
    # Many spellings, one canonical link: fewer distinct links than hrefs written.
    assert len(links) < len(hrefs)


def test_reachable_respects_depth_and_nofollow():
    site = generate_site(100, seed=3, links_per_page=1)
    origin = "http://h:1"
    # A pure chain: depth d reaches pages 0..d.
    assert site.reachable(origin, max_depth=3) == {f"{origin}/p/{i}" for i in range(4)}
    tricky = generate_site(300, seed=3, tricky=True)
    assert len(tricky.reachable(origin, follow_nofollow=False)) <= len(tricky.reachable(origin))


def test_normalize_path():
    assert normalize_path("/p/%35") == "/p/5"
    assert normalize_path("/p/x/../5") == "/p/5"
    assert normalize_path("/p/./5") == "/p/5"
    assert normalize_path("/p/%2F5") == "/p/%2F5"  # a reserved character stays encoded


# --- the served site matches the generator's data ---------------------------------------
def test_served_html_matches_ground_truth(mock_server):
    server = mock_server(pages=120, seed=5, tricky=True)
    origin = server.origin
    found: set[tuple[str, str]] = set()
    for path, page in server.site.pages.items():
        status, headers, body = get(server, path)
        assert status == page.status, path
        if not headers["content-type"].startswith("text/html"):
            continue
        sel = parsel.Selector(text=body.decode())
        base = urljoin(origin + path, sel.css("base::attr(href)").get() or "")
        for href in sel.css("a::attr(href)").getall():
            if href.startswith(("mailto:", "javascript:")):
                continue
            target = canonicalize_url(urljoin(base, href))
            found.add((origin + path, target))
    assert found == server.site.link_set(origin)


def test_page_bytes_grows_pages_and_keeps_their_links_and_validators(mock_server):
    plain = mock_server(pages=20, seed=6, conditional=True)
    grown = mock_server(pages=20, seed=6, conditional=True, page_bytes=20_000)
    for path in ("/p/0", "/p/7"):
        _, _, small = get(plain, path)
        _, headers, body = get(grown, path)
        assert len(small) < 2000 and len(body) == 20_000
        links = [parsel.Selector(text=b.decode()).css("a::attr(href)").getall()
                 for b in (small, body)]
        assert links[0] == links[1] and links[0]
        assert get(grown, path)[1]["etag"] == headers["etag"]  # the same page, the same tag


def test_redirects_and_duplicate_spellings(mock_server):
    server = mock_server(pages=200, seed=2, tricky=True)
    redirect, (code, location) = next(iter(server.site.redirects.items()))
    status, headers, _ = get(server, redirect)
    assert status == code and headers["location"] == location
    # Other spellings of the same page are served the same page.
    _, _, canonical = get(server, "/p/12")
    assert get(server, "/p/%31%32")[2] == canonical
    assert get(server, "/p/x/../12")[2] == canonical


# --- request log ------------------------------------------------------------------------
def test_request_log_records_path_host_agent_time_headers(mock_server):
    server = mock_server(pages=5)
    before = time.time()
    get(server, "/p/1?x=1", headers={"User-Agent": "agent-one", "Accept-Language": "fr"})
    get(server, "/p/2", headers={"User-Agent": "agent-two"})
    log = server.requests()
    assert [r.path for r in log] == ["/p/1?x=1", "/p/2"]
    assert [r.user_agent for r in log] == ["agent-one", "agent-two"]
    assert log[0].host == f"127.0.0.1:{server.port}" and log[0].port == server.port
    assert before <= log[0].time <= log[1].time <= time.time()
    assert log[0].headers["accept-language"] == "fr"
    assert server.paths("/p/2") == ["/p/2"]
    server.clear_log()
    get(server, "/p/3")
    assert server.paths() == ["/p/3"]


def test_instances_are_separate_hosts(mock_server):
    a = mock_server(pages=5, robots="User-agent: *\nDisallow: /\n")
    b = mock_server(pages=5)
    assert a.port != b.port
    assert get(a, "/robots.txt")[0] == 200
    assert get(b, "/robots.txt")[0] == 404
    assert a.paths() == ["/robots.txt"] and b.paths() == ["/robots.txt"]


# --- robots.txt -------------------------------------------------------------------------
def test_robots_content_status_and_redirects(mock_server):
    server = mock_server(robots="User-agent: *\nCrawl-delay: 1\n", robots_redirects=2)
    assert get(server, "/robots.txt")[1]["location"] == "/robots-1.txt"
    assert get(server, "/robots-1.txt")[1]["location"] == "/robots-2.txt"
    status, _, body = get(server, "/robots-2.txt")
    assert status == 200 and b"Crawl-delay: 1" in body
    server.configure(robots_status=503, robots_redirects=0)
    assert get(server, "/robots.txt")[0] == 503
    server.configure(robots_status=0)  # unreachable
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        get(server, "/robots.txt")


# --- statuses, retries and faults -------------------------------------------------------
def test_status_with_retry_after_and_flaky(mock_server):
    server = mock_server()
    status, headers, _ = get(server, "/status/429?retry_after=2")
    assert status == 429 and headers["retry-after"] == "2"
    assert [get(server, "/flaky/k1?fail=2&status=503")[0] for _ in range(3)] == [503, 503, 200]


def test_faults_on_site_pages(mock_server):
    server = mock_server(pages=10, faults={"/p/3": [429, 503]}, retry_after=2)
    first = get(server, "/p/3")
    assert first[0] == 429 and first[1]["retry-after"] == "2"
    assert get(server, "/p/3")[0] == 503
    assert get(server, "/p/3")[0] == 200
    assert get(server, "/p/4")[0] == 200


def test_delay(mock_server):
    server = mock_server()
    start = time.monotonic()
    assert get(server, "/delay?s=0.5")[0] == 200
    assert time.monotonic() - start >= 0.5


def test_redirect_anywhere(mock_server):
    server = mock_server()
    status, headers, _ = get(server, "/redirect?to=http://169.254.169.254/latest&status=301")
    assert status == 301 and headers["location"] == "http://169.254.169.254/latest"


# --- broken responses -------------------------------------------------------------------
def test_dropped_connections(mock_server):
    server = mock_server()
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        get(server, "/drop")
    with pytest.raises((http.client.IncompleteRead, ConnectionError)):
        get(server, "/drop-mid")


def test_bad_content_length(mock_server):
    server = mock_server()
    with pytest.raises(http.client.IncompleteRead):
        get(server, "/bad-length")
    with pytest.raises(TimeoutError):
        get(server, "/bad-length?mode=hang&s=5", timeout=0.5)


def test_gzip_bomb_is_small_on_the_wire(mock_server):
    server = mock_server()
    status, headers, body = get(server, "/bomb?mb=50")
    assert headers["content-encoding"] == "gzip"
    assert len(body) < 200_000
    assert len(gzip.decompress(body)) == 50 << 20


def test_endless_body_keeps_coming(mock_server):
    server = mock_server()
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    conn.request("GET", "/endless")
    resp = conn.getresponse()
    assert resp.getheader("transfer-encoding") == "chunked"
    received = 0
    while received < 2 << 20:  # bounded: stop after 2 MiB
        chunk = resp.read(65536)
        assert chunk
        received += len(chunk)
    conn.close()


def test_large_body_plain_and_chunked(mock_server):
    server = mock_server()
    assert len(get(server, "/large?kb=300")[2]) > 300 * 1024
    status, headers, body = get(server, "/large?kb=300&chunked=1")
    assert headers.get("transfer-encoding") == "chunked" and len(body) > 300 * 1024


def test_captcha_page(mock_server):
    server = mock_server()
    status, _, body = get(server, "/captcha?status=403")
    assert status == 403 and b"g-recaptcha" in body


# --- JavaScript-only links ----------------------------------------------------------------
def test_js_page_has_no_static_links(mock_server):
    server = mock_server()
    _, _, body = get(server, "/js")
    sel = parsel.Selector(text=body.decode())
    assert sel.css("a").getall() == []
    assert "".join(sel.css("body *:not(script)::text").getall()).strip() == ""
    for path in server.site.js_links:  # named in the script, served when fetched
        assert path in body.decode()
        assert get(server, path)[0] == 200
    _, _, partial = get(server, "/js-partial")
    sel = parsel.Selector(text=partial.decode())
    assert sel.css("a::attr(href)").getall() == ["/p/0"] and not sel.css(".js-link")


# --- keep-alive and many requests --------------------------------------------------------
def test_keep_alive_serves_many_requests_on_one_connection(mock_server):
    server = mock_server(pages=50)
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    for i in range(50):
        conn.request("GET", f"/p/{i}")
        resp = conn.getresponse()
        assert resp.status == 200
        resp.read()
    conn.close()
    assert len(server.requests("/p/")) == 50


def test_headers_echo_and_sitemap(mock_server):
    server = mock_server(pages=30)
    assert json.loads(get(server, "/headers", {"X-Test": "1"})[2])["x-test"] == "1"
    body = get(server, "/sitemap.xml")[2].decode()
    assert f"{server.origin}/p/9</loc>" in body


def test_raw_socket_http10_closes(mock_server):
    server = mock_server(pages=3)
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(b"GET /p/1 HTTP/1.0\r\nHost: x\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200") and b"Page 1" in data
