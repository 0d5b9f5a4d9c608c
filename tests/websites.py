"""Named web sites on loopback, over HTTP and HTTPS, and the link graph a crawl must find.

`generate_world(sites, pages, seed)` builds a `World`: for every site
``D`` (``example.test`` by default) the pages of ``https://www.D/`` and the
redirects real sites have:

- ``http://D/…``, ``https://D/…`` and ``http://www.D/…`` answer 301 to
  ``https://www.D/…`` (so ``http://example.test/`` 301s to
  ``https://www.example.test/``);
- trailing slashes: ``/docs`` 301s to ``/docs/``, ``/docs/page-3/`` to
  ``/docs/page-3`` (relative ``Location``s);
- a chain across hosts and schemes: ``https://www.D/moved/N`` 308s to
  ``https://go.D/N``, which 302s to ``http://D/<section>/page-N``, which 301s to
  ``https://www.D/<section>/page-N``.

Pages link through all of these (relative hrefs, absolute ones, through the
apex, through ``http://``, short links, trailing slashes) and, when there are
several sites, to one another.

With ``canonicals=True`` a site also has what makes one page many URLs (every
third leaf ``/S/page-N``; all of them on www, linked from the home page, the
indexes and one another):

- the leaf declares itself canonical (``<link rel="canonical">``, as most sites);
- ``/S/page-N?ref=home`` (the leaf's links) declares the leaf canonical, relatively;
- ``/print/S/page-N`` (the links made absolute, and a link back to the article
  through the apex over ``http://``) declares that same redirecting URL
  canonical: it folds through its redirects to the leaf;
- ``/print/S/page-N?ref=mail`` declares the print page canonical: a chain;
- ``/pdf/S/page-N`` is a PDF whose HTTP ``Link: <…>; rel="canonical"`` header
  names the leaf;
- ``/old/page-N`` answers 200 with a ``<meta http-equiv="refresh">`` to the
  leaf: a redirect (`World.hop`), no page;
- on the first site, ``/S/page-1?ref=a`` and ``?ref=b`` declare each other
  canonical: a loop, which folds nowhere. The ground truth comes from the generator's
own data, never from parsing the served HTML or from a crawl:
`World.page_urls`, `World.link_set` (the links as written, as the canonical
URLs they mean), `World.link_graph` (the TRUE page graph: every target folded
through its redirects, and with ``fold_canonical`` every page through the
canonicals it declares, `World.folded_url`), `World.graph_nodes` (its nodes)
and `World.reachable` (what a crawl from a URL reaches inside a scope). Two
more names test certificate checks: ``other-ca.test`` presents a certificate
from another CA, ``wrong-name.test`` one that does not name it.

`Websites` runs ``python -m tests.websites`` (one HTTP and one HTTPS port on
127.0.0.1, every name on both: the Host header picks the site, TLS SNI the
certificate) with a fresh `trustme` test CA, and gives the crawl settings
that send every name there: `Websites.settings` maps ``NAME:80`` and
``NAME:443`` of every name to the server's two ports (``CRAWLGRAPH_RESOLVE``:
URLs carry no port), trusts the test CA (``CRAWLGRAPH_CA_BUNDLE``: certificates
are verified) and allows private networks (the server is on loopback).
`Websites.requests()` is what the server saw (scheme, Host, SNI, path).
The fixture `websites` is a factory; a test module gets it by importing
``from tests.websites import websites_fixture  # noqa: F401``::

    def test_crawl(websites):
        sites = websites(pages=20)
        result = run_crawl(SITE, {"start_urls": "https://www.example.test/"}, sites.settings)
        assert {p["final_url"] for p in result.pages} == sites.world.page_urls("example.test")
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import select
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
import trustme

REPO = Path(__file__).resolve().parent.parent
SECTIONS = ("docs", "blog")
OTHER_CA = "other-ca.test"  # its certificate comes from a CA outside the bundle
WRONG_NAME = "wrong-name.test"  # served with a certificate that does not name it
LOOPBACK = "127.0.0.1"


# ---------------------------------------------------------------- the ground truth
@dataclass(frozen=True)
class Link:
    """One ``<a href>``: as written in the HTML, and the canonical absolute URL it means."""

    href: str
    target: str


@dataclass
class Page:
    url: str  # canonical, final (it does not redirect)
    title: str
    links: list[Link] = field(default_factory=list)
    status: int = 200
    # The canonical URL the page declares: as written, and the canonical absolute URL
    # it means (None: it declares none); sent in a Link header instead of the head for
    # a page that is a PDF.
    canonical_href: str | None = None
    canonical: str | None = None
    pdf: bool = False


@dataclass
class World:
    """Named sites: their pages by canonical URL, and the rules of their redirects."""

    sites: tuple[str, ...]
    pages: dict[str, Page]
    leaves: dict[str, list[str]]  # site -> leaf paths, page-N at index N
    # URL -> href of the <meta http-equiv="refresh"> its page is (a redirect, no page).
    refreshes: dict[str, str] = field(default_factory=dict)

    # --- names ---------------------------------------------------------
    def site_names(self, site: str) -> list[str]:
        """The host names of one site: the apex, www and the short-link host."""
        return [site, f"www.{site}", f"go.{site}"]

    def names(self) -> list[str]:
        """Every host name the server answers (also the two certificate-test names)."""
        return [n for s in self.sites for n in self.site_names(s)] + [OTHER_CA, WRONG_NAME]

    def certificate_names(self) -> list[str]:
        """The names the server's main certificate carries (not the certificate-test ones)."""
        return [n for s in self.sites for n in self.site_names(s)]

    def home(self, site: str | None = None) -> str:
        return f"https://www.{site or self.sites[0]}/"

    # --- redirects ------------------------------------------------------
    def redirect(self, url: str) -> tuple[int, str] | None:
        """(status, Location as sent) if this canonical URL redirects, else None."""
        parts = urlsplit(url)
        host, path = parts.hostname or "", parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        for site in self.sites:
            www = f"www.{site}"
            if host == site or (host == www and parts.scheme == "http"):
                return 301, f"https://{www}{path}"
            if host == f"go.{site}":
                n = path.strip("/")
                if n.isdigit() and int(n) < len(self.leaves[site]):
                    return 302, f"http://{site}{self.leaves[site][int(n)]}"
                return None
            if host != www:
                continue
            if path.startswith("/moved/") and path[7:].isdigit():
                if int(path[7:]) < len(self.leaves[site]):
                    return 308, f"https://go.{site}/{path[7:]}"
            if path.strip("/") in SECTIONS and not path.endswith("/"):
                return 301, path + "/"
            if path.endswith("/") and path[:-1] in self.leaves[site]:
                return 301, path[:-1]
        return None

    def hop(self, url: str) -> tuple[int | None, str] | None:
        """`redirect`, or (None, href) for a page that is a meta refresh."""
        if url in self.refreshes:
            return None, self.refreshes[url]
        return self.redirect(url)

    def final_url(self, url: str) -> str:
        """Where a URL ends after its redirects (itself if it does not redirect)."""
        for _ in range(20):
            hop = self.hop(url)
            if hop is None:
                break
            url = urljoin(url, hop[1])
        return url

    def folded_url(self, url: str, fold_canonical: bool = True) -> str:
        """The node of a URL in the TRUE page graph: its final URL, then (`fold_canonical`)
        the final URL of the canonical that page declares, and so on; a loop folds nowhere."""
        end = start = self.final_url(url)
        seen = {start}
        while fold_canonical:
            page = self.pages.get(end)
            if page is None or page.canonical is None:
                break
            nxt = self.final_url(page.canonical)
            if nxt == end:
                break
            if nxt in seen:
                return start
            seen.add(nxt)
            end = nxt
        return end

    def redirect_urls(self, urls: Sequence[str] | None = None) -> dict[str, str]:
        """Each redirecting link target (or each of `urls` that redirects) -> its final URL."""
        if urls is None:
            urls = sorted({link.target for page in self.pages.values() for link in page.links})
        return {u: self.final_url(u) for u in urls if self.redirect(u) is not None}

    # --- pages and links ------------------------------------------------
    def site_of(self, url: str) -> str | None:
        host = urlsplit(url).hostname or ""
        return next((s for s in self.sites if host == s or host.endswith("." + s)), None)

    def page_urls(self, site: str | None = None) -> set[str]:
        """Canonical URLs of every page (of one site), none of them a redirect."""
        return {u for u in self.pages if site is None or self.site_of(u) == site}

    def link_set(self, site: str | None = None) -> set[tuple[str, str]]:
        """Every (page, target) of the pages (of one site): targets as written, not folded."""
        return {(u, link.target) for u, page in self.pages.items()
                if site is None or self.site_of(u) == site for link in page.links}

    def link_graph(self, site: str | None = None, *,
                   fold_canonical: bool = False) -> set[tuple[str, str]]:
        """The TRUE page graph: (page, final URL of the target), every redirect folded;
        with `fold_canonical` both ends are also folded through their canonicals.

        A link through the apex or ``http://`` to the page itself is a self-loop here.
        """
        return {(self.folded_url(u, fold_canonical), self.folded_url(t, fold_canonical))
                for u, t in self.link_set(site)}

    def canonicals(self, site: str | None = None) -> dict[str, str]:
        """Page -> the canonical URL it declares, for the pages (of one site) that declare one."""
        return {u: page.canonical for u, page in self.pages.items()
                if page.canonical is not None and (site is None or self.site_of(u) == site)}

    def graph_nodes(self, site: str | None = None, *, fold_canonical: bool = False) -> set[str]:
        """The TRUE page graph's nodes: every page and link target, folded.

        (Every canonical a page declares is a page or a link target here.)
        """
        urls = self.page_urls(site) | {t for _, t in self.link_set(site)}
        return {self.folded_url(u, fold_canonical) for u in urls}

    def reachable(self, start: str,
                  in_scope: Callable[[str], bool] | None = None) -> set[str]:
        """Final page URLs a crawl from `start` reaches.

        A link is followed when `in_scope(target)` holds for its target as
        written (as the crawl's scope judges links), then through its redirects,
        which are not judged (as Scrapy's redirect middleware follows them).
        """
        seen: set[str] = set()
        first = self.final_url(start)
        frontier = [first] if first in self.pages else []
        seen.update(frontier)
        while frontier:
            nxt = []
            for url in frontier:
                for link in self.pages[url].links:
                    if in_scope is not None and not in_scope(link.target):
                        continue
                    final = self.final_url(link.target)
                    if final in self.pages and final not in seen:
                        seen.add(final)
                        nxt.append(final)
            frontier = nxt
        return seen

    # --- rendering ------------------------------------------------------
    def render(self, url: str) -> tuple[bytes, dict[str, str]] | None:
        """The body and headers a URL answers 200 with (None: it is no page)."""
        if url in self.refreshes:
            return (f'<!DOCTYPE html>\n<html><head><meta http-equiv="refresh" content="0; '
                    f'url={self.refreshes[url]}"></head><body></body></html>\n').encode(), {
                "Content-Type": "text/html; charset=utf-8"}
        page = self.pages.get(url)
        if page is None:
            return None
        if page.pdf:
            headers = {"Content-Type": "application/pdf"}
            if page.canonical_href is not None:
                headers["Link"] = f'<{page.canonical_href}>; rel="canonical"'
            return b"%PDF-1.4\n% " + page.title.encode() + b"\n%%EOF\n", headers
        items = "".join(f'<li><a href="{link.href}">{link.target}</a></li>'
                        for link in page.links)
        head = f"<title>{page.title}</title>"
        if page.canonical_href is not None:
            head += f'<link rel="canonical" href="{page.canonical_href}">'
        return (f"<!DOCTYPE html>\n<html><head>{head}</head><body>"
                f"<h1>{page.title}</h1><ul>{items}</ul></body></html>\n").encode(), {
            "Content-Type": "text/html; charset=utf-8"}


def _spellings(site: str, here: str, path: str, n: int) -> list[tuple[str, str]]:
    """(href, the canonical URL it means) for writing a link to leaf `path` from page `here`."""
    www = f"https://www.{site}"
    section = here.rsplit("/", 1)[0] + "/"
    relative = path[len(section):] if path.startswith(section) and here != "/" else None
    out = [(path, www + path), (www + path, www + path),
           (f"https://{site}{path}", f"https://{site}{path}"),  # through the apex
           (f"http://{site}{path}", f"http://{site}{path}"),  # apex and http
           (f"http://www.{site}{path}", f"http://www.{site}{path}"),  # http
           (path + "/", www + path + "/"),  # a trailing slash to strip
           (f"https://go.{site}/{n}", f"https://go.{site}/{n}"),  # a short link
           (f"/moved/{n}", f"{www}/moved/{n}")]  # the whole chain
    if relative:
        out.append((relative, www + path))
    elif here != "/":
        out.append((".." + path, www + path))  # from the other section
    return out


def _canonical_variants(world: World, site: str, first: bool) -> None:
    """Add the canonical variants and meta refreshes of one site (module docstring)."""
    www = f"https://www.{site}"
    home = world.pages[www + "/"]
    for i, path in enumerate(world.leaves[site]):
        if i % 3:
            continue
        leaf = world.pages[www + path]
        leaf.canonical_href = leaf.canonical = www + path
        section_index = world.pages[www + path.rsplit("/", 1)[0] + "/"]
        ref, printed = f"{www}{path}?ref=home", f"{www}/print{path}"
        mail, pdf, old = printed + "?ref=mail", f"{www}/pdf{path}", f"{www}/old/page-{i}"
        world.pages[ref] = Page(ref, leaf.title + " (ref)", list(leaf.links),
                                canonical_href=path, canonical=www + path)
        through_apex = f"http://{site}{path}"
        links = {link.target: Link(link.target, link.target) for link in leaf.links}
        links.update({through_apex: Link(through_apex, through_apex), mail: Link(mail, mail),
                      pdf: Link(f"/pdf{path}", pdf)})
        world.pages[printed] = Page(printed, leaf.title + " (print)", list(links.values()),
                                    canonical_href=through_apex, canonical=through_apex)
        world.pages[mail] = Page(mail, leaf.title + " (mail)", [Link(printed, printed)],
                                 canonical_href=f"/print{path}", canonical=printed)
        world.pages[pdf] = Page(pdf, leaf.title + " (pdf)", pdf=True,
                                canonical_href=www + path, canonical=www + path)
        world.refreshes[old] = path
        home.links += [Link(f"{path}?ref=home", ref), Link(f"/old/page-{i}", old)]
        section_index.links.append(Link(f"/print{path}", printed))
    if first and len(world.leaves[site]) > 1:
        path = world.leaves[site][1]
        a, b = f"{www}{path}?ref=a", f"{www}{path}?ref=b"
        world.pages[a] = Page(a, "loop a", [Link(b, b)], canonical_href=b, canonical=b)
        world.pages[b] = Page(b, "loop b", [Link(a, a)], canonical_href=a, canonical=a)
        home.links.append(Link(f"{path}?ref=a", a))


def generate_world(sites: Sequence[str] = ("example.test",), pages: int = 12, seed: int = 0,
                   links_per_page: int = 4, canonicals: bool = False) -> World:
    """Generate the sites: a home page, one index per section and `pages` leaves each.

    The home page links to the section indexes, an index to its leaves, each
    leaf to the next one (within the host, so that a crawl scoped to
    ``www.D`` reaches every page), to its index and to random leaves written in
    every way (`_spellings`), and with several sites to the next site's apex
    over ``http://``; with `canonicals`, the variants of the module docstring.
    Same arguments, same world.
    """
    if pages < 1 or not sites:
        raise ValueError("a world needs sites and at least one page per site")
    rng = random.Random(seed)
    world_pages: dict[str, Page] = {}
    leaves: dict[str, list[str]] = {}
    for k, site in enumerate(sites):
        www = f"https://www.{site}"
        paths = [f"/{SECTIONS[i % len(SECTIONS)]}/page-{i}" for i in range(pages)]
        leaves[site] = paths
        home = Page(www + "/", f"{site} home")
        home.links += [Link("/docs/", www + "/docs/"), Link("/blog", www + "/blog"),
                       Link(f"http://{site}/", f"http://{site}/")]  # itself, folded
        world_pages[home.url] = home
        for section in SECTIONS:
            index = Page(f"{www}/{section}/", f"{site} {section}")
            index.links = [Link(p.rsplit("/", 1)[1], www + p) for p in paths
                           if p.startswith(f"/{section}/")]
            index.links.append(Link("/", www + "/"))
            world_pages[index.url] = index
        for i, path in enumerate(paths):
            leaf = Page(www + path, f"{site} page {i}")
            j = (i + 1) % pages
            # The chain link stays on www.D (followable in a host-scoped crawl).
            chain = [s for s in _spellings(site, path, paths[j], j)
                     if s[1].startswith(www + "/") and "/moved/" not in s[0]]
            leaf.links.append(Link(*rng.choice(chain)))
            for _ in range(links_per_page - 1):
                m = rng.randrange(pages)
                leaf.links.append(Link(*rng.choice(_spellings(site, path, paths[m], m))))
            section = path.rsplit("/", 1)[0]
            leaf.links.append(Link(*rng.choice([(section + "/", www + section + "/"),
                                                (section, www + section)])))
            if len(sites) > 1:
                other = sites[(k + 1) % len(sites)]
                leaf.links.append(Link(f"http://{other}/", f"http://{other}/"))
            # Two links to one URL are one link of the graph: keep the first.
            unique: dict[str, Link] = {}
            for link in leaf.links:
                unique.setdefault(link.target, link)
            leaf.links = list(unique.values())
            world_pages[leaf.url] = leaf
    for name in (OTHER_CA, WRONG_NAME):
        for scheme in ("http", "https"):
            world_pages[f"{scheme}://{name}/"] = Page(f"{scheme}://{name}/", name)
    world = World(sites=tuple(sites), pages=world_pages, leaves=leaves)
    if canonicals:
        for k, site in enumerate(sites):
            _canonical_variants(world, site, k == 0)
    return world


# ---------------------------------------------------------------- server side
class _Server:
    def __init__(self, config: dict[str, Any]) -> None:
        self.world = generate_world(config["sites"], config["pages"], config["seed"],
                                    canonicals=config.get("canonicals", False))
        self.log = open(config["log"], "a", buffering=1 << 16)  # noqa: SIM115
        self.ports: dict[str, int] = {}
        self.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.tls.load_cert_chain(config["cert"])
        self.other_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.other_tls.load_cert_chain(config["other_cert"])
        self.tls.sni_callback = self._sni
        self._sni_names: dict[int, str | None] = {}

    def _sni(self, sslobj: Any, name: str | None, context: ssl.SSLContext) -> None:
        self._sni_names[id(sslobj)] = name
        if name == OTHER_CA:
            sslobj.context = self.other_tls

    def handler(self, scheme: str) -> Callable[..., Any]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            sslobj = writer.get_extra_info("ssl_object")
            sni = self._sni_names.pop(id(sslobj), None) if sslobj is not None else None
            try:
                while await self._one(scheme, sni, reader, writer):
                    pass
            except (ConnectionError, ssl.SSLError):
                return
            finally:
                with contextlib.suppress(Exception):
                    writer.close()
        return handle

    async def _one(self, scheme: str, sni: str | None, reader: asyncio.StreamReader,
                   writer: asyncio.StreamWriter) -> bool:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            return False
        lines = head.decode("latin-1").split("\r\n")
        try:
            method, target, version = lines[0].split(" ", 2)
        except ValueError:
            return False
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        if length := int(headers.get("content-length") or 0):
            await reader.readexactly(length)
        host_header = headers.get("host", "")
        host = host_header.rsplit(":", 1)[0] if not host_header.endswith("]") else host_header
        url = f"{scheme}://{host.lower().rstrip('.')}{target}"
        self.log.write(json.dumps({
            "scheme": scheme, "method": method, "path": target, "host": host_header,
            "sni": sni, "port": self.ports[scheme], "url": url, "time": time.time(),
            "user_agent": headers.get("user-agent", "")}) + "\n")
        self.log.flush()
        hop = self.world.redirect(url)
        if hop is not None:
            status, out, body = hop[0], {"Location": hop[1]}, b""
        elif (page := self.world.render(url)) is not None:
            status, (body, out) = 200, page
        else:
            status, out, body = 404, {"Content-Type": "text/plain"}, b"not found\n"
        reason = {200: "OK", 301: "Moved Permanently", 302: "Found",
                  308: "Permanent Redirect", 404: "Not Found"}[status]
        out["Content-Length"] = str(len(body))
        writer.write((f"HTTP/1.1 {status} {reason}\r\n"
                      + "".join(f"{k}: {v}\r\n" for k, v in out.items()) + "\r\n")
                     .encode("latin-1") + (b"" if method == "HEAD" else body))
        await writer.drain()
        return version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"


def _quiet(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    # A client refusing our certificate is what the TLS tests do: not worth a traceback.
    if not isinstance(context.get("exception"), ssl.SSLError | ConnectionError):
        loop.default_exception_handler(context)


async def _serve(config: dict[str, Any]) -> None:
    server = _Server(config)
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(_quiet)
    http = await asyncio.start_server(server.handler("http"), LOOPBACK, 0, backlog=1024)
    https = await asyncio.start_server(server.handler("https"), LOOPBACK, 0, backlog=1024,
                                       ssl=server.tls, ssl_handshake_timeout=10)
    server.ports = {"http": http.sockets[0].getsockname()[1],
                    "https": https.sockets[0].getsockname()[1]}
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"READY {server.ports['http']} {server.ports['https']}", flush=True)
    async with http, https:
        await stop.wait()
    server.log.close()


def main() -> None:
    asyncio.run(_serve(json.loads(sys.argv[1])))


# ---------------------------------------------------------------- test side
@dataclass(frozen=True)
class LoggedRequest:
    """One request as the server saw it."""

    scheme: str
    method: str
    path: str
    host: str  # the Host header as sent
    sni: str | None  # the TLS server name (None over HTTP)
    port: int
    url: str  # scheme, Host and path
    time: float
    user_agent: str


class Websites:
    """Handle on one named-sites server subprocess. Use as a context manager."""

    def __init__(self, sites: Sequence[str] = ("example.test",), pages: int = 12,
                 seed: int = 0, canonicals: bool = False) -> None:
        self.world = generate_world(sites, pages, seed, canonicals=canonicals)
        self._dir = Path(tempfile.mkdtemp(prefix="crawlgraph-websites-"))
        self.log_path = self._dir / "requests.jsonl"
        self.log_path.touch()
        self.ca = trustme.CA()
        self.ca_bundle = str(self._dir / "ca.pem")  # the test CA: CRAWLGRAPH_CA_BUNDLE
        self.ca.cert_pem.write_to_path(self.ca_bundle)
        self.ca.issue_cert(*self.world.certificate_names()).private_key_and_cert_chain_pem \
            .write_to_path(str(self._dir / "server.pem"))
        self.other_ca = trustme.CA()  # not in the bundle
        self.other_ca.issue_cert(OTHER_CA).private_key_and_cert_chain_pem \
            .write_to_path(str(self._dir / "other.pem"))
        self.config = {"sites": list(sites), "pages": pages, "seed": seed,
                       "canonicals": canonicals,
                       "log": str(self.log_path), "cert": str(self._dir / "server.pem"),
                       "other_cert": str(self._dir / "other.pem")}
        self.http_port = 0
        self.https_port = 0
        self._proc: subprocess.Popen[str] | None = None

    # --- what a crawl needs -------------------------------------------
    @property
    def resolve(self) -> list[str]:
        """``CRAWLGRAPH_RESOLVE``: every name, on ports 80 and 443, to this server's ports."""
        return [entry for name in self.world.names() for entry in (
            f"{name}:80:{LOOPBACK}:{self.http_port}", f"{name}:443:{LOOPBACK}:{self.https_port}")]

    @property
    def settings(self) -> dict[str, Any]:
        """Crawl settings: the names mapped here, the test CA trusted, loopback allowed."""
        return {"CRAWLGRAPH_RESOLVE": self.resolve, "CRAWLGRAPH_CA_BUNDLE": self.ca_bundle,
                "CRAWLGRAPH_ALLOW_PRIVATE_NETWORKS": True}

    def url(self, host: str, path: str = "/", scheme: str = "https") -> str:
        """A URL of a name as a crawl writes it (default port, so no port)."""
        return f"{scheme}://{host}{path}"

    # --- lifecycle ----------------------------------------------------
    def start(self, timeout: float = 20.0) -> Websites:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "tests.websites", json.dumps(self.config)],
            cwd=REPO, stdout=subprocess.PIPE, text=True)
        assert self._proc.stdout is not None
        ready, _, _ = select.select([self._proc.stdout], [], [], timeout)
        line = self._proc.stdout.readline() if ready else ""
        if not line.startswith("READY "):
            self.close()
            raise RuntimeError(f"websites server did not start: {line!r}")
        self.http_port, self.https_port = (int(p) for p in line.split()[1:3])
        return self

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
        if self._proc is not None and self._proc.stdout:
            self._proc.stdout.close()
        self._proc = None

    def close(self) -> None:
        """Stop the server and remove its files (log, certificates)."""
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> Websites:
        return self.start() if self._proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- what the server saw ------------------------------------------
    def requests(self, host: str | None = None) -> list[LoggedRequest]:
        """Every request received so far (optionally only those for one Host), in order."""
        out = []
        with open(self.log_path) as fh:
            for line in fh:
                if not line.endswith("\n"):
                    break  # a line still being written
                entry = LoggedRequest(**json.loads(line))
                if host is None or entry.host == host:
                    out.append(entry)
        return out

    def urls(self) -> list[str]:
        return [r.url for r in self.requests()]


@pytest.fixture(name="websites")
def websites_fixture() -> Iterator[Callable[..., Websites]]:
    """A factory: ``websites(sites=[...], pages=N, seed=S)`` starts a `Websites` server.

    Every server started through it is stopped, and its files removed, at teardown.
    """
    servers: list[Websites] = []

    def start(**params: Any) -> Websites:
        server = Websites(**params).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


if __name__ == "__main__":
    main()
