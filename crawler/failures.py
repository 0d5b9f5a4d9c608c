"""Why a download failed, said the way a person reads it: a cause and a sentence.

A failed fetch is stored as a page with status 0 and an error that starts
with its cause, then names the host:

    dns: example.org: the name does not resolve (DNSLookupError: ...)

The causes (`CAUSES`) are few and stable, so that a job's summary can count
errors by cause and a job that fetched nothing can say why in one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from scrapy.exceptions import (
    CannotResolveHostError,
    DownloadConnectionRefusedError,
    DownloadFailedError,
    DownloadTimeoutError,
    ResponseDataLossError,
)
from twisted.internet import error as net
from twisted.web._newclient import ResponseFailed, ResponseNeverReceived

#: cause -> what it means, in the words a summary uses.
CAUSES: Final = {
    "dns": "the name does not resolve",
    "refused": "the connection was refused",
    "reset": "the connection was reset or closed before an answer",
    "timeout": "no answer in time",
    "tls": "the TLS handshake failed",
    "unreachable": "the host cannot be reached",
    "cut_off": "the answer was cut off at a download limit",
    "robots": "robots.txt could not be read",
    # robots.txt answered 5xx or did not answer (timeout, reset) for longer than
    # CRAWLGRAPH_ROBOTS_MAX_WAIT (crawler.middlewares.robots): the page was not fetched.
    "robots_unavailable": "robots.txt stayed unavailable past the wait, the page was not fetched",
    "error": "the download failed",
}
MAX_ERROR = 2000


@dataclass(frozen=True, slots=True)
class Failure:
    """The cause of a failed download and the host it struck."""

    cause: str
    host: str
    detail: str

    @property
    def reason(self) -> str:
        """`example.org: the name does not resolve` — what a job's failure says."""
        return f"{self.host}: {CAUSES[self.cause]}"

    def text(self) -> str:
        """The page's stored error: cause, host, meaning, and the exception."""
        return f"{self.cause}: {self.reason} ({self.detail})"[:MAX_ERROR]


class RobotsUnreachable(Exception):
    """robots.txt of a request's host could not be had: the request fails with its cause.

    RFC 9309 lets nothing of the host be fetched then; the request is a page
    error that says why, not a silent drop: robots.txt unreachable for good
    (`dns: example.org: the name does not resolve (robots.txt: ...)`), or down
    for longer than the wait (`robots_unavailable: example.org: robots.txt
    stayed unavailable past the wait, the page was not fetched (robots.txt:
    answered 503 for 300s)`).
    """

    def __init__(self, failure: Failure) -> None:
        super().__init__(f"robots.txt: {failure.detail}")
        self.failure = failure


# pyOpenSSL's errors, and service_identity's (the certificate does not name the host).
_TLS_MODULES = ("OpenSSL", "service_identity")


def _tls(exc: BaseException) -> bool:
    if type(exc).__module__.startswith(_TLS_MODULES):
        return True
    reasons = getattr(exc, "reasons", None) or []
    return any(type(getattr(r, "value", r)).__module__.startswith(_TLS_MODULES)
               for r in reasons)


def _cause(exc: BaseException) -> str | None:
    if isinstance(exc, net.DNSLookupError | CannotResolveHostError):
        return "dns"
    if isinstance(exc, net.ConnectionRefusedError | DownloadConnectionRefusedError):
        return "refused"
    if isinstance(exc, net.TCPTimedOutError | net.TimeoutError | TimeoutError
                  | DownloadTimeoutError):
        return "timeout"
    if isinstance(exc, net.NoRouteError):
        return "unreachable"
    if _tls(exc):
        return "tls"
    if isinstance(exc, ResponseNeverReceived | ResponseFailed | net.ConnectionLost
                  | net.ConnectionDone | ConnectionResetError | ResponseDataLossError):
        return "reset"
    if isinstance(exc, net.ConnectError):
        return "unreachable"
    return None


def cause_of(exc: BaseException) -> str:
    """The cause (a key of `CAUSES`) of a download exception.

    Scrapy wraps Twisted's errors in its own (`raise ... from`): the chain is
    read to the first exception that names a cause, so that a TLS failure
    inside a `DownloadFailedError` is a TLS failure.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        found = _cause(current)
        if found is not None:
            return found
        current = current.__cause__ or current.__context__
    return "reset" if isinstance(exc, DownloadFailedError) else "error"


def describe(exc: BaseException, url: str) -> Failure:
    """The `Failure` of a download of `url` that raised `exc`."""
    if isinstance(exc, RobotsUnreachable):
        return Failure(cause=exc.failure.cause, host=exc.failure.host, detail=str(exc))
    host = urlsplit(url).hostname or url
    detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return Failure(cause=cause_of(exc), host=host, detail=detail)


def parse(error: str | None) -> tuple[str, str] | None:
    """(cause, reason) of a stored page error written by `Failure.text`, else None."""
    if not error:
        return None
    if error.startswith("cut off ("):  # the words of the download limits (middlewares.limits)
        return "cut_off", CAUSES["cut_off"]
    cause, sep, rest = error.partition(": ")
    if not sep or cause not in CAUSES:
        return None
    reason = rest.rsplit(" (", 1)[0]
    return cause, reason
