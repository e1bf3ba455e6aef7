"""The faces engine: finding faces in phone photos, searching many faces, grouping people.

1. Speed of a first index on generated 12-megapixel phone JPEGs, each with one of the test
   faces (tests/data/faces) pasted in at a phone-portrait size: photos/s on 2 cores (goal >= 3).
2. Search latency over 10,000 faces (descriptors drawn around 400 people, as a library's
   faces cluster): p50 of one query (goal <= 20 ms).
3. People grouping on the real photos: pair precision and recall of "same person" against
   the file names (obama-*, biden-*), over the faces of one-person photos.

    python benchmarks/faces.py [--photos 12]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from _common import ROOT
from engines import create_engine
from engines.analysis.faces import closest_per_photo
from engines.testing import make_phone_photo

FACES = ROOT / "tests" / "data" / "faces"
GOAL_PHOTOS_PER_S = 3.0
GOAL_SEARCH_MS = 20.0


def phone_photos(folder: Path, count: int) -> None:
    rng = np.random.default_rng(3)
    faces = sorted(FACES.glob("*.jpg"))
    folder.mkdir(parents=True)
    for n in range(count):
        photo = make_phone_photo(rng)
        face = Image.open(faces[n % len(faces)]).convert("RGB")
        face = face.resize((face.width * 3, face.height * 3), Image.Resampling.BICUBIC)  # a portrait's size
        photo.paste(face, (int(rng.integers(0, 4000 - face.width)), int(rng.integers(0, 3000 - face.height))))
        photo.save(folder / f"IMG_{n:04d}.JPG", quality=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=12)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        phone_photos(root / "phone", args.photos)
        engine = create_engine("faces", cache_dir=root / "cache")
        started = time.perf_counter()
        engine.index(str(root / "phone"), progress=False)
        rate = args.photos / (time.perf_counter() - started)
        found = sum(len(person.keys) for person in engine.people())
        print(f"index: {args.photos} 12-MP phone JPEGs, {found} faces found, {rate:.2f} photos/s "
              f"(goal >= {GOAL_PHOTOS_PER_S:.0f}): {'met' if rate >= GOAL_PHOTOS_PER_S else 'NOT met'}")

        # Search over 10,000 faces: the engine's ranking (closest_per_photo) over drawn descriptors,
        # as a library's faces cluster (400 people), 2,500 photos of 4 faces.
        rng = np.random.default_rng(4)
        centres = rng.normal(0, 0.09, (400, 128)).astype(np.float32)
        matrix = centres[rng.integers(0, 400, 10_000)] + rng.normal(0, 0.02, (10_000, 128)).astype(np.float32)
        owners = np.arange(10_000) // 4
        times = []
        for n in range(50):
            started = time.perf_counter()
            best = closest_per_photo(matrix, owners, 2_500, matrix[n] + 0.01)
            np.argsort(best, kind="stable")[:10]
            times.append((time.perf_counter() - started) * 1000)
        p50 = statistics.median(times)
        print(f"search over 10,000 faces: p50 {p50:.2f} ms (goal <= {GOAL_SEARCH_MS:.0f}): "
              f"{'met' if p50 <= GOAL_SEARCH_MS else 'NOT met'}")

        real = create_engine("faces", cache_dir=root / "cache-real")
        real.index(str(FACES), progress=False)
        truth = []
        predicted = []
        people = real.people()
        faces = [(Path(path).name, group) for group, person in enumerate(people) for path, _ in person.faces]
        # Pairs of faces from one-person photos (the group photo's faces cannot be told apart by file name).
        single = [(name, group) for name, group in faces if "-and-" not in name]
        for (a, ga), (b, gb) in itertools.combinations(single, 2):
            truth.append(a.split("-")[0] == b.split("-")[0])
            predicted.append(ga == gb)
        true_pos = sum(t and p for t, p in zip(truth, predicted, strict=True))
        precision = true_pos / max(1, sum(predicted))
        recall = true_pos / max(1, sum(truth))
        print(f"people on the real photos: {len(people)} groups of {len(faces)} faces; same-person pairs of "
              f"one-person photos: precision {precision:.2f}, recall {recall:.2f}")


if __name__ == "__main__":
    main()
