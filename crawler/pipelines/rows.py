"""Items to table rows: msgspec validation and the staging column order.

`to_row(item)` turns a `Page`, a `Link`, a `Redirect` or any other item into
a `Row` for `pages`, `links`, `redirects` or `items`, or raises `RowError` (the item then goes to
`dead_letters` with the reason). A row's `key` is its primary key within the
job, used to keep one row per key in a batch.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Annotated, Any, Literal, NamedTuple

import msgspec
from itemadapter import ItemAdapter

from crawler.items import (
    MAX_CANONICAL_LENGTH,
    MAX_ETAG_LENGTH,
    MAX_LAST_MODIFIED_LENGTH,
    Change,
    Discovery,
    Link,
    Page,
    Redirect,
)

Kind = Literal["page", "link", "redirect", "item"]
# A URL column's values start with one of these, checked after the conversion
# rather than with a `msgspec.Meta(pattern=...)`; and the row structs are not
# tracked by the garbage collector (they hold no containers). The two took the
# cost of validating a link from 3.2 to 2.0 us (bench/insert.py's links).
_SCHEMES = ("http://", "https://")
# The column's bound too (`pages.canonical_url`); the pages middleware stores none longer.
_Canonical = Annotated[str, msgspec.Meta(pattern=r"^https?://", max_length=MAX_CANONICAL_LENGTH)]
# Bounded by the column types: a binary COPY would wrap an int4 that is too big.
_Int4 = Annotated[int, msgspec.Meta(ge=0, le=2**31 - 1)]
_Int8 = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]


class PageRow(msgspec.Struct, frozen=True, gc=False):
    """Columns of `pages` after job_id, in staging order."""

    url: str
    final_url: str
    status: Annotated[int, msgspec.Meta(ge=0, le=999)]
    content_type: str | None
    title: str | None
    depth: _Int4
    fetched_at: Annotated[datetime, msgspec.Meta(tz=True)]
    size: _Int8
    content_hash: str | None
    elapsed_ms: _Int4 | None
    rendered: bool
    error: str | None
    canonical_url: _Canonical | None
    discovered: Discovery | None
    # The columns' bounds; the pages middleware stores none longer.
    etag: Annotated[str, msgspec.Meta(max_length=MAX_ETAG_LENGTH)] | None
    last_modified: Annotated[str, msgspec.Meta(max_length=MAX_LAST_MODIFIED_LENGTH)] | None
    change: Change | None


class LinkRow(msgspec.Struct, frozen=True, gc=False):
    """Columns of `links` after job_id, in staging order."""

    source_url: str
    target_url: str
    count: Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)]
    anchor_text: str
    nofollow: bool


class RedirectRow(msgspec.Struct, frozen=True, gc=False):
    """Columns of `redirects` after job_id, in staging order."""

    url: str
    target_url: str
    status: Annotated[int, msgspec.Meta(ge=0, le=999)] | None


class Row(NamedTuple):
    """A validated row: its table, primary key in the job, and column values."""

    kind: Kind
    key: Any
    values: tuple[Any, ...]


class RowError(ValueError):
    """An item that cannot become a row; `payload` is what goes to dead_letters."""

    def __init__(self, kind: Kind, message: str, payload: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.payload = payload


def payload_of(data: Any) -> str:
    """The dead-letter payload: JSON text, ASCII-escaped so that NUL bytes and
    lone surrogates survive as escapes."""
    if isinstance(data, Row):
        data = list(data.values)
    elif not isinstance(data, dict | list | tuple | str | int | float | bool | None):
        try:
            data = ItemAdapter(data).asdict()
        except TypeError:
            data = repr(data)
    return json.dumps(data, ensure_ascii=True, default=str)


def to_row(item: Any) -> Row:
    """Validate `item` and return its row; raise `RowError` if it cannot be stored."""
    if isinstance(item, Link):
        row = _convert("link", item, LinkRow, "source_url", "target_url")
        return Row("link", (row.source_url, row.target_url), msgspec.structs.astuple(row))
    if isinstance(item, Page):
        row = _convert("page", item, PageRow, "url")
        return Row("page", row.url, msgspec.structs.astuple(row))
    if isinstance(item, Redirect):
        row = _convert("redirect", item, RedirectRow, "url", "target_url")
        return Row("redirect", row.url, msgspec.structs.astuple(row))
    return _item_row(item)


def _convert(kind: Kind, item: Any, row_type: type, *url_fields: str) -> Any:
    """`item` as a `row_type`, its `url_fields` http(s) URLs, or `RowError`."""
    try:
        row = msgspec.convert(item, row_type, from_attributes=True)
    except msgspec.ValidationError as exc:
        raise RowError(kind, f"invalid {kind}: {exc}", payload_of(item)) from None
    for name in url_fields:
        if not getattr(row, name).startswith(_SCHEMES):
            raise RowError(kind, f"invalid {kind}: Expected `str` matching regex '^https?://'"
                                 f" - at `$.{name}`", payload_of(item))
    return row


def _item_row(item: Any) -> Row:
    try:
        adapter = ItemAdapter(item)
    except TypeError:
        raise RowError("item", f"not an item: {type(item).__name__}", payload_of(item)) from None
    data = adapter.asdict()
    try:
        # Sorted keys: the same data always gives the same text and fingerprint.
        text = msgspec.json.encode(data, enc_hook=str, order="sorted").decode()
    except (msgspec.EncodeError, TypeError, UnicodeError) as exc:
        raise RowError("item", f"item is not JSON: {exc}", payload_of(data)) from None
    item_type = type(item).__name__
    fingerprint = hashlib.sha256(f"{item_type}\n{text}".encode()).hexdigest()[:40]
    url = data.get("url")
    return Row("item", fingerprint, (fingerprint, item_type, url if isinstance(url, str) else None,
                                     text))
