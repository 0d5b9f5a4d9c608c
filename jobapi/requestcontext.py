"""The request context: an id for every request, one access-log line, the metrics.

`RequestContext` is the outermost ASGI middleware: it takes or makes
`X-Request-ID`, returns it, refuses a query string that is not UTF-8, and
logs one line per request; every log line of the `jobapi` logger carries the
request id (`configure_logging`).
"""

from __future__ import annotations

import contextvars
import logging
import re
import time
import uuid
from typing import Any
from urllib.parse import unquote_to_bytes

import msgspec

from jobapi.schemas import ErrorDetail, ErrorResponse
from jobapi.services.health import RequestMetrics

access_log = logging.getLogger("jobapi.access")
request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestContext:
    """Takes or makes `X-Request-ID`, returns it, and logs one line per request."""

    def __init__(self, app: Any, metrics: RequestMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = ""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                rid = value.decode("latin-1")
                break
        if not _REQUEST_ID.match(rid):
            rid = uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        token = request_id_var.set(rid)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []),
                                      (b"x-request-id", rid.encode())]
            await send(message)

        try:
            problem = _query_problem(scope.get("query_string", b""))
            if problem is not None:
                await _send_bad_request(send_with_id, problem, rid)
                return
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("path_template") or "unmatched"
            self.metrics.observe(scope["method"], route, status, elapsed)
            if access_log.isEnabledFor(logging.INFO):
                # The record made directly: Logger.info would walk the stack to find
                # the caller, which is known (here).
                access_log.handle(access_log.makeRecord(
                    access_log.name, logging.INFO, __file__, 0, "%s %s %d %.1fms",
                    (scope["method"], scope["path"], status, elapsed * 1000), None))
            request_id_var.reset(token)


def _query_problem(query: bytes) -> str | None:
    """What is wrong with a query string that no parameter may hold, or None.

    Litestar would decode invalid UTF-8 into replacement characters: a filter
    would then silently match nothing. (Each parameter refuses NUL itself.)
    """
    if not query:
        return None
    raw = unquote_to_bytes(query.replace(b"+", b" "))
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return "The query string is not valid UTF-8."
    return None


async def _send_bad_request(send: Any, message: str, rid: str) -> None:
    body = msgspec.json.encode(ErrorResponse(error=ErrorDetail(
        code="bad_request", message=message, request_id=rid,
        hint="Percent-encode parameters as UTF-8, without control characters.")))
    await send({"type": "http.response.start", "status": 400, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


def configure_logging(level: str) -> None:
    """One handler on the `jobapi` logger; every line carries the request id."""
    logger = logging.getLogger("jobapi")
    logger.setLevel(level)
    if any(getattr(h, "_crawlgraph", False) for h in logger.handlers):
        return
    handler = logging.StreamHandler()
    handler._crawlgraph = True  # type: ignore[attr-defined]
    handler.addFilter(_RequestIdFilter())
    handler.setFormatter(_LineFormatter(
        "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
    logger.addHandler(handler)


class _LineFormatter(logging.Formatter):
    """logging's format, the date and time of each second written once, not on every line."""

    _second: int | None = None
    _stamp = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        if second != self._second:  # the handler's lock is held: one thread at a time
            self._second = second
            self._stamp = time.strftime(self.default_time_format, self.converter(second))
        return self.default_msec_format % (self._stamp, record.msecs)
