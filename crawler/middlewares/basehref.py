"""Tolerate a `<base href>` that does not parse, such as `http://[bad`.

Scrapy reads a page's base URL (`scrapy.utils.response.get_base_url`) for its
selectors (`response.css`, `.xpath`), for `<meta http-equiv=refresh>` and for
link extraction, and w3lib raises ValueError for a base it cannot parse: the
meta-refresh middleware would then turn a good page into a failed download,
and every selector on it would raise. This middleware gives such a page its
own URL as its base (kept in Scrapy's base-URL cache of the response), so it
is stored and its links are read like any other page's.

On in `crawler.settings` at 585: its `process_response` runs
after decompression (590) and before the meta-refresh middleware (580).
"""

from __future__ import annotations

from scrapy import Request
from scrapy.http import Response, TextResponse
from scrapy.utils import response as response_utils


def tolerate_bad_base(response: Response) -> None:
    """If the page's `<base href>` does not parse, make its own URL its base."""
    if not isinstance(response, TextResponse):
        return
    try:
        response_utils.get_base_url(response)
    except ValueError:
        response_utils._baseurl_cache[response] = response.url


class BaseHrefMiddleware:
    """Downloader middleware: see the module docstring."""

    def process_response(self, request: Request, response: Response) -> Response:
        tolerate_bad_base(response)
        return response
