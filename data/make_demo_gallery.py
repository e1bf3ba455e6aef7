"""Rebuild the demo gallery in this folder from Debian's ``openclipart-png`` package.

The package's images are public domain (Creative Commons Public Domain Dedication, see
/usr/share/doc/openclipart-png/copyright). Run as ``python data/make_demo_gallery.py``
after ``apt-get install openclipart-png``; the gallery it writes is committed, so the app
does not need the package.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from PIL import Image

SOURCE = Path("/usr/share/openclipart/png")
#: gallery class -> package folder
CLASSES = {
    "birds": "animals/birds",
    "bugs": "animals/bugs",
    "flowers": "plants/flowers",
    "fruit": "food/fruit",
    "boats": "transportation/boating",
    "vehicles": "transportation/vehicles",
}
PER_CLASS = 10  # 8 database images and 2 queries
TEST_EVERY = 5  # every 5th image becomes a query
MAX_SIDE = 256


def main() -> None:
    here = Path(__file__).resolve().parent
    for split in ("train", "test"):
        shutil.rmtree(here / split, ignore_errors=True)
    for label, folder in CLASSES.items():
        files = sorted((SOURCE / folder).glob("*.png"))
        # Spread the picks over the folder: neighbours are often variants of one drawing.
        step = max(1, len(files) // PER_CLASS)
        for n, path in enumerate(files[::step][:PER_CLASS]):
            split = "test" if n % TEST_EVERY == TEST_EVERY - 1 else "train"
            out = here / split / label / path.name
            out.parent.mkdir(parents=True, exist_ok=True)
            with Image.open(path) as image:
                image.thumbnail((MAX_SIDE, MAX_SIDE))
                image.save(out, optimize=True)


if __name__ == "__main__":
    main()
