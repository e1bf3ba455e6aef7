"""Near duplicates that are the same photo: precision and recall with and without verification.

Sources are aio photos (real photos; generated scenes where aio is absent). Each gets the
edits people make: a centre crop of 70-90% resized back, a rotation of up to 10 degrees with
brightness +-30%, a resize to 25%, JPEG at quality 40-90, a caption in bold letters on a bar over
18% of it, and a screenshot of it (borders and a title bar). Distinct but similar pairs come with them: two
photos of one aio class, and a "burst" (the same scene shifted by 10% with another subject
pasted over a third of it). A found pair is two files in one near group.

Per engine, descriptor and metric, at its defaults: precision and recall of (source, edit)
pairs without verification (the vector threshold) and with it (candidates from a loose
threshold, each image's 5 nearest and the pairs sharing keypoints, confirmed by ORB keypoints,
one similarity transform and a comparison of the aligned pictures), recall per edit, and how
many distinct-but-similar pairs were grouped. Then the cost: keypoints per image, verification
per pair (of different photos, which the quick check mostly turns away, and of copies), and
candidates for 10,000 and 100,000 vectors, measured, and keypoints of generated 12-MP phone
photos (JPEG and HEIC); the time for 10,000 and 100,000 images follows from them.

Goals: precision >= 0.95 and recall >= 0.8 on the edited pairs with each engine's defaults;
100,000 images verified in <= 5 minutes on 2 cores with their keypoints cached.

    python benchmarks/verified_duplicates.py [--sources 60] [--model DIR]
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFont

from _common import AIO
from engines import create_engine, load_gallery
from engines.analysis.duplicates import NEIGHBOURS
from engines.analysis.pairs import neighbour_pairs
from engines.analysis.shared_keypoints import keypoint_pairs
from engines.analysis.verify import Features, compute_features, match
from engines.galleries.items import GalleryItem
from engines.testing import build_tiny_clip, make_photo

#: The share of a library's photos that have an edited copy, for the time estimates.
COPIES = 0.1
EDITS = ("crop", "rotate+brightness", "resize-25", "jpeg", "caption", "screenshot")
SIMILAR = ("same-class", "burst")


def edits(image: Image.Image, rng: np.random.Generator) -> dict[str, Image.Image]:
    w, h = image.size
    keep = rng.uniform(0.70, 0.90)
    cw, ch = int(w * keep), int(h * keep)
    crop = image.crop(((w - cw) // 2, (h - ch) // 2, (w - cw) // 2 + cw, (h - ch) // 2 + ch)).resize((w, h))
    turned = image.rotate(rng.uniform(-10, 10), resample=Image.Resampling.BICUBIC, expand=False)
    turned = ImageEnhance.Brightness(turned).enhance(1 + rng.choice([-1, 1]) * rng.uniform(0.1, 0.3))
    captioned = image.copy()
    pen = ImageDraw.Draw(captioned)
    pen.rectangle((0, int(h * 0.82), w, h), fill=(0, 0, 0))  # a bar over 18% of the photo, bold letters
    pen.text((int(w * 0.03), int(h * 0.84)), "SUMMER 2023 WITH LOVE", fill=(255, 255, 255),
             font=ImageFont.load_default(size=max(10, int(h * 0.12))), stroke_width=2, stroke_fill=(255, 255, 255))
    shot = Image.new("RGB", (w + 80, h + 120), (240, 240, 240))
    ImageDraw.Draw(shot).rectangle((0, 0, w + 80, 50), fill=(50, 50, 60))
    shot.paste(image, (40, 80))
    return {
        "crop": crop, "rotate+brightness": turned, "resize-25": image.resize((max(1, w // 4), max(1, h // 4))),
        "jpeg": image, "caption": captioned, "screenshot": shot,
    }


def burst(image: Image.Image, other: Image.Image, rng: np.random.Generator) -> Image.Image:
    """The same scene a moment later: shifted by 10%, another subject over a third of it."""
    w, h = image.size
    dx, dy = int(w * 0.1), int(h * 0.05)
    moved = image.crop((dx, dy, w, h)).resize((w, h))
    subject = other.resize((w // 2, int(h / 1.5)))
    moved.paste(subject, (int(rng.integers(0, w // 2)), int(rng.integers(0, h - subject.height + 1))))
    return moved


def sources(count: int, rng: np.random.Generator) -> list[tuple[str, Image.Image]]:
    """(class, photo) pairs: aio photos, or generated scenes where aio is absent."""
    if (AIO / "train").is_dir():
        files = sorted((AIO / "train").glob("*/*"))
        picked = [files[i] for i in rng.permutation(len(files))[: count * 2]]
        return [(path.parent.name, Image.open(path).convert("RGB")) for path in picked]
    return [(f"c{n % 10}", make_photo(rng, (500, 375))) for n in range(count * 2)]


def build(folder: Path, count: int) -> tuple[dict[str, tuple[str, str]], list[tuple[str, str, str]]]:
    """The folder: {file: (source, kind)} and the distinct-but-similar pairs (a, b, why)."""
    rng = np.random.default_rng(0)
    photos = sources(count, rng)
    truth: dict[str, tuple[str, str]] = {}
    similar: list[tuple[str, str, str]] = []
    by_class: dict[str, list[str]] = defaultdict(list)
    for number, (label, photo) in enumerate(photos):
        out = folder / f"s{number:04d}"
        out.mkdir(parents=True)
        original = out / "original.jpg"
        photo.save(original, quality=92)
        truth[str(original)] = (str(number), "original")
        by_class[label].append(str(original))
        if number >= count:  # the second half: distinct photos only (same-class pairs)
            continue
        for kind, edited in edits(photo, rng).items():
            path = out / f"{kind}.jpg"
            edited.save(path, quality=int(rng.integers(40, 91)) if kind == "jpeg" else 90)
            truth[str(path)] = (str(number), kind)
        shot = out / "burst.jpg"
        burst(photo, photos[(number + 1) % len(photos)][1], rng).save(shot, quality=90)
        truth[str(shot)] = (f"b{number}", "burst")
        similar.append((str(original), str(shot), "burst"))
    for members in by_class.values():
        similar += [(a, b, "same-class") for a, b in itertools.combinations(members, 2)]
    return truth, similar


def figures(groups: list, truth: dict[str, tuple[str, str]], similar: list[tuple[str, str, str]]) -> dict[str, float]:
    grouped = {tuple(sorted((a.path, b.path))) for g in groups if g.kind == "near"
               for a, b in itertools.combinations(g.members, 2)}
    originals = {source: path for path, (source, kind) in truth.items() if kind == "original"}
    edited = [(tuple(sorted((originals[source], path))), kind) for path, (source, kind) in truth.items()
              if kind in EDITS]
    true_pairs = {pair for pair, _ in edited}
    found = grouped & true_pairs
    same_source = {tuple(sorted(pair)) for paths in _by_source(truth).values()
                   for pair in itertools.combinations(paths, 2)}
    wrong = grouped - same_source
    result = {"precision": len(found) / max(1, len(found) + len(wrong)), "recall": len(found) / max(1, len(true_pairs))}
    for kind in EDITS:
        pairs = {pair for pair, k in edited if k == kind}
        result[kind] = len(grouped & pairs) / max(1, len(pairs))
    for why in SIMILAR:
        pairs = {tuple(sorted((a, b))) for a, b, w in similar if w == why}
        result[why] = len(grouped & pairs)
    return result


def _by_source(truth: dict[str, tuple[str, str]]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = defaultdict(list)
    for path, (source, kind) in truth.items():
        if kind in ("original", *EDITS):
            found[source].append(path)
    return found


def costs(files: list[str], matrix: np.ndarray, metric: str,
          truth: dict[str, tuple[str, str]]) -> tuple[float, float, float, float, int]:
    """On the pairs a duplicates run asks about here (each image's nearest 5 by ``matrix``,
    and the pairs sharing keypoints): (ms of keypoints per image, ms of verification per pair
    of different photos, per pair of copies (these go through the full check), pairs of
    different photos that share keypoints per picture, pairs)."""
    items = [GalleryItem("", path) for path in files]
    started = time.perf_counter()
    found = [compute_features(item) for item in items]
    per_image = (time.perf_counter() - started) * 1000 / len(items)
    shared = keypoint_pairs(found)
    pairs = np.unique(np.concatenate([neighbour_pairs(matrix, metric, NEIGHBOURS), shared]), axis=0)

    def source(row: int) -> str:
        return truth[files[row]][0].lstrip("b")  # a burst is its photo's other shot

    seconds = {True: 0.0, False: 0.0}
    counts = {True: 0, False: 0}
    for a, b in pairs.tolist():
        started = time.perf_counter()
        match(found[a], found[b])
        same = source(a) == source(b)
        seconds[same] += time.perf_counter() - started
        counts[same] += 1
    different_shared = sum(source(a) != source(b) for a, b in shared.tolist()) / len(files)
    return (per_image, 1000 * seconds[False] / max(1, counts[False]), 1000 * seconds[True] / max(1, counts[True]),
            different_shared, len(pairs))


def shared_keypoint_seconds(files: list[str], n: int) -> float:
    """Seconds of ``keypoint_pairs`` over ``n`` keypoint sets of different photos: this set's,
    each with a quarter of its descriptor bits flipped (as far apart as different pictures'
    keypoints, with the bit statistics of real ones)."""
    rng = np.random.default_rng(0)
    real = [f for f in (compute_features(GalleryItem("", path)) for path in files[:100]) if f is not None]
    fake = []
    for number in range(n):
        source = real[number % len(real)]
        flips = np.packbits(rng.random((len(source.descriptors), 256)) < 0.25, axis=1)
        fake.append(Features(source.xy, source.descriptors ^ flips, source.frame))
    started = time.perf_counter()
    keypoint_pairs(fake)
    return time.perf_counter() - started


def phone_costs(folder: Path) -> tuple[float, float, float]:
    """(ms of keypoints per 12-MP phone JPEG, per HEIC, and of the aligned comparison's
    decode per JPEG): what a real library pays, measured on generated phone photos."""
    from photos import make_photos  # the phone photos of benchmarks/photos.py

    from engines.analysis.verify import _small_gray

    photos = make_photos(folder, 8, heic_every=4)
    times: dict[bool, list[float]] = {True: [], False: []}
    small = []
    for path in photos:
        started = time.perf_counter()
        compute_features(GalleryItem("", path))
        times[path.endswith(".HEIC")].append(time.perf_counter() - started)
        if not path.endswith(".HEIC"):
            started = time.perf_counter()
            _small_gray(GalleryItem("", path))
            small.append(time.perf_counter() - started)
    return 1000 * float(np.mean(times[False])), 1000 * float(np.mean(times[True])), 1000 * float(np.mean(small))


def candidate_seconds(n: int, dims: int = 512) -> tuple[float, int]:
    """Seconds to find each of ``n`` CLIP-like vectors' nearest 5, and the pairs found."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(200, dims)).astype(np.float32)
    matrix = centres[rng.integers(0, 200, n)] + rng.normal(scale=0.8, size=(n, dims)).astype(np.float32)
    started = time.perf_counter()
    pairs = neighbour_pairs(matrix, "cosine", NEIGHBOURS)
    return time.perf_counter() - started, len(pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sources", type=int, default=60)
    parser.add_argument("--model", help="a CLIP model folder with real weights (else the tiny random model)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        truth, similar = build(folder, args.sources)
        print(f"{len(truth)} files from {args.sources} edited sources ({'aio' if (AIO / 'train').is_dir() else 'generated'}); "
              f"{len(similar)} distinct-but-similar pairs")
        gallery = load_gallery(folder)["train"]
        model = args.model or str(build_tiny_clip(Path(tmp) / "tiny-clip"))
        setups = [("pixel", "pixels", {"features": "pixels"}), ("pixel", "phash", {"features": "phash"}),
                  ("clip", "CLIP" + ("" if args.model else " (tiny random)"), {"model": model})]
        print("| engine | descriptor | metric | verified | precision | recall | " + " | ".join(EDITS)
              + " | same-class pairs grouped | bursts grouped | s |")
        print("|" + "---|" * (10 + len(EDITS)))
        for name, descriptor, options in setups:
            engine = create_engine(name, cache_dir=Path(tmp) / "cache", **options)
            engine.index(gallery, progress=False)
            metric = engine.default_metric
            for verify in (False, True):
                started = time.perf_counter()
                groups = engine.duplicates(metric=metric, verify=verify)
                seconds = time.perf_counter() - started
                got = figures(groups, truth, similar)
                cells = " | ".join(f"{got[k]:.2f}" for k in ("precision", "recall", *EDITS))
                print(f"| {name} | {descriptor} | {metric} | {'yes' if verify else 'no'} | {cells} | "
                      f"{got['same-class']:.0f} | {got['burst']:.0f} | {seconds:.1f} |", flush=True)
            if name == "pixel" and descriptor == "phash":
                vectors = engine.vectors()
                paths = [item.path or "" for item in vectors.items]
                per_image, per_other, per_copy, shared_per, asked = costs(
                    paths, np.asarray(vectors.matrix, np.float32), metric, truth)
                # A library's pairs are mostly different photos: the originals alone, no copies.
                rows = [row for row, path in enumerate(paths) if truth[path][1] == "original"]
                _, per_other, _, shared_per, asked_others = costs(
                    [paths[row] for row in rows], np.asarray(vectors.matrix, np.float32)[rows], metric, truth)
        shared_s = shared_keypoint_seconds(sorted(truth), 10_000)
        phone_jpeg, phone_heic, phone_small = phone_costs(Path(tmp) / "phone")
    print(f"\nkeypoints: {per_image:.1f} ms per image; verification (one core, on the pairs a pHash run asks "
          f"about: nearest 5 and shared keypoints): {per_copy:.2f} ms per pair of copies (of {asked:,} pairs in all), "
          f"{per_other:.2f} ms per pair of different photos (the {asked_others:,} pairs of the originals alone, where "
          f"{shared_per:.2f} pairs per picture share keypoints); finding shared keypoints among 10,000 pictures: "
          f"{shared_s:.1f} s")
    print(f"12-MP phone photos (4000x3000, generated): keypoints {phone_jpeg:.0f} ms a JPEG (decoded reduced), "
          f"{phone_heic:.0f} ms a HEIC (decoded whole); the aligned comparison's decode {phone_small:.0f} ms a JPEG")
    print(f"A library in which {COPIES:.0%} of the photos have an edited copy:")
    for n in (10_000, 100_000):
        seconds, pairs = candidate_seconds(n)
        shared = shared_s * n / 10_000
        others = pairs + int(shared_per * n)
        copies = int(COPIES * n)
        verify_s = (others * per_other + copies * per_copy) / 1000 / 2  # two cores
        print(f"{n:,} images: candidates (5 nearest each) {seconds:.1f} s + shared keypoints {shared:.0f} s; "
              f"{others:,} pairs of different photos and {copies:,} of copies verified in {verify_s:.0f} s on 2 cores "
              f"with keypoints cached (computing them: {n * per_image / 1000 / 2:.0f} s more, once); total "
              f"{seconds + shared + verify_s:.0f} s")

if __name__ == "__main__":
    main()
