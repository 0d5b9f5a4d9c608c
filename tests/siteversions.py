"""Versions of a generated site, for recrawl tests: some pages changed, some removed, some added.

`evolve(site, version)` returns version `version` of a `tests.sitegen` site
(version 0 is the site itself). From version 1 on, a tenth of the pages
(never the start page; `removed`) are removed, every link to a removed page
is pointed at the next page kept (so every page stays reachable, and the
pages that linked to it change), a tenth of the rest get new text
(`revised`), and `added` new pages appear, each linked from a kept page and
linking back to the start page. What changed is the generator's own truth:
`truth(old, new, origin)` compares the bodies the two versions render.
"""

from __future__ import annotations

import copy
import random

from tests.sitegen import LinkSpec, PageSpec, Site


def evolve(site: Site, version: int, *, added: int = 3, removed: float = 0.1,
           revised: float = 0.1) -> Site:
    """Version `version` of `site` (see the module docstring); `removed` and `revised`
    are the fractions of pages removed and given new text."""
    if version <= 0:
        return site
    new = copy.deepcopy(site)
    rng = random.Random(version)
    paths = sorted((p for p in new.pages if p != new.start_path and p.startswith("/p/")),
                   key=lambda p: int(p.rsplit("/", 1)[1]))
    gone = set(rng.sample(paths, max(1, int(len(paths) * removed))))
    kept = [p for p in paths if p not in gone]
    order = [new.start_path, *paths]

    def successor(target: str) -> str:
        i = order.index(target)
        while order[i] in gone:
            i = (i + 1) % len(order)
        return order[i]

    for path in gone:
        del new.pages[path]
    for page in new.pages.values():
        page.links = [LinkSpec(f"{successor(link.target)}", successor(link.target), link.text,
                               link.nofollow)
                      if link.target in gone else link for link in page.links]
    for path in rng.sample(kept, max(1, int(len(kept) * revised))):
        new.pages[path].text += f" (revised in version {version})"
    start = len(site.pages) + 1000 * version
    for n, source in enumerate(rng.sample(kept, added)):
        path = f"/p/{start + n}"
        new.pages[path] = PageSpec(path=path, title=f"Added page {start + n}",
                                   text=f"added in version {version}",
                                   links=[LinkSpec(new.start_path, new.start_path, "home")])
        new.pages[source].links.append(LinkSpec(path, path, f"to added {start + n}"))
    return new


def truth(old: Site, new: Site, origin: str) -> dict[str, str]:
    """Each reachable page URL of either version: new, changed, unchanged or gone."""
    before, after = old.reachable(origin), new.reachable(origin)
    out = {}
    for url in before | after:
        path = url[len(origin):]
        if url not in before:
            out[url] = "new"
        elif url not in after:
            out[url] = "gone"
        else:
            same = old.render(path, origin) == new.render(path, origin)
            out[url] = "unchanged" if same else "changed"
    return out
