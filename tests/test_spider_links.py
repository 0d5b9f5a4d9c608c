"""Links of a page as `extract_links` finds them: targets, anchor text, counts, nofollow."""

from __future__ import annotations

from scrapy.http import HtmlResponse

from crawler.spiders.links import extract_links

PAGE = b"""<!DOCTYPE html><html><head><base href="http://a.test/dir/">
<title>t</title></head><body>
<a href="one">First <b>bold</b><!-- a comment --> and<?pi ignored?>
   spaced</a> tail text
<a href="one">second anchor to one</a>
<a href="/two" rel="NoFollow external">two</a>
<a href="/two">two again</a>
<a href="three" rel="nofollow"><img src="x.png" alt="image alt"></a>
<map><area href="/four" alt="  area alt  "></map>
<a href="mailto:x@a.test">mail</a><a href="">base itself</a>
<a href="five">text <script>var s = 1;</script></a>
</body></html>"""


def _links(body: bytes) -> dict[str, tuple[str, bool, int]]:
    response = HtmlResponse("http://a.test/dir/page", body=body)
    return {link.url: (link.text, link.nofollow, link.count) for link in extract_links(response)}


def test_targets_text_counts_and_nofollow() -> None:
    assert _links(PAGE) == {
        "http://a.test/dir/one": ("First bold and spaced", False, 2),
        # Followable when any anchor to it is.
        "http://a.test/two": ("two", False, 2),
        # An anchor's own text only (an image's alt is not the anchor's).
        "http://a.test/dir/three": ("", True, 1),
        "http://a.test/four": ("area alt", False, 1),
        "http://a.test/dir/": ("base itself", False, 1),
        "http://a.test/dir/five": ("text var s = 1;", False, 1),
    }


def test_robots_meta_nofollow_makes_every_link_nofollow() -> None:
    body = (b'<html><head><meta name="ROBOTS" content="noindex, NoFollow"></head>'
            b'<body><a href="/x">x</a></body></html>')
    assert _links(body) == {"http://a.test/x": ("x", True, 1)}
