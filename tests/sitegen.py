"""A deterministic generator of test web sites, and the ground truth a crawl must yield.

`generate_site(pages, seed)` returns a `Site`: its pages, every link each page
carries (as written in the HTML and as the canonical URL it means), its
redirects and its JavaScript-only links. The mock server (`tests/mockserver.py`)
renders the HTML from this data; tests compare what a crawl stored against
`Site.page_urls()` and `Site.link_set()`, which are computed from the
generator's own data, never by parsing the served HTML or from a crawl.

With `tricky=True` the site has what a faithful crawler must get right:
cycles, relative and absolute links, `<base href>`, fragments (also bare
`#frag` self-links), redirects (and redirect chains), the same URL spelled
several ways (scheme case, dot segments, percent-encoded unreserved
characters), `rel=nofollow`, non-HTML pages, broken links (404), links that
leave the site, and `mailto:`/`javascript:` hrefs that are not links at all.

Canonical URLs here follow RFC 3986 normalisation: lower-case scheme and host,
no fragment, no dot segments, unreserved characters not percent-encoded.
"""

from __future__ import annotations

import html
import random
from dataclasses import dataclass, field

EXTERNAL_ORIGIN = "http://external.invalid"


@dataclass(frozen=True)
class LinkSpec:
    """One `<a href>` on a page.

    `href` is written into the HTML; `{origin}` in it stands for the server's
    origin (`http://127.0.0.1:PORT`), `{hostport}` for `127.0.0.1:PORT`.
    `target` is the canonical target path (or absolute URL for external
    links); None for hrefs that are not links (mailto:, javascript:).
    """

    href: str
    target: str | None
    text: str
    nofollow: bool = False


@dataclass
class PageSpec:
    path: str
    title: str
    links: list[LinkSpec] = field(default_factory=list)
    base_href: str | None = None  # may contain {origin}
    status: int = 200
    content_type: str = "text/html; charset=utf-8"
    text: str = ""


@dataclass
class Site:
    """A generated site: pages by canonical path, redirects, and the JS-only page."""

    pages: dict[str, PageSpec]
    redirects: dict[str, tuple[int, str]]  # path -> (status, location path)
    start_path: str = "/p/0"
    js_path: str = "/js"
    js_links: tuple[str, ...] = ()
    # Pages reachable only by running the /js page's script; not part of the static site.
    js_pages: dict[str, PageSpec] = field(default_factory=dict)

    # --- ground truth -------------------------------------------------
    def page_urls(self, origin: str, *, statuses: tuple[int, ...] | None = None) -> set[str]:
        """Canonical URLs of every final (non-redirect) page, optionally only those statuses."""
        return {
            origin + path
            for path, page in self.pages.items()
            if statuses is None or page.status in statuses
        }

    def page_status(self, origin: str) -> dict[str, int]:
        return {origin + path: page.status for path, page in self.pages.items()}

    def link_set(self, origin: str, *, resolve_redirects: bool = False) -> set[tuple[str, str]]:
        """Every (source, target) pair of canonical URLs carried by an HTML page.

        Targets are the URL the href means (a redirecting URL stays itself unless
        `resolve_redirects`); fragments are dropped; hrefs that are not links
        (mailto:, javascript:) are left out; external links are included.
        """
        out = set()
        for path, page in self.pages.items():
            for link in page.links:
                if link.target is None:
                    continue
                target = link.target
                if resolve_redirects:
                    target = self.final_path(target)
                out.add((origin + path, _absolute(origin, target)))
        return out

    def nofollow_links(self, origin: str) -> set[tuple[str, str]]:
        return {
            (origin + path, _absolute(origin, link.target))
            for path, page in self.pages.items()
            for link in page.links
            if link.target is not None and link.nofollow
        }

    def redirect_urls(self, origin: str) -> dict[str, str]:
        """Each redirecting URL mapped to the final URL it ends at."""
        return {origin + path: origin + self.final_path(path) for path in self.redirects}

    def final_path(self, path: str) -> str:
        seen = 0
        while path in self.redirects and seen < 20:
            path = self.redirects[path][1]
            seen += 1
        return path

    def reachable(self, origin: str, *, follow_nofollow: bool = True,
                  max_depth: int | None = None) -> set[str]:
        """Page URLs a crawl from the start page reaches inside the site (BFS over the data)."""
        depth = {self.start_path: 0}
        frontier = [self.start_path]
        while frontier:
            nxt = []
            for path in frontier:
                for link in self.pages[path].links:
                    if link.target is None or link.target.startswith("http"):
                        continue
                    if link.nofollow and not follow_nofollow:
                        continue
                    target = self.final_path(link.target)
                    if target in depth or target not in self.pages:
                        continue
                    if max_depth is not None and depth[path] + 1 > max_depth:
                        continue
                    depth[target] = depth[path] + 1
                    if self.pages[target].content_type.startswith("text/html"):
                        nxt.append(target)
            frontier = nxt
        return {origin + p for p in depth}

    # --- rendering ----------------------------------------------------
    def render(self, path: str, origin: str) -> tuple[int, str, bytes] | None:
        """(status, content type, body) for a canonical page path, or None."""
        page = self.pages.get(path) or self.js_pages.get(path)
        if page is None:
            return None
        if not page.content_type.startswith("text/html"):
            return page.status, page.content_type, page.text.encode()
        head = [f"<title>{html.escape(page.title)}</title>"]
        if page.base_href is not None:
            head.append(f'<base href="{html.escape(page.base_href.format(origin=origin))}">')
        body = [f"<h1>{html.escape(page.title)}</h1>", f"<p>{html.escape(page.text)}</p>", "<ul>"]
        for link in page.links:
            rel = ' rel="nofollow"' if link.nofollow else ""
            href = html.escape(link.href.format(origin=origin, hostport=origin.split("://")[1]))
            body.append(f'<li><a href="{href}"{rel}>{html.escape(link.text)}</a></li>')
        body.append("</ul>")
        doc = ("<!DOCTYPE html>\n<html><head>" + "".join(head) + "</head><body>"
               + "\n".join(body) + "</body></html>\n")
        return page.status, "text/html; charset=utf-8", doc.encode()


def _absolute(origin: str, target: str) -> str:
    return target if target.startswith("http") else origin + target


def _page_text(rng: random.Random, n: int) -> str:
    words = ["graph", "crawl", "node", "edge", "link", "page", "site", "host", "web", "data"]
    return f"Page {n}: " + " ".join(rng.choice(words) for _ in range(12))


def _spellings(j: int, i: int) -> list[tuple[str, str | None]]:
    """Ways to write a link to /p/{j} from /p/{i} (no <base>); (href, extra fragment note)."""
    digits = str(j)
    pct = "".join(f"%{ord(c):02X}" for c in digits)  # unreserved digits, percent-encoded
    return [
        (f"/p/{j}", None),
        (f"{{origin}}/p/{j}", None),
        (f"{j}", None),  # relative to /p/{i}
        (f"./{j}", None),
        (f"../p/{j}", None),
        (f"/p/{j}#section-{i}", None),
        (f"HTTP://{{hostport}}/p/{j}", None),
        (f"/p/x/../{j}", None),
        (f"/p/./{j}", None),
        (f"/p/{pct}", None),
    ]


def generate_site(pages: int, seed: int = 0, links_per_page: int = 5, *,
                  tricky: bool = False) -> Site:
    """Generate a site of `pages` HTML pages `/p/0` ... `/p/{pages-1}`.

    Every page links to the next one (so all are reachable from `/p/0`, and the
    last closes a cycle back to the first) and to `links_per_page - 1` random
    others. Same `pages`, `seed`, `links_per_page`, `tricky` → the same site.
    """
    if pages < 1:
        raise ValueError("pages must be at least 1")
    rng = random.Random(seed)
    site_pages: dict[str, PageSpec] = {}
    redirects: dict[str, tuple[int, str]] = {}
    extra_pages: dict[str, PageSpec] = {}
    for i in range(pages):
        path = f"/p/{i}"
        page = PageSpec(path=path, title=f"Page {i}", text=_page_text(rng, i))
        targets = [(i + 1) % pages] + [rng.randrange(pages) for _ in range(links_per_page - 1)]
        if tricky and i % 7 == 3:
            # Links resolve against <base href>, not the page URL.
            if i % 2:
                page.base_href = "{origin}/b/" + f"{i}/"
                prefix = "../../p/"
            else:
                page.base_href = "/p/"
                prefix = ""
            for n, j in enumerate(targets):
                page.links.append(LinkSpec(f"{prefix}{j}", f"/p/{j}", f"to {j}",
                                           nofollow=n > 0 and j % 11 == 0))
        else:
            for n, j in enumerate(targets):
                if tricky:
                    href = rng.choice(_spellings(j, i))[0]
                else:
                    href = f"/p/{j}"
                # The chain link (n == 0) is always followable so every page stays reachable.
                page.links.append(LinkSpec(href, f"/p/{j}", f"to {j}",
                                           nofollow=tricky and n > 0 and j % 11 == 0))
        if tricky:
            if i % 5 == 0 and page.base_href is None:
                # (With <base href>, "#top" would mean the base URL, not this page.)
                page.links.append(LinkSpec("#top", path, "top of page"))
            if i % 9 == 1:
                j = rng.randrange(pages)
                redirects[f"/r/{j}"] = (301, f"/p/{j}")
                page.links.append(LinkSpec(f"/r/{j}", f"/r/{j}", f"moved {j}"))
            if i % 13 == 2:
                j = rng.randrange(pages)
                redirects[f"/rr/{j}"] = (302, f"/r/{j}")
                redirects[f"/r/{j}"] = (301, f"/p/{j}")
                page.links.append(LinkSpec(f"/rr/{j}", f"/rr/{j}", f"moved twice {j}"))
            if i % 17 == 4:
                page.links.append(LinkSpec(f"/t/{i}.txt", f"/t/{i}.txt", "plain text"))
                extra_pages[f"/t/{i}.txt"] = PageSpec(
                    path=f"/t/{i}.txt", title="", content_type="text/plain; charset=utf-8",
                    text=f"plain text file {i}\n")
            if i % 19 == 5:
                page.links.append(LinkSpec(f"/missing/{i}", f"/missing/{i}", "broken"))
                extra_pages[f"/missing/{i}"] = PageSpec(
                    path=f"/missing/{i}", title="Not found", status=404, text="no such page")
            if i % 23 == 6:
                page.links.append(LinkSpec(f"{EXTERNAL_ORIGIN}/page/{i}",
                                           f"{EXTERNAL_ORIGIN}/page/{i}", "elsewhere"))
            if i % 29 == 7:
                page.links.append(LinkSpec("mailto:someone@example.org", None, "mail"))
                page.links.append(LinkSpec("javascript:void(0)", None, "script"))
        site_pages[path] = page
    site_pages.update(extra_pages)
    js_links = ("/jsdest/1", "/jsdest/2", "/jsdest/3")
    js_pages = {target: PageSpec(path=target, title=f"JS target {target}",
                                 text="found through JavaScript") for target in js_links}
    return Site(pages=site_pages, redirects=redirects, js_links=js_links, js_pages=js_pages)


JS_PAGE = """<!DOCTYPE html>
<html><head><title>Loading</title></head><body><div id="app"></div>
<script>
  window.addEventListener("DOMContentLoaded", function () {
    var app = document.getElementById("app");
    var links = %s;
    var h = document.createElement("h1");
    h.textContent = "Rendered by JavaScript";
    app.appendChild(h);
    links.forEach(function (href) {
      var a = document.createElement("a");
      a.href = href; a.textContent = "js " + href; a.className = "js-link";
      app.appendChild(a);
    });
  });
</script></body></html>
"""
