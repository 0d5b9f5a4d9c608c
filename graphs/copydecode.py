"""Decoding the graph read's COPY streams into numpy arrays (`graphs.read`).

The streams are packed server-side (`graphs.readsql`): a few rows of bytea
columns that are big-endian arrays, decoded by `np.frombuffer`, and URL text
joined by newlines; the rows fallback decodes COPY text rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from graphs.errors import GraphBuildFailed

_HEADER = b"PGCOPY\n\xff\r\n\x00"
_TEXT_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}


def binary_rows(buf: bytes | bytearray) -> list[list[memoryview | None]]:
    """The rows of a binary COPY stream (few rows here, so a Python loop is fine);
    the values are views into `buf`, not copies."""
    view = memoryview(buf)
    if len(view) < 19 or bytes(view[:11]) != _HEADER:
        raise GraphBuildFailed("The COPY stream has no binary COPY header.")
    pos = 19 + int.from_bytes(view[15:19], "big")
    rows = []
    while True:
        nfields = int.from_bytes(view[pos:pos + 2], "big", signed=True)
        pos += 2
        if nfields == -1:
            return rows
        row: list[memoryview | None] = []
        for _ in range(nfields):
            size = int.from_bytes(view[pos:pos + 4], "big", signed=True)
            pos += 4
            if size < 0:
                row.append(None)
            else:
                row.append(view[pos:pos + size])
                pos += size
        rows.append(row)


def column(rows: list[list[memoryview | None]], index: int, dtype: str) -> np.ndarray:
    """One column of every row as one native-order array (a copy, never a view of the stream)."""
    parts = [np.frombuffer(row[index], dtype=dtype) for row in rows if row[index] is not None]
    # One pass: each part is copied into its place and put in native byte order at once.
    out = np.empty(sum(map(len, parts)), dtype=np.dtype(dtype).newbyteorder("="))
    start = 0
    for part in parts:
        out[start:start + len(part)] = part
        start += len(part)
    return out


def decode_edges(buf: bytes | bytearray) -> dict[str, np.ndarray]:
    """The links of `outlinks` rows: per row its source id and its number of links,
    per link its target id, count and nofollow flag (rows one after the other)."""
    rows = binary_rows(buf)
    return {
        "row_source": column(rows, 0, ">i8"),
        "row_links": column(rows, 1, ">i4").astype(np.int64),
        "target": column(rows, 2, ">i8"),
        "count": column(rows, 3, ">i4"),
        "nofollow": column(rows, 4, "u1").view(bool),  # set_byte wrote 0 or 1
    }


def decode_pairs(buf: bytes | bytearray) -> dict[str, np.ndarray]:
    """(source, target) hash pairs: the redirect hops, the canonicals."""
    rows = binary_rows(buf)
    return {"source": column(rows, 0, ">i8"), "target": column(rows, 1, ">i8")}


def decode_packed(buf: bytes | bytearray, dtypes: Sequence[str]
                  ) -> tuple[list[np.ndarray], list[str]] | None:
    """Packed rows of array columns (`dtypes`, big-endian) and a last column of URLs
    joined by newlines; None when a URL contains a newline (read those as rows)."""
    rows = binary_rows(buf)
    arrays = [column(rows, i, dtype) for i, dtype in enumerate(dtypes)]
    text = len(dtypes)
    urls: list[str] = []
    for row in rows:
        if row[text] is not None:
            urls.extend(str(row[text], "utf-8").split("\n"))
    # Splitting never loses a URL; a URL with a newline in it adds one part.
    if any(len(a) != len(urls) for a in arrays):
        return None
    return arrays, urls


def unescape(value: str) -> str:
    if "\\" not in value:
        return value
    out, i = [], 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value):
            out.append(_TEXT_ESCAPES.get(value[i + 1], value[i + 1]))
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def decode_text_rows(text: str, dtypes: Sequence[str]) -> tuple[list[np.ndarray], list[str]]:
    """Text COPY rows of numeric columns (`dtypes`) and a last column of URLs."""
    width = len(dtypes) + 1
    if not text:
        return [np.empty(0, dtype) for dtype in dtypes], []
    # Rows end with "\n" and fields are separated by "\t" (both escaped inside
    # values), so one split gives the fields of every row one after the other.
    flat = text[:-1].replace("\n", "\t").split("\t")
    if len(flat) % width:
        raise GraphBuildFailed("A nodes COPY stream has rows of an unexpected shape.")
    arrays = [np.array(flat[i::width]).astype(dtype) for i, dtype in enumerate(dtypes)]
    urls = flat[len(dtypes)::width]
    if "\\" in text:
        urls = [unescape(u) for u in urls]
    return arrays, urls
