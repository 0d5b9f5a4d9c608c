"""Download limits: size and time caps, and telling a cut-off download from other errors.

Scrapy enforces the limits (`DOWNLOAD_MAXSIZE`, also while inflating a
compressed body, and `DOWNLOAD_TIMEOUT`), which `crawler.settings` sets to
10 MiB and 30 s, so a decompression bomb, an endless body or a server that
never finishes is cut off. `cut_off_reason` names what
happened; the spider kit stores it as the page's error and records a
`cut_off` crawl event on the job.
"""

from __future__ import annotations

from scrapy.exceptions import DownloadCancelledError, DownloadTimeoutError, IgnoreRequest
from twisted.internet.defer import CancelledError
from twisted.internet.error import TimeoutError as TxTimeoutError


def cut_off_reason(exc: BaseException) -> str | None:
    """"size" or "time" if this download error is a limit cutting it off, else None."""
    if isinstance(exc, IgnoreRequest) and "DOWNLOAD_MAXSIZE" in str(exc):
        return "size"  # a compressed body that inflated beyond the limit
    # The HTTP handler cancels a download only when its body passes DOWNLOAD_MAXSIZE.
    if isinstance(exc, (DownloadCancelledError, CancelledError)):
        return "size"
    if isinstance(exc, (DownloadTimeoutError, TxTimeoutError)):
        return "time"
    return None
