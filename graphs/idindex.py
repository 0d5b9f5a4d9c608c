"""Where many 64-bit URL ids sit among the sorted ids of a graph's nodes.

The graph read (`graphs.read`) turns each link's target id into the index of
its node: some ten million keys among a million ids. `np.searchsorted` takes
some twenty steps of a binary search per key, each a cache miss once the ids
outgrow the cache. The ids are hashes (`hashtextextended`), spread evenly over
the 64-bit range, so their top bits say almost exactly where an id lies: a
table of where each bucket of ids starts (four to eight buckets per node) puts
a key at its place or a step or two before it. Keys are looked up a chunk at a
time, so that the temporaries stay small.
"""

from __future__ import annotations

import numpy as np

#: Keys looked up at a time.
_CHUNK = 1 << 20
#: Buckets: the next power of two above the number of ids, times 4 …
_SPARE_BITS = 2
#: … but no more than this many bits (the table is 4 bytes a bucket).
_MAX_BITS = 25
_LAST = np.iinfo(np.int64).max


class IdIndex:
    """The positions of ids in `sorted_ids` (ascending, int64, no repeats needed)."""

    def __init__(self, sorted_ids: np.ndarray) -> None:
        ids = np.ascontiguousarray(sorted_ids, dtype=np.int64)
        self._size = len(ids)
        bits = min(_MAX_BITS, max(1, self._size.bit_length()) + _SPARE_BITS)
        self._shift = 64 - bits
        self._offset = 1 << (bits - 1)
        # An id's bucket is its top `bits` bits, shifted so that order is kept:
        # the arithmetic shift of a signed id lies in [-offset, offset).
        counts = np.bincount((ids >> self._shift) + self._offset, minlength=1 << bits)
        self._starts = np.empty(1 << bits, dtype=np.int32 if self._size < 2**31 else np.int64)
        self._starts[0] = 0
        np.cumsum(counts[:-1], out=self._starts[1:])
        # A last id that no key is less than ends every walk forward.
        self._padded = np.append(ids, _LAST)

    def positions(self, keys: np.ndarray, out: np.ndarray | None = None) -> np.ndarray | None:
        """The index of each key in the sorted ids (into `out` if given, an int64
        array of their length); None when one key is not among them.

        numpy releases the GIL for most of the work: threads may look up parts of
        the keys at once, each into its part of one `out`."""
        keys = np.asarray(keys, dtype=np.int64)
        if out is None:
            out = np.empty(len(keys), dtype=np.int64)
        for start in range(0, len(keys), _CHUNK):
            part = self._chunk(keys[start:start + _CHUNK])
            if part is None:
                return None
            out[start:start + len(part)] = part
        return out

    def positions_or_misses(self, keys: np.ndarray) -> np.ndarray:
        """The index of each key in the sorted ids, -1 for a key not among them."""
        keys = np.asarray(keys, dtype=np.int64)
        out = np.empty(len(keys), dtype=np.int64)
        for start in range(0, len(keys), _CHUNK):
            part = keys[start:start + _CHUNK]
            at = self._walk(part)
            at[(self._padded[at] != part) | (at >= self._size)] = -1  # nor is the padding
            out[start:start + len(part)] = at
        return out

    def _chunk(self, keys: np.ndarray) -> np.ndarray | None:
        at = self._walk(keys)
        # `at` is where the key is or would be; the padding is no id.
        if not np.array_equal(self._padded[at], keys) or (len(at) and at.max() >= self._size):
            return None
        return at

    def _walk(self, keys: np.ndarray) -> np.ndarray:
        """Where each key is or would be among the ids (`np.searchsorted`'s left side)."""
        bucket = keys >> self._shift
        bucket += self._offset
        # The first id of the key's bucket: every id before it is less than the key.
        at = self._starts[bucket].astype(np.int64)
        del bucket
        value = self._padded[at]
        behind = np.flatnonzero(value < keys)
        while len(behind):  # a few rounds: buckets hold a fraction of an id on average
            at[behind] += 1
            value[behind] = self._padded[at[behind]]
            behind = behind[value[behind] < keys[behind]]
        return at
