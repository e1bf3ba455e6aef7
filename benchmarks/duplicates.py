"""Duplicates: how well each engine and descriptor finds copies, and how fast at 10k and 100k.

A near-duplicate set is generated (in a temporary folder, never committed) from the demo
gallery (data/) and the aio images: for each source image, an exact copy, a lossless
re-encode (JPEG source -> PNG: the same decoded pixels), a PNG -> JPEG re-encode, JPEG at
quality 50..90, a resize to 50%, a centre crop of 80..90%, brightness +-30%, a rotation of
+-5 degrees, and a horizontal flip (kept apart: not every descriptor should match it),
mixed with the remaining aio images as distinct ones. For each engine and metric, at the
default threshold and at a sweep around it:

* exact: share of byte copies and lossless re-encodes reported as exact, and of lossy
  variants wrongly reported as exact;
* near: pair precision and recall of the groups (a pair is two files in one group; the
  true pairs are those of one source and its variants, flips excluded), recall per
  transformation, and the flip recall apart;
* time to group 10,000 and 100,000 vectors shaped like each descriptor, and to map 10,000.

    python benchmarks/duplicates.py [--sources 120] [--model DIR]

CLIP needs real weights to mean anything (this machine cannot download them): without
``--model DIR`` it runs the tiny random model, and says so.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

from _common import AIO, ROOT
from engines import InvalidQueryError, SearchEngine, create_engine, load_gallery
from engines.analysis.duplicates import group_duplicates
from engines.analysis.gallery_map import gallery_map
from engines.galleries.images import load_image
from engines.galleries.items import GalleryItem
from engines.results import GalleryVectors
from engines.testing import build_tiny_clip

LOSSLESS = ("copy", "lossless")
LOSSY = ("png-jpeg", "jpeg-q", "resize-50", "crop", "brightness", "rotate")
FLIP = "flip"


def variants(source: Path, out: Path, rng: np.random.Generator) -> dict[str, Path]:
    """The transformed copies of ``source`` in ``out``, by transformation."""
    image = load_image(source)  # as the engines see it (transparency on white)
    made: dict[str, Path] = {}

    def save(kind: str, picture: Image.Image, suffix: str, **options: object) -> None:
        path = out / f"{source.stem}__{kind}{suffix}"
        picture.save(path, **options)
        made[kind] = path

    made["copy"] = out / f"{source.stem}__copy{source.suffix}"
    made["copy"].write_bytes(source.read_bytes())
    if source.suffix.lower() in {".jpg", ".jpeg"}:
        save("lossless", image, ".png")  # the decoded JPEG pixels, stored losslessly
    else:
        save("lossless", image, ".bmp")
        save("png-jpeg", image, ".jpg", quality=90)
    save("jpeg-q", image, ".jpg", quality=int(rng.integers(50, 91)))
    save("resize-50", image.resize((max(1, image.width // 2), max(1, image.height // 2)), Image.Resampling.LANCZOS), ".png")
    keep = rng.uniform(0.80, 0.90)
    w, h = image.size
    cw, ch = int(w * keep), int(h * keep)
    save("crop", image.crop(((w - cw) // 2, (h - ch) // 2, (w - cw) // 2 + cw, (h - ch) // 2 + ch)), ".png")
    save("brightness", ImageEnhance.Brightness(image).enhance(1 + rng.choice([-1, 1]) * rng.uniform(0.1, 0.3)), ".png")
    save("rotate", image.rotate(rng.uniform(-5, 5), resample=Image.Resampling.BILINEAR, expand=False), ".png")
    save(FLIP, image.transpose(Image.Transpose.FLIP_LEFT_RIGHT), ".png")
    return made


def build_set(folder: Path, sources: int, seed: int) -> tuple[dict[str, tuple[str, str]], int]:
    """The generated folder: {file: (source id, kind)} and the number of distinct extra images."""
    rng = np.random.default_rng(seed)
    demo = sorted((ROOT / "data").glob("*/*/*.png"))
    aio = sorted((AIO / "train").glob("*/*")) + sorted((AIO / "test").glob("*/*")) if (AIO / "train").is_dir() else []
    order = rng.permutation(len(aio))
    picked = demo + [aio[i] for i in order[: max(0, sources - len(demo))]]
    distinct = [aio[i] for i in order[max(0, sources - len(demo)) :]]
    truth: dict[str, tuple[str, str]] = {}
    for number, source in enumerate(picked):
        out = folder / f"s{number:04d}"
        out.mkdir(parents=True)
        original = out / f"{source.stem}__original{source.suffix}"
        original.write_bytes(source.read_bytes())
        truth[str(original)] = (str(number), "original")
        for kind, path in variants(source, out, rng).items():
            truth[str(path)] = (str(number), kind)
    others = folder / "distinct"
    others.mkdir()
    for number, source in enumerate(distinct):
        path = others / f"d{number:04d}{source.suffix}"
        path.write_bytes(source.read_bytes())
        truth[str(path)] = (f"d{number}", "distinct")
    return truth, len(distinct)


def score(groups: list, truth: dict[str, tuple[str, str]]) -> dict[str, float]:
    """Exact separation, near pair precision/recall, per-kind and flip recall."""
    exact_members = {m.path for g in groups if g.kind == "exact" for m in g.members}
    exact_should = [p for p, (_, kind) in truth.items() if kind in LOSSLESS]
    lossy = [p for p, (_, kind) in truth.items() if kind in (*LOSSY, FLIP)]
    grouped: set[tuple[str, str]] = set()
    for group in groups:
        for a, b in itertools.combinations(sorted(m.path for m in group.members), 2):
            grouped.add((a, b))
    by_source: dict[str, list[str]] = defaultdict(list)
    for path, (source, kind) in truth.items():
        if kind != "distinct":
            by_source[source].append(path)
    true_pairs: set[tuple[str, str]] = set()
    flip_pairs: set[tuple[str, str]] = set()
    kind_pairs: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for paths in by_source.values():
        original = next(p for p in paths if truth[p][1] == "original")
        for a, b in itertools.combinations(sorted(paths), 2):
            if FLIP in (truth[a][1], truth[b][1]):
                flip_pairs.add((a, b))
            else:
                true_pairs.add((a, b))
        for p in paths:
            if p != original:
                kind_pairs[truth[p][1]].add(tuple(sorted((original, p))))  # type: ignore[arg-type]
    found_true = grouped & true_pairs
    wrong = grouped - true_pairs - flip_pairs
    figures = {
        "exact found": sum(p in exact_members for p in exact_should) / max(1, len(exact_should)),
        "lossy as exact": sum(p in exact_members for p in lossy) / max(1, len(lossy)),
        "precision": len(found_true) / max(1, len(found_true) + len(wrong)),
        "recall": len(found_true) / max(1, len(true_pairs)),
        "flip": len(grouped & flip_pairs) / max(1, len(flip_pairs)),
    }
    for kind in LOSSY:
        pairs = kind_pairs.get(kind, set())
        figures[kind] = len(grouped & pairs) / max(1, len(pairs))
    return figures


def sweep(engine: SearchEngine, metric: str, truth: dict[str, tuple[str, str]]) -> list[tuple[float, dict[str, float], float]]:
    default = engine.duplicate_threshold(metric)
    factors = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
    higher = metric in engine.higher_is_better
    rows = []
    for factor in factors:
        threshold = 1 - (1 - default) * factor if higher else default * factor
        started = time.perf_counter()
        groups = engine.duplicates(threshold=threshold, metric=metric)
        rows.append((threshold, score(groups, truth), time.perf_counter() - started))
    return rows


def pixel_sources(limit: int = 700) -> np.ndarray:
    """32x32 pixel vectors of the demo and aio images: the material synthetic galleries are made of."""
    engine = create_engine("pixel", cache="off")
    files = sorted((ROOT / "data").glob("*/*/*.png")) + sorted(AIO.glob("*/*/*"))[:limit]
    return engine.embed_images([load_image(path, (128, 128)) for path in files])


def timing(dims: int, n: int, kind: str, sources: np.ndarray, seed: int = 0) -> str:
    """Seconds to group ``n`` vectors like ``kind``, 1% of them near copies of others.

    phash: random bits (copies flip 5% of them). clip: unit vectors around 200 class
    centres (same-class cosine about 0.6; copies at cosine ~0.99). pixels: real 32x32
    images shifted, scaled in brightness and noised, so that no two are the same.
    """
    rng = np.random.default_rng(seed)
    copies = n // 100
    if kind == "phash":
        matrix = rng.integers(0, 2, size=(n, dims)).astype(np.float32)
        flips = rng.random((copies, dims)) < 0.05
        matrix[n - copies :] = np.where(flips, 1 - matrix[:copies], matrix[:copies])
        metric, threshold = "l1", 10.0  # the phash default
    elif kind == "clip":
        centres = rng.normal(size=(200, dims)).astype(np.float32)
        matrix = centres[rng.integers(0, 200, n)] + rng.normal(scale=0.8, size=(n, dims)).astype(np.float32)
        matrix[n - copies :] = matrix[:copies] + rng.normal(scale=0.05, size=(copies, dims)).astype(np.float32)
        matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
        metric, threshold = "cosine", 0.95
    else:
        picked = sources[rng.integers(0, len(sources), n)].reshape(n, 32, 32, 3)
        shifts = rng.integers(0, 32, size=(n, 2))
        matrix = np.empty((n, dims), dtype=np.float32)
        for row in range(n):
            matrix[row] = np.roll(picked[row], tuple(shifts[row]), axis=(0, 1)).reshape(-1)
        matrix *= rng.uniform(0.6, 1.2, size=(n, 1)).astype(np.float32)
        matrix += rng.normal(scale=0.03, size=matrix.shape).astype(np.float32)
        matrix[n - copies :] = matrix[:copies] + rng.normal(scale=0.01, size=(copies, dims)).astype(np.float32)
        metric, threshold = "l1", 60.0  # the pixels default
    items = tuple(GalleryItem("", f"/nonexistent/{i}.png", position=i) for i in range(n))
    vectors = GalleryVectors(matrix, items, tuple(map(str, range(n))), tuple(f"h{i}" for i in range(n)))
    started = time.perf_counter()
    try:
        groups = group_duplicates(vectors, metric, threshold, higher_is_better=metric == "cosine")
    except InvalidQueryError as exc:
        print(f"  ({kind} {n:,}: refused after {time.perf_counter() - started:.1f} s: {exc})", flush=True)
        return "refused"
    seconds = time.perf_counter() - started
    found = sum(len(g.members) for g in groups)
    print(f"  ({kind} {n:,}: {len(groups)} groups, {found} images; {2 * copies} made as copies)", flush=True)
    return f"{seconds:.1f} s"


def map_timing(n: int = 10_000, dims: int = 512, seed: int = 0) -> float:
    """Seconds to map ``n`` clustered CLIP-like vectors to the plane (PCA, then t-SNE)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(60, dims)).astype(np.float32)
    matrix = centres[rng.integers(0, 60, n)] + rng.normal(scale=0.8, size=(n, dims)).astype(np.float32)
    items = tuple(GalleryItem(str(i % 60), f"/nonexistent/{i}.png", position=i) for i in range(n))
    started = time.perf_counter()
    gallery_map(GalleryVectors(matrix, items, tuple(map(str, range(n)))), "cosine", engine="clip")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sources", type=int, default=120, help="source images to make variants of")
    parser.add_argument("--model", help="a CLIP model folder with real weights (else the tiny random model)")
    parser.add_argument("--skip-timing", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "near-duplicates"
        truth, distinct = build_set(folder, args.sources, seed=0)
        kinds = Counter(kind for _, kind in truth.values())
        print(f"{len(truth)} files: {kinds['original']} sources, {distinct} distinct, variants {dict(kinds)}")
        gallery = load_gallery(folder)["train"]
        model = args.model or str(build_tiny_clip(Path(tmp) / "tiny-clip"))
        setups = [
            ("pixel", "pixels", {"features": "pixels"}),
            ("pixel", "histogram", {"features": "histogram"}),
            ("pixel", "phash", {"features": "phash"}),
            ("clip", "CLIP" + ("" if args.model else " (tiny random model)"), {"model": model}),
        ]
        header = "| engine | descriptor | metric | threshold | exact found | lossy as exact | precision | recall | " + \
            " | ".join(LOSSY) + " | flip | s |"
        print(header)
        print("|" + "---|" * (header.count("|") - 1))
        for name, descriptor, options in setups:
            engine = create_engine(name, cache_dir=Path(tmp) / "cache", **options)
            engine.index(gallery, progress=False)
            for metric in engine.metrics:
                for threshold, figures, seconds in sweep(engine, metric, truth):
                    mark = " **default**" if threshold == engine.duplicate_threshold(metric) else ""
                    cells = " | ".join(f"{figures[k]:.2f}" for k in ("exact found", "lossy as exact", "precision", "recall", *LOSSY, "flip"))
                    print(f"| {name} | {descriptor} | {metric} | {threshold:.4g}{mark} | {cells} | {seconds:.2f} |")
    if args.skip_timing:
        return
    print("\n| descriptor | dims | 10,000 vectors | 100,000 vectors |\n|---|---|---|---|")
    sources = pixel_sources()
    for kind, dims in (("phash", 64), ("clip", 512), ("pixels", 3072)):
        cells = [timing(dims, n, kind, sources) for n in (10_000, 100_000)]
        print(f"| {kind} | {dims} | {' | '.join(cells)} |")
    print(f"\nmap of 10,000 vectors (PCA to 50, t-SNE): {map_timing():.1f} s (goal: within 60 s)")


if __name__ == "__main__":
    main()
