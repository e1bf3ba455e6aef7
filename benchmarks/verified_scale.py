"""Memory of a verified duplicates run as the library grows: keypoints streamed, not held.

A verified run reads each picture's ORB keypoints (1,000 a picture, ~40 KB) twice: to hash
their strongest descriptors into shared-keypoint candidates, and to check candidate pairs by
geometry. This script runs exactly those two steps (``PairVerifier.candidates`` and the
check) over N synthetic pictures whose keypoints lie in the product's own cache format under
a scratch folder (1% are edited copies of another: the same points moved and scaled, a few
bits of their descriptors flipped), each size in a fresh interpreter, and prints its peak
memory (VmHWM) and time, cold (the keypoints computed and stored) and warm (read back).

Baseline, measured in the same run: the peak of a fresh interpreter that holds every
picture's keypoints, as the verifier did before it streamed them. No images are decoded: the
pictures' keypoints stand in for them (``compute_features`` is replaced), so the figures are
those of the keypoint steps alone.

    python benchmarks/verified_scale.py --pictures 25000,50000,100000
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

COPY_EVERY = 100  # 1% of the pictures are edited copies of the picture before them


def peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def synthetic(index: int):  # type: ignore[no-untyped-def]
    """Picture ``index``'s keypoints: its own, or (every COPY_EVERY-th) an edited copy of the one before."""
    from engines.analysis.verify import KEYPOINTS, Features

    copy = index % COPY_EVERY == COPY_EVERY - 1
    rng = np.random.default_rng(index - 1 if copy else index)
    xy = rng.random((KEYPOINTS, 2), dtype=np.float32) * np.float32([1.0, 0.75])
    descriptors = rng.integers(0, 256, (KEYPOINTS, 32), dtype=np.uint8)
    if copy:
        edit = np.random.default_rng(10_000_000 + index)
        keep = np.sort(edit.permutation(KEYPOINTS)[: int(KEYPOINTS * 0.8)])  # some points lost to the edit
        xy = (xy[keep] * np.float32(0.9) + np.float32(0.02)).astype(np.float32)
        descriptors = descriptors[keep].copy()
        flips = edit.random(descriptors.shape) < 0.02
        descriptors[flips] ^= np.uint8(1)
    return Features(xy, descriptors, (1.0, 0.75))


def run(pictures: int, cache: Path, mode: str) -> dict[str, object]:
    """One measurement in this interpreter: ``held`` (every picture's keypoints in memory) or
    ``streamed`` (candidates and their check, as a verified run does)."""
    from engines.analysis import local_features
    from engines.analysis.local_features import LocalFeatures
    from engines.analysis.verify import PairVerifier
    from engines.galleries.items import GalleryItem

    def by_name(item: GalleryItem):  # type: ignore[no-untyped-def]
        return synthetic(int(Path(str(item.path)).stem))

    local_features.compute_features = by_name  # type: ignore[assignment]  # keypoints without images
    items = [GalleryItem(str(n), f"/no-such-folder/{n}.jpg") for n in range(pictures)]
    hashes = [hashlib.sha256(str(n).encode()).hexdigest() for n in range(pictures)]
    started = time.perf_counter()
    store = LocalFeatures(cache)
    if mode == "held":
        held = [store.of(item, digest) for item, digest in zip(items, hashes, strict=True)]
        return {"mode": mode, "pictures": pictures, "held": len(held), "seconds": round(time.perf_counter() - started, 1),
                "peak_mb": round(peak_mb())}
    verifier = PairVerifier(items, store, hashes, workers=2)
    candidates = verifier.candidates(range(pictures))
    found_s = time.perf_counter() - started
    verified = verifier([(int(a), int(b)) for a, b in candidates.tolist()])
    planted = {(n - 1, n) for n in range(COPY_EVERY - 1, pictures, COPY_EVERY)}
    return {"mode": mode, "pictures": pictures, "candidates": len(candidates), "verified": len(verified),
            "planted_found": f"{len(planted & set(verified))}/{len(planted)}",
            "false": len(set(verified) - planted), "candidates_s": round(found_s, 1),
            "seconds": round(time.perf_counter() - started, 1), "peak_mb": round(peak_mb())}


def measured(pictures: int, cache: Path, mode: str) -> dict[str, object]:
    """``run`` in a fresh interpreter (its own peak memory)."""
    done = subprocess.run([sys.executable, __file__, "--one", str(pictures), "--cache", str(cache), "--mode", mode],
                          check=True, capture_output=True, text=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pictures", default="25000,50000,100000", help="comma-separated library sizes")
    parser.add_argument("--cache", type=Path, help="scratch cache folder (default: a temporary one, removed)")
    parser.add_argument("--held-max", type=int, default=300_000,
                        help="past this size the baseline is not run (it holds ~40 KB a picture: 40 GB at 1M)")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="streamed", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(run(args.one, args.cache, args.mode)))
        return
    scratch = args.cache or Path(tempfile.mkdtemp(prefix="verified-scale-"))
    try:
        rows = []
        for pictures in (int(n) for n in args.pictures.split(",")):
            cache = scratch / str(pictures)
            cold = measured(pictures, cache, "streamed")
            warm = measured(pictures, cache, "streamed")
            held = measured(pictures, cache, "held") if pictures <= args.held_max else {"peak_mb": float("nan")}
            rows.append((pictures, cold, warm, held))
            print(json.dumps({"cold": cold, "warm": warm, "held": held}), flush=True)
        print("\n| pictures | candidates | planted copies verified | others verified | cold s | warm s "
              "| peak MB (streamed, warm) | peak MB holding them (before) | ratio |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for pictures, cold, warm, held in rows:
            ratio = float(held["peak_mb"]) / float(warm["peak_mb"])  # type: ignore[arg-type]
            baseline = (f"not run (it would hold ~{pictures * 40 / 1024:,.0f} MB) | –" if ratio != ratio
                        else f"{held['peak_mb']:,} | {ratio:.1f}x")
            print(f"| {pictures:,} | {warm['candidates']:,} | {warm['planted_found']} | {warm['false']} | "
                  f"{cold['seconds']} | {warm['seconds']} | {warm['peak_mb']:,} | {baseline} |")
        if len(rows) >= 2:
            (n0, _, w0, _), (n1, _, w1, _) = rows[0], rows[-1]
            slope = (float(w1["peak_mb"]) - float(w0["peak_mb"])) / (n1 - n0)  # type: ignore[arg-type]
            print(f"\nstreamed peak grows {slope * 1024:.2f} KB a picture; at 1,000,000 pictures: "
                  f"~{float(w1['peak_mb']) + slope * (1_000_000 - n1):,.0f} MB (extrapolated, not measured)")
    finally:
        if args.cache is None:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
