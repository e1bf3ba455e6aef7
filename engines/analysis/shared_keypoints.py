"""Candidate pairs from the keypoints themselves: pictures that share many near-identical
ORB descriptors, found by hashing, without comparing every two pictures.

An engine's vectors describe a whole picture, so a screenshot (the photo inside borders and a
title bar) or a strong crop can lie far from its original among them. Their keypoints do not
move: most of a copy's strongest descriptors are within a few bits of its original's. Each
picture's ``STRONGEST`` descriptors are hashed by ``TABLES`` sets of ``BITS`` of their 256 bits
(locality-sensitive hashing for the Hamming distance); two pictures whose descriptors land in
one bucket at least ``MIN_SHARED`` times are a candidate pair. Buckets that many pictures
share (plain edges, sky) say nothing and are skipped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from itertools import combinations
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .verify import Features

#: Measured on benchmarks/verified_duplicates.py's set (540 pictures, 60 photos with 7 edits
#: each): the pairs found hold 93% of crops, all rotations, 78% of copies resized to a quarter,
#: all re-encodes, 98% of captioned copies and 98% of screenshots; among the 120 photos without
#: copies, 0.13 pairs per picture; 0.4 s for the 540.
STRONGEST = 150
TABLES = 8
BITS = 28
#: A bucket holding more pictures than this is a common pattern, not a shared scene.
MAX_BUCKET = 12
MIN_SHARED = 4
#: The bit positions of each table: fixed, so that a gallery gets the same pairs every run.
_POSITIONS = np.random.default_rng(20_240_611).permuted(np.tile(np.arange(256), (TABLES, 1)), axis=1)[:, :BITS]


def keypoint_pairs(features: Sequence[Features | None], rows: Sequence[int] | None = None) -> np.ndarray:
    """Pairs (i < j, rows of ``features``; ``rows``: only these take part) that share at least
    ``MIN_SHARED`` hashed descriptors, as an (m, 2) int64 array."""
    chosen = [row for row in (range(len(features)) if rows is None else rows)
              if features[row] is not None and len(features[row].descriptors)]  # type: ignore[union-attr]
    if len(chosen) < 2:
        return np.zeros((0, 2), dtype=np.int64)
    owners, keys = [], []
    weights = (1 << np.arange(BITS, dtype=np.int64))
    for row in chosen:
        bits = np.unpackbits(features[row].descriptors[:STRONGEST], axis=1)  # type: ignore[union-attr]
        for table in range(TABLES):
            key = bits[:, _POSITIONS[table]].astype(np.int64) @ weights + (table << BITS)
            keys.append(np.unique(key))  # a picture counts once per bucket
            owners.append(np.full(len(keys[-1]), row, dtype=np.int64))
    key_all, owner_all = np.concatenate(keys), np.concatenate(owners)
    order = np.argsort(key_all, kind="stable")
    key_all, owner_all = key_all[order], owner_all[order]
    starts = np.flatnonzero(np.r_[True, key_all[1:] != key_all[:-1]])
    sizes = np.diff(np.r_[starts, len(key_all)])
    shared: Counter[tuple[int, int]] = Counter()
    for start, size in zip(starts[(sizes >= 2) & (sizes <= MAX_BUCKET)].tolist(),
                           sizes[(sizes >= 2) & (sizes <= MAX_BUCKET)].tolist(), strict=True):
        shared.update(combinations(sorted(owner_all[start : start + size].tolist()), 2))
    pairs = [pair for pair, times in shared.items() if times >= MIN_SHARED]
    return np.array(sorted(pairs), dtype=np.int64).reshape(-1, 2)
