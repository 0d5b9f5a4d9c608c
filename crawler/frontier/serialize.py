"""Requests as plain data: msgpack (msgspec) of `Request.to_dict()`, never pickle.

Callbacks and errbacks travel by name and are looked up on the spider again.
Attributes at their default value are left out (a queued request costs less
Redis memory), and meta keys that only make sense inside one process (download
slot, latency, proxy credentials' state) are dropped. A request subclass is
restored only if it is a `scrapy.Request` subclass from an allowed package, so
data in Redis never imports arbitrary code.
"""

from __future__ import annotations

from typing import Any

import msgspec
from scrapy import Request, Spider
from scrapy.utils.misc import load_object
from scrapy.utils.request import request_from_dict

from crawler.frontier.errors import FrontierError

# Meta keys set by Scrapy's downloader for one attempt; a fetch elsewhere sets them anew.
TRANSIENT_META = frozenset(
    {"download_slot", "download_latency", "_auth_proxy", "_slot_proxy", "cg_member"}
)
# Packages whose Request subclasses may be named in serialized requests.
ALLOWED_CLASS_PREFIXES = ("scrapy.", "scrapy_playwright.", "crawler.")
_DEFAULTS: dict[str, Any] = {
    "callback": None,
    "errback": None,
    "headers": {},
    "body": b"",
    "cookies": {},
    "meta": {},
    "encoding": "utf-8",
    "flags": [],
    "cb_kwargs": {},
    "dont_filter": False,
    "method": "GET",
    "priority": 0,
}
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder()
_UNNAMED = object()


def _method_name(spider: Spider | None, func: Any) -> Any:
    """The name of the spider method `func` is, found by its own name; `_UNNAMED` if not.

    `Request.to_dict` finds it by listing every member of the spider (`inspect.getmembers`,
    about 75 us a call, twice per request queued), which stays the way for any other case.
    """
    if func is None or isinstance(func, str):
        return func
    name = getattr(func, "__name__", None)
    bound = getattr(spider, name, None) if spider is not None and name else None
    own = getattr(func, "__func__", None)
    if own is not None and getattr(bound, "__func__", None) is own:
        return name
    return _UNNAMED


def _as_dict(request: Request, spider: Spider | None) -> dict[str, Any]:
    """`request.to_dict(spider=spider)`, without its search when the callbacks are found by name."""
    callback = _method_name(spider, request.callback)
    errback = _method_name(spider, request.errback)
    if callback is _UNNAMED or errback is _UNNAMED:
        return request.to_dict(spider=spider)
    data = {"url": request.url, "callback": callback, "errback": errback,
            "headers": dict(request.headers)}
    for attr in request.attributes:
        data.setdefault(attr, getattr(request, attr))
    if type(request) is not Request:
        data["_class"] = f"{type(request).__module__}.{type(request).__name__}"
    return data


def request_to_bytes(request: Request, spider: Spider | None = None) -> bytes:
    """Serialize `request`; raise `FrontierError` if it holds something not plain data."""
    data = _as_dict(request, spider)
    meta = data.get("meta")
    if meta and not TRANSIENT_META.isdisjoint(meta):
        data["meta"] = {k: v for k, v in meta.items() if k not in TRANSIENT_META}
    compact = {k: v for k, v in data.items() if k not in _DEFAULTS or _DEFAULTS[k] != v}
    try:
        return _encoder.encode(compact)
    except (TypeError, msgspec.EncodeError) as exc:
        raise FrontierError(
            f"Request {request.url} cannot be stored in the frontier: {exc}.",
            hint="Keep meta and cb_kwargs to plain data (str, numbers, lists, dicts, bytes).",
        ) from exc


def request_from_bytes(payload: bytes, spider: Spider | None = None) -> Request:
    """Rebuild a request serialized by `request_to_bytes`."""
    data = _decoder.decode(payload)
    cls_path = data.get("_class")
    if cls_path is not None:
        if not cls_path.startswith(ALLOWED_CLASS_PREFIXES):
            raise FrontierError(f"Request class {cls_path!r} is not allowed in the frontier.")
        if not issubclass(load_object(cls_path), Request):
            raise FrontierError(f"{cls_path!r} is not a Request class.")
    if spider is None:
        # Without the spider, callback names cannot be resolved (inspection only).
        data.pop("callback", None)
        data.pop("errback", None)
    return request_from_dict(data, spider=spider)


def member_of(fingerprint: bytes) -> bytes:
    """The frontier member of a request: the first 8 bytes of its fingerprint.

    64 bits keep the seen-set small; two different URLs share a member with a
    probability of about n²/2⁶⁵ (3·10⁻⁸ for a million URLs).
    """
    return fingerprint[:8]


def url_member(url: str) -> bytes:
    """The member of a plain GET of `url`, as Scrapy's default fingerprinter makes it."""
    from scrapy.utils.request import fingerprint

    return member_of(fingerprint(Request(url)))
