"""Words in photos (the ocr engine) on generated pictures: speed and how well words are read.

Three kinds of pictures, made here with real fonts: 12-megapixel phone JPEGs of a scene with a
sign in it (the sign's words 2-4% of the photo's height), receipts (narrow, many small lines)
and screenshots (1280x800, dense UI text). For each kind: photos/s of a first index (decode,
detection and recognition, 2 cores), and word recall and precision: the share of the words
drawn that the reader returned (folded, exact), and the share of the words it returned that
were drawn. Then the search: each sign's two rarest words typed, the rank of its photo.

    python benchmarks/ocr.py [--photos 12]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from engines import GalleryItem, SearchResult, Text, create_engine
from engines.analysis.words import words_of
from engines.testing import make_phone_photo

VOCABULARY = ("invoice total receipt coffee market street avenue open closed station platform museum bakery "
              "pharmacy hotel garden parking exit entrance ticket price sale library school theatre").split()
GOAL_PHOTOS_PER_S = 2.0


def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for path in ("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
                 "/usr/share/fonts/truetype/liberation/LiberationSans-Bold.ttf"):
        if Path(path).is_file():
            return ImageFont.truetype(path, size)
    return ImageFont.load_default(size)


def sign_words(rng: np.random.Generator) -> list[str]:
    words = [str(w) for w in rng.choice(VOCABULARY, 3, replace=False)]
    return [*words, f"{rng.integers(1, 99)}.{rng.integers(10, 99)}"]


def phone_sign(path: Path, rng: np.random.Generator) -> list[str]:
    picture = make_phone_photo(rng)
    words = sign_words(rng)
    draw = ImageDraw.Draw(picture)
    x, y = int(rng.integers(200, 1400)), int(rng.integers(300, 1800))
    draw.rectangle((x, y, x + 2200, y + 420), fill=(240, 240, 230))
    draw.text((x + 60, y + 60), " ".join(words[:2]).upper(), fill=(20, 20, 20), font=font(110))
    draw.text((x + 60, y + 230), " ".join(words[2:]), fill=(20, 20, 90), font=font(110))
    picture.rotate(float(rng.uniform(-4, 4)), resample=Image.Resampling.BILINEAR, fillcolor=(90, 90, 90)).save(
        path, quality=90)
    return words


def receipt(path: Path, rng: np.random.Generator) -> list[str]:
    picture = Image.new("RGB", (600, 1100), (250, 250, 245))
    draw = ImageDraw.Draw(picture)
    words: list[str] = []
    for line in range(14):
        item = [str(w) for w in rng.choice(VOCABULARY, 2, replace=False)]
        price = f"{rng.integers(1, 99)}.{rng.integers(10, 99)}"
        draw.text((30, 40 + 72 * line), f"{' '.join(item)}  {price}", fill=(30, 30, 30), font=font(30))
        words += [*item, price]
    picture.save(path, quality=92)
    return words


def screenshot(path: Path, rng: np.random.Generator) -> list[str]:
    picture = Image.new("RGB", (1280, 800), (255, 255, 255))
    draw = ImageDraw.Draw(picture)
    draw.rectangle((0, 0, 1280, 60), fill=(40, 60, 120))
    words: list[str] = []
    for line in range(12):
        row = [str(w) for w in rng.choice(VOCABULARY, 4, replace=False)]
        draw.text((40, 90 + 56 * line), " ".join(row), fill=(20, 20, 20), font=font(24))
        words += row
    picture.save(path)
    return words


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=12, help="pictures of each kind")
    parser.add_argument("--model", help="a CLIP model for the fusion rows (else the tiny random one: it cannot read)")
    args = parser.parse_args()
    rng = np.random.default_rng(5)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        truth: dict[str, list[str]] = {}
        for kind, make in (("phone", phone_sign), ("receipts", receipt), ("screenshots", screenshot)):
            (root / kind).mkdir()
            for n in range(args.photos):
                path = root / kind / f"{kind}-{n:03d}.jpg" if kind != "screenshots" else root / kind / f"{n:03d}.png"
                truth[str(path)] = make(path, rng)
        print(f"{args.photos} pictures of each kind; 12-MP phone JPEGs "
              f"{np.mean([p.stat().st_size for p in (root / 'phone').iterdir()]) / 1e6:.1f} MB each")
        print()
        print("| pictures | photos/s (first index, 2 cores) | word recall | word precision |")
        print("|---|---|---|---|")
        engines = {}
        rates = {}
        for kind in ("phone", "receipts", "screenshots"):
            engine = create_engine("ocr", cache_dir=root / f"cache-{kind}")
            started = time.perf_counter()
            engine.index(str(root / kind), progress=False)
            rate = rates[kind] = args.photos / (time.perf_counter() - started)
            engines[kind] = engine
            found = drawn = right = 0
            for path in (p for p in truth if Path(p).parent.name == kind):
                # What the engine read of the photo, asked through the contract (a result is its content).
                result = SearchResult(1, kind, 0.0, path, 0, GalleryItem(kind, path).content_hash)
                read = [w for line in engine.text_of(result) for w in words_of(line.text)]
                expected = [w for word in truth[path] for w in words_of(word)]
                right += sum(min(read.count(w), expected.count(w)) for w in set(expected))
                found += len(read)
                drawn += len(expected)
            print(f"| {kind} | {rate:.2f} | {right / drawn:.3f} | {right / max(found, 1):.3f} |")
        ranks = []
        for path, words in truth.items():
            if "/phone/" not in path:
                continue
            typed = " ".join(words[1:3])
            found = engines["phone"].search(Text(typed), k=10)
            ranks.append(next((r.rank for r in found if r.path == path), None))
        hits = sum(1 for r in ranks if r == 1)
        print(f"\nphone photos: {rates['phone']:.2f} photos/s (goal >= {GOAL_PHOTOS_PER_S:.0f}): "
              f"{'met' if rates['phone'] >= GOAL_PHOTOS_PER_S else 'NOT met'}")
        print(f"search: a sign's words typed (two of them) put its photo first for {hits} of {len(ranks)} photos")
        fusion(root, truth, engines["phone"], args.model)


def fusion(root: Path, truth: dict[str, list[str]], words: object, model: str | None) -> None:
    """A sentence naming a sign's words ("a sign that says ..."), searched by a CLIP engine alone
    and fused with the words photos show (engines.fusion): where the sign's photo ranks, and the cost."""
    from engines.fusion import with_words
    from engines.testing import build_tiny_clip

    # The words engine's cache folder: the CLIP engine finds the text it read there (as in the app).
    clip = create_engine("clip", model=model or str(build_tiny_clip(root / "tiny-clip")), cache_dir=root / "cache-phone")
    clip.index(str(root / "phone"), progress=False)
    alone, fused, alone_ms, fused_ms = [], [], [], []
    for path, drawn in ((p, w) for p, w in truth.items() if "/phone/" in p):
        sentence = Text(f"a sign that says {drawn[1]} {drawn[2]}")
        started = time.perf_counter()
        found = clip.search(sentence, k=10)
        alone_ms.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        mixed = with_words(clip, words, sentence, k=10)  # type: ignore[arg-type]
        fused_ms.append((time.perf_counter() - started) * 1000)
        alone.append(next((r.rank for r in found if r.path == path), None))
        fused.append(next((r.rank for r in mixed if r.path == path), None))
    name = model or "a tiny random CLIP (it cannot read)"
    print(f"\nfusion, {len(alone)} sentences naming a sign's words, with {name}:")
    print("| search | photo first | in the top 10 | median ms |")
    print("|---|---|---|---|")
    for label, ranks, times in (("CLIP alone", alone, alone_ms), ("CLIP + words in photos", fused, fused_ms)):
        print(f"| {label} | {sum(r == 1 for r in ranks)} | {sum(r is not None for r in ranks)} | "
              f"{float(np.median(times)):.1f} |")


if __name__ == "__main__":
    main()
