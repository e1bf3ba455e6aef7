"""Candidate pairs from the keypoints themselves: pictures that share many near-identical
ORB descriptors, found by hashing, without comparing every two pictures.

An engine's vectors describe a whole picture, so a screenshot (the photo inside borders and a
title bar) or a strong crop can lie far from its original among them. Their keypoints do not
move: most of a copy's strongest descriptors are within a few bits of its original's. Each
picture's ``STRONGEST`` descriptors are hashed by ``TABLES`` sets of ``BITS`` of their 256 bits
(locality-sensitive hashing for the Hamming distance); two pictures whose descriptors land in
one bucket at least ``MIN_SHARED`` times are a candidate pair. Buckets that many pictures
share (plain edges, sky) say nothing and are skipped.

At a million pictures the hashed descriptors alone would fill ~10 GB, so they are never held
together: pictures' keys are computed ``CHUNK`` pictures at a time (their keypoints read and
dropped), written to a scratch file per table, and each table is sorted on its own; the pairs
its buckets yield go to scratch files by pair, each counted on its own. Memory stays near
``8 x STRONGEST`` bytes a picture (1.2 GB at a million), whatever the library holds.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from itertools import combinations
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

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
_WEIGHTS = 1 << np.arange(BITS, dtype=np.int64)
#: No key (a picture with fewer descriptors, or a repeat): above every real key, so it sorts last.
EMPTY = 0xFFFFFFFF
#: Pictures whose keypoints are held at once; sorted entries handled at once; pair files.
CHUNK = 512
SLICE = 1 << 22
PARTS = 16
#: The sorting folder of a run, and the age past which one is a killed run's.
PREFIX = "image-search-keypoints-"
KILLED_AFTER_S = 24 * 3600


def picture_keys(features: Features) -> np.ndarray:
    """The (TABLES, STRONGEST) bucket keys of one picture; a picture counts once per bucket."""
    keys = np.full((TABLES, STRONGEST), EMPTY, dtype=np.uint32)
    bits = np.unpackbits(features.descriptors[:STRONGEST], axis=1)
    for table in range(TABLES):
        found = np.unique(bits[:, _POSITIONS[table]].astype(np.int64) @ _WEIGHTS)
        keys[table, : len(found)] = found
    return keys


def keypoint_pairs(features: Sequence[Features | None], rows: Sequence[int] | None = None) -> np.ndarray:
    """Pairs (i < j, rows of ``features``; ``rows``: only these take part) that share at least
    ``MIN_SHARED`` hashed descriptors, as an (m, 2) int64 array."""
    chosen = range(len(features)) if rows is None else rows
    return streamed_pairs(lambda chunk: [features[row] for row in chunk], chosen)


def streamed_pairs(features_of: Callable[[list[int]], Sequence[Features | None]], rows: Sequence[int],
                   scratch: Path | None = None) -> np.ndarray:
    """:func:`keypoint_pairs` over ``rows``, whose features ``features_of(some rows)`` gives a chunk
    at a time; the sorting files go under ``scratch`` (``None``: the system's temporary folder)."""
    if scratch is not None:
        scratch.mkdir(parents=True, exist_ok=True)
        _sweep_killed(scratch)
    with tempfile.TemporaryDirectory(prefix=PREFIX, dir=scratch) as folder:
        scratch = Path(folder)
        owners = _write_keys(features_of, list(rows), scratch)
        if len(owners) < 2:
            return np.zeros((0, 2), dtype=np.int64)
        parts = [open(scratch / f"pairs-{part}.i64", "wb") for part in range(PARTS)]  # noqa: SIM115 - closed below
        try:
            for table in range(TABLES):
                _table_pairs(scratch / f"table-{table}.u32", len(owners), parts)
        finally:
            for handle in parts:
                handle.close()
        found = []
        for part in range(PARTS):
            codes, times = np.unique(np.fromfile(scratch / f"pairs-{part}.i64", dtype=np.int64), return_counts=True)
            found.append(codes[times >= MIN_SHARED])
    codes = np.concatenate(found)
    a, b = owners[codes // len(owners)], owners[codes % len(owners)]
    pairs = np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1).reshape(-1, 2)
    return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]


def _sweep_killed(scratch: Path) -> None:
    """Remove the sorting files a killed run left (a run removes its own when it ends)."""
    for left in scratch.glob(PREFIX + "*"):
        try:
            if left.is_dir() and not left.is_symlink() and time.time() - left.stat().st_mtime > KILLED_AFTER_S:
                shutil.rmtree(left, ignore_errors=True)
        except OSError:
            continue


def _write_keys(features_of: Callable[[list[int]], Sequence[Features | None]], rows: list[int],
                scratch: Path) -> np.ndarray:
    """Each picture's keys, a file per table; returns the rows of the pictures written, in order."""
    owners: list[int] = []
    tables = [open(scratch / f"table-{table}.u32", "wb") for table in range(TABLES)]  # noqa: SIM115 - closed below
    try:
        for start in range(0, len(rows), CHUNK):
            chunk = rows[start : start + CHUNK]
            kept = [(row, found) for row, found in zip(chunk, features_of(chunk), strict=True)
                    if found is not None and len(found.descriptors)]
            if not kept:
                continue
            keys = np.stack([picture_keys(found) for _, found in kept])
            for table, handle in enumerate(tables):
                np.ascontiguousarray(keys[:, table]).tofile(handle)
            owners.extend(row for row, _ in kept)
    finally:
        for handle in tables:
            handle.close()
    return np.array(owners, dtype=np.int64)


def _table_pairs(path: Path, pictures: int, parts: Sequence[BinaryIO]) -> None:
    """Write the picture pairs of each shared bucket of one table (as ``a * pictures + b``, ``a < b``
    positions in the written order) to the pair files, by pair."""
    # key << 32 | picture: sorting groups a bucket's pictures, in order; no key sorts last.
    entries = np.empty(pictures * STRONGEST, dtype=np.uint64)
    with open(path, "rb") as handle:  # a slice at a time: the file is never held beside the entries
        for low in range(0, len(entries), SLICE):
            entries[low : low + SLICE] = np.fromfile(handle, dtype=np.uint32, count=min(SLICE, len(entries) - low))
    path.unlink()
    entries <<= np.uint64(32)
    entries.reshape(pictures, STRONGEST)[:] |= np.arange(pictures, dtype=np.uint64)[:, None]
    entries.sort()
    entries = entries[: int(np.searchsorted(entries, np.uint64(EMPTY << 32)))]
    low = 0
    while low < len(entries):  # a slice at a time, never splitting a bucket: temporaries stay small
        high = min(low + SLICE, len(entries))
        if high < len(entries):
            last = int(entries[high - 1]) >> 32
            high = int(np.searchsorted(entries, np.uint64((last + 1) << 32)))
        part_of = entries[low:high]
        key = part_of >> np.uint64(32)
        who = (part_of & np.uint64(0xFFFFFFFF)).astype(np.int64)
        starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
        sizes = np.diff(np.r_[starts, len(key)])
        for size in range(2, MAX_BUCKET + 1):
            at = starts[sizes == size]
            if not len(at):
                continue
            members = who[at[:, None] + np.arange(size)]
            for i, j in combinations(range(size), 2):
                codes = members[:, i] * pictures + members[:, j]
                where = codes % PARTS  # a pair always lands in the same file: each file is counted alone
                for part in range(PARTS):
                    codes[where == part].tofile(parts[part])
        low = high
