"""Positions of URL ids among sorted node ids (`graphs.idindex`), against `np.searchsorted`."""

from __future__ import annotations

import numpy as np
import pytest

from graphs import idindex
from graphs.idindex import IdIndex

LOWEST, HIGHEST = np.iinfo(np.int64).min, np.iinfo(np.int64).max


def _ids(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.unique(np.concatenate([
        rng.integers(LOWEST, HIGHEST, n, dtype=np.int64, endpoint=True),
        [LOWEST, HIGHEST, 0, -1, 1]]))


@pytest.mark.parametrize("n", [1, 2, 5, 1000, 200_000])
def test_every_key_is_found_where_a_binary_search_finds_it(n):
    rng = np.random.default_rng(n)
    ids = _ids(rng, n)
    keys = rng.choice(ids, size=3 * len(ids))
    assert np.array_equal(IdIndex(ids).positions(keys), np.searchsorted(ids, keys))


def test_ids_crowded_into_one_bucket_are_walked_through():
    ids = np.arange(-500, 500, dtype=np.int64) * 3  # not spread: a few buckets hold them all
    keys = ids[::-1].copy()
    assert np.array_equal(IdIndex(ids).positions(keys), np.searchsorted(ids, keys))


def test_keys_are_looked_up_in_chunks(monkeypatch):
    monkeypatch.setattr(idindex, "_CHUNK", 7)
    rng = np.random.default_rng(3)
    ids = _ids(rng, 100)
    keys = rng.choice(ids, size=50)
    assert np.array_equal(IdIndex(ids).positions(keys), np.searchsorted(ids, keys))
    assert IdIndex(ids).positions(np.append(keys, 12345 if 12345 not in ids else 12346)) is None


@pytest.mark.parametrize("missing", [LOWEST, HIGHEST, 12345, -12345])
def test_a_key_that_is_no_id_is_not_found(missing):
    ids = np.array(sorted({-(2**62), -7, 3, 2**61, 2**62} - {missing}), dtype=np.int64)
    assert IdIndex(ids).positions(np.array([3, missing], dtype=np.int64)) is None
    assert IdIndex(ids).positions(np.array([3, 2**62], dtype=np.int64)).tolist() == [2, 4]


def test_no_ids_and_no_keys():
    assert IdIndex(np.empty(0, np.int64)).positions(np.empty(0, np.int64)).tolist() == []
    assert IdIndex(np.empty(0, np.int64)).positions(np.array([1], np.int64)) is None
    assert IdIndex(np.array([5], np.int64)).positions(np.empty(0, np.int64)).tolist() == []
