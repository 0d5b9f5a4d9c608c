"""The one exception handler: every error becomes the one JSON error shape.

`{"error": {"code", "message", "hint", "field", "request_id"}}`, with the
status code the error carries (`jobapi.errors`), never a trace, SQL or secret.
"""

from __future__ import annotations

import functools
import logging
import re
from http import HTTPStatus
from typing import get_args

import msgspec
import psycopg
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from psycopg_pool import PoolTimeout
from redis.exceptions import RedisError

from core.errors import CrawlgraphError
from jobapi.errors import ApiError, field_from_message
from jobapi.requestcontext import request_id_var
from jobapi.schemas import ErrorDetail, ErrorResponse

MAX_BODY_BYTES = 4 * 1024 * 1024

log = logging.getLogger("jobapi.app")


def _code(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "error"


def handle_error(request: Request, exc: Exception) -> Response[ErrorResponse]:
    """Map every exception to the one JSON error shape; never a trace, SQL or secret."""
    headers: dict[str, str] = {}
    hint = field = None
    if isinstance(exc, ApiError):
        status, code, message, hint, field = (exc.status_code, exc.code, exc.message, exc.hint,
                                              exc.field)
        headers.update(exc.headers)
    elif isinstance(exc, CrawlgraphError) and exc.status_code < 500:
        status, code, message, hint = exc.status_code, _code(exc.status_code), exc.message, \
            exc.hint
    elif isinstance(exc, ValidationException):
        status, code, message, hint, field = _validation(exc)
    elif isinstance(exc, HTTPException) and exc.status_code < 500:
        status, code, message = exc.status_code, _code(exc.status_code), str(exc.detail)
        headers.update(exc.headers or {})
        if status == 413:
            message = f"The request body is larger than {MAX_BODY_BYTES} bytes."
    elif isinstance(exc, psycopg.DataError):
        # A value PostgreSQL cannot take (a NUL character, a number out of range):
        # the request's fault, though a field's own check should have caught it.
        status, code = 422, "validation_error"
        message = "A value in the request cannot be stored or compared by the database."
        hint = "Remove control characters (such as NUL) and out-of-range numbers."
        log.warning("database refused a value: %s", type(exc).__name__)
    elif isinstance(exc, UnicodeDecodeError | RecursionError) and _decoding_body(exc):
        # Litestar's JSON decoding lets these through: the body's fault, not ours.
        status, code = 400, "bad_request"
        message = ("The request body is not valid UTF-8." if isinstance(exc, UnicodeDecodeError)
                   else "The request body is nested too deeply.")
        hint = "Send a UTF-8 JSON document of the documented shape."
    elif isinstance(exc, psycopg.OperationalError | PoolTimeout | RedisError):
        status, code = 503, "service_unavailable"
        message = "A database the API needs cannot be reached."
        hint = "Try again shortly; GET /health shows which service is down."
        log.error("service unavailable: %s", type(exc).__name__)
    else:
        status, code = 500, "internal_error"
        message = "An unexpected error occurred."
        hint = "Report it with the request id."
        log.error("unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path,
                  exc_info=exc)
    rid = request.scope.get("state", {}).get("request_id") or request_id_var.get()
    body = ErrorResponse(error=ErrorDetail(code=code, message=message, hint=hint, field=field,
                                           request_id=rid))
    return Response(body, status_code=status, headers=headers)


def _decoding_body(exc: BaseException) -> bool:
    """True if `exc` was raised while Litestar decoded the request body."""
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_name == "decode_json" and \
                "litestar" in tb.tb_frame.f_code.co_filename:
            return True
        tb = tb.tb_next
    return False


# msgspec says "Expected `str` matching regex '<pattern>'": the person who sent the
# field is told first what the pattern stands for, from the description of the
# type that holds it (its OpenAPI description too).
_REGEX = re.compile(r"^Expected `str` matching regex ('.*')$", re.DOTALL)


@functools.cache
def _pattern_meanings() -> dict[str, str]:
    from crawler.spiders import args
    from jobapi import schemas
    from jobapi.services import schedules_models, webhooks_models

    meanings = {}
    for kind in (args.Url, args.Pattern, args.JobRef, schemas.Domain, schemas.Tag,
                 schemas.SpiderName, schemas.Username, schemas.NewPassword,
                 schedules_models.Name, schedules_models.Cron, schedules_models.TimeZone,
                 webhooks_models.Url):
        for meta in get_args(kind)[1:]:
            if isinstance(meta, msgspec.Meta) and meta.pattern and meta.description:
                meanings[repr(meta.pattern)] = meta.description
    return meanings


def _explained(text: str) -> str:
    """A validation message, with a pattern said in words when its type describes it."""
    found = _REGEX.match(text)
    meaning = _pattern_meanings().get(found[1]) if found else None
    if meaning is None:
        return text
    return f"expected {meaning[0].lower()}{meaning[1:].rstrip('.')} (matching regex {found[1]})"


def _validation(exc: ValidationException) -> tuple[int, str, str, str | None, str | None]:
    extra = exc.extra if isinstance(exc.extra, list) else []
    first = extra[0] if extra and isinstance(extra[0], dict) else {}
    text = _explained(str(first.get("message") or "The request is not valid."))
    key = first.get("key")
    field = field_from_message(text) if key in (None, "data") else str(key)
    message = f"{field}: {text}" if field else text
    return 422, "validation_error", message, "Fix the field and send it again.", field
