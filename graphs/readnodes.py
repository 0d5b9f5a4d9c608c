"""The nodes of a graph read, merged from its two node streams by id (`graphs.read`).

The server sends the nodes ungrouped (`graphs.readsql`): every row of `urls`
(each URL of a job once, under its id; the same URL again for each other job)
and a row for each stored page, final URL, redirect end and canonical URL
(the same URL as often as those name it), each with its id and URL text. Each
stream becomes a `Part` of one entry per id, sorted by id (the urls' part can
be made while the other stream still arrives), and `merge_nodes` joins the two
parts: a node per id, the best status of its rows, the first way the crawl
found it (the least discovery code that is not 0) and its URL. Two rows with
one id and different URLs fail the read: the ids would not tell the nodes
apart. Most page URLs are link endpoints too, so most rows of the second
stream meet their node in the first, where their texts are compared.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.errors import URL_ID_COLLISION_HINT
from graphs.errors import GraphBuildFailed
from graphs.idindex import IdIndex

#: Stands for "no discovery code" while the least code of a node is taken.
_NO_CODE = np.int8(127)


@dataclass
class Nodes:
    """One entry per node, sorted by id."""

    ids: np.ndarray  # int64, ascending, unique
    status: np.ndarray  # int32, -1 when the URL was not fetched
    discovered: np.ndarray  # int8, an index of `graphs.read.DISCOVERY`
    urls: list[str]
    # The node of each entry of the `urls` part merged in; None: the same index.
    from_urls: np.ndarray | None = None


@dataclass
class Part:
    """Rows of one node stream, one entry per id, sorted by id."""

    ids: np.ndarray  # int64, ascending, unique
    texts: np.ndarray  # object: the URL of each id
    status: np.ndarray  # int32
    codes: np.ndarray  # int8: discovery codes, `_NO_CODE` for none

    @classmethod
    def of(cls, ids: np.ndarray, texts: list[str] | np.ndarray, status: np.ndarray | None = None,
           discovered: np.ndarray | None = None) -> Part:
        """The part of rows (`ids`, `texts`; `status` -1 and no code when not given)."""
        order = np.argsort(ids)
        ids = ids.astype(np.int64, copy=False)[order]
        urls = np.empty(len(texts), dtype=object)
        urls[:] = texts
        urls = urls[order]
        status = (np.full(len(ids), -1, dtype=np.int32) if status is None
                  else status.astype(np.int32, copy=False)[order])
        if discovered is None:
            codes = np.full(len(ids), _NO_CODE, dtype=np.int8)
        else:
            codes = discovered.astype(np.int8)[order]
            codes[codes == 0] = _NO_CODE
        repeat = np.flatnonzero(ids[1:] == ids[:-1]) + 1
        if not len(repeat):
            return cls(ids, urls, status, codes)
        _same_urls(urls[repeat], urls[repeat - 1])
        first = np.ones(len(ids), dtype=bool)
        first[repeat] = False
        starts = np.flatnonzero(first)
        return cls(ids[starts], urls[starts], np.maximum.reduceat(status, starts),
                   np.minimum.reduceat(codes, starts))


def _same_urls(urls: np.ndarray, others: np.ndarray) -> None:
    """Fail the read unless the URLs of rows that share ids are the same."""
    if len(urls) and (urls != others).any():
        raise GraphBuildFailed("Two URLs of the graph share one 64-bit id.",
                               hint=URL_ID_COLLISION_HINT)


def merge_nodes(urls: Part, ids: np.ndarray, status: np.ndarray, discovered: np.ndarray,
                texts: list[str]) -> Nodes:
    """The nodes of the `urls` rows and of the page, redirect and canonical rows
    (`ids` … `texts`, as they came: most meet their node in `urls`, where their
    texts are compared and their status and code taken into the node's)."""
    at = IdIndex(urls.ids).positions_or_misses(ids)
    met = at >= 0
    where = at[met]
    rows = np.empty(len(texts), dtype=object)
    rows[:] = texts
    _same_urls(urls.texts[where], rows[met])
    node_status, codes = urls.status.copy(), urls.codes.copy()
    row_status = status.astype(np.int32, copy=False)[met]
    row_codes = discovered.astype(np.int8)[met]
    row_codes[row_codes == 0] = _NO_CODE
    # A node that several rows meet takes the best of them (`ufunc.at`, slower, for those only).
    again = np.bincount(where, minlength=len(urls.ids))[where] > 1
    once = ~again
    node_status[where[once]] = np.maximum(node_status[where[once]], row_status[once])
    codes[where[once]] = np.minimum(codes[where[once]], row_codes[once])
    np.maximum.at(node_status, where[again], row_status[again])
    np.minimum.at(codes, where[again], row_codes[again])
    node_ids, node_texts, from_urls = urls.ids, urls.texts, None
    alone = ~met
    if alone.any():  # URLs that are no link endpoint: a start page, a redirect's end, …
        rest = Part.of(ids[alone], rows[alone], status[alone], discovered[alone])
        node_ids = np.concatenate([node_ids, rest.ids])
        order = np.argsort(node_ids)
        node_ids = node_ids[order]
        node_texts = np.concatenate([node_texts, rest.texts])[order]
        node_status = np.concatenate([node_status, rest.status])[order]
        codes = np.concatenate([codes, rest.codes])[order]
        from_urls = np.empty(len(order), dtype=np.int64)
        from_urls[order] = np.arange(len(order))
        from_urls = from_urls[:len(urls.ids)]
    codes[codes == _NO_CODE] = 0
    return Nodes(ids=node_ids, status=node_status, discovered=codes, urls=node_texts.tolist(),
                 from_urls=from_urls)
