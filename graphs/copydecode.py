"""Decoding the graph read's COPY streams into numpy arrays (`graphs.read`).

The streams are packed server-side (`graphs.readsql`): a few rows of bytea
columns that are big-endian arrays, decoded by `np.frombuffer`, and URL text
joined by newlines; the rows fallback decodes COPY text rows.
"""

from __future__ import annotations

import numpy as np

from graphs.errors import GraphBuildFailed

_HEADER = b"PGCOPY\n\xff\r\n\x00"
_TEXT_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}


def binary_rows(buf: bytes | bytearray) -> list[list[bytes | None]]:
    """The rows of a binary COPY stream (few rows here, so a Python loop is fine)."""
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
        row: list[bytes | None] = []
        for _ in range(nfields):
            size = int.from_bytes(view[pos:pos + 4], "big", signed=True)
            pos += 4
            if size < 0:
                row.append(None)
            else:
                row.append(bytes(view[pos:pos + size]))
                pos += size
        rows.append(row)


def column(rows: list[list[bytes | None]], index: int, dtype: str) -> np.ndarray:
    data = b"".join(row[index] or b"" for row in rows)
    return np.frombuffer(data, dtype=dtype)


def decode_edges(buf: bytes | bytearray) -> dict[str, np.ndarray]:
    """The links of `outlinks` rows: a source id and a link count per row, then the
    rows' packed targets, counts and nofollow flags one after the other."""
    rows = binary_rows(buf)
    per_source = column(rows, 1, ">i4").astype(np.int64)
    return {
        "source": np.repeat(column(rows, 0, ">i8").astype(np.int64), per_source),
        "target": column(rows, 2, ">i8").astype(np.int64),
        "count": column(rows, 3, ">i4").astype(np.int32),
        "nofollow": column(rows, 4, "u1").astype(bool),
    }


def decode_pairs(buf: bytes | bytearray) -> dict[str, np.ndarray]:
    """(source, target) hash pairs: the redirect hops, the canonicals."""
    rows = binary_rows(buf)
    return {
        "source": column(rows, 0, ">i8").astype(np.int64),
        "target": column(rows, 1, ">i8").astype(np.int64),
    }


Nodes = tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]  # hash, status, discovered, url


def decode_packed_nodes(buf: bytes | bytearray) -> Nodes | None:
    rows = binary_rows(buf)
    hashes = column(rows, 0, ">i8").astype(np.int64)
    status = column(rows, 1, ">i4").astype(np.int32)
    discovered = column(rows, 2, ">i2").astype(np.int8)
    urls: list[str] = []
    for row in rows:
        urls.extend((row[3] or b"").decode("utf-8").split("\n"))
    # Splitting never loses a URL; a URL with a newline in it adds one part.
    if len(urls) != len(hashes):
        return None  # a URL with a newline in it
    return hashes, status, discovered, urls


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


def decode_nodes(text: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    if not text:
        return np.empty(0, np.int64), np.empty(0, np.int32), []
    # Rows end with "\n" and fields are separated by "\t" (both escaped inside
    # values), so one split gives hash, status, url, hash, status, url, ...
    flat = text[:-1].replace("\n", "\t").split("\t")
    if len(flat) % 3:
        raise GraphBuildFailed("The nodes COPY stream has rows of an unexpected shape.")
    hashes = np.array(flat[0::3]).astype(np.int64)
    status = np.array(flat[1::3]).astype(np.int32)
    urls = flat[2::3]
    if "\\" in text:
        urls = [unescape(u) for u in urls]
    return hashes, status, urls
