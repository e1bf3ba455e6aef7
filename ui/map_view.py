"""The gallery map, drawn: a dot per image in its class colour, thumbnails spread over it.

Decoding every image of a 10,000-image map would take longer than the map itself, so each
cell of a grid shows the thumbnail of the image nearest its centre and every image gets a
dot. Clicking finds the nearest image; it can then be searched with.
"""

from __future__ import annotations

import colorsys
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from engines import SearchResult
from engines.results import GalleryMap

from .messages import count

SIZE = (1200, 900)
MARGIN = 36
CELLS = (24, 18)
THUMB = 40
#: A legend is drawn up to this many classes; beyond it, clicking a point names its class.
LEGEND_CLASSES = 36
#: The legend's column, right of the map (never over points or thumbnails), and its text size.
LEGEND_WIDTH = 260
LEGEND_FONT = 16

#: What the page keeps of a map: (x, y) in pixels of the drawn image, and each point's result.
Points = list[tuple[float, float, SearchResult]]


def legend(pen: ImageDraw.ImageDraw, colours: dict[str, tuple[int, int, int]], left: int) -> None:
    """The classes and their colours in a column from ``left``, in text people can read."""
    font = ImageFont.load_default(size=LEGEND_FONT)
    pen.rectangle((left, 0, left + LEGEND_WIDTH, SIZE[1]), fill=(255, 255, 255))
    if len(colours) > LEGEND_CLASSES:
        pen.multiline_text((left + 12, 16), f"{count(len(colours), 'class', 'classes')}:\nclick a point\nto see its class",
                           fill=(40, 40, 40), font=font, spacing=6)
        return
    row = (SIZE[1] - 32) / max(len(colours), 1)
    step = min(24.0, row)
    for number, (label, colour) in enumerate(colours.items()):
        y = 16 + number * step
        pen.rectangle((left + 12, y + 2, left + 26, y + 16), fill=colour)
        name = label or "(top folder)"
        pen.text((left + 34, y), name if len(name) <= 24 else name[:23] + "…", fill=(40, 40, 40), font=font)


def class_colours(labels: Sequence[str]) -> dict[str, tuple[int, int, int]]:
    """Distinct, stable colours: hues spaced by the golden ratio in sorted class order."""
    colours = {}
    for number, label in enumerate(sorted(set(labels))):
        r, g, b = colorsys.hsv_to_rgb((number * 0.618033988749895) % 1.0, 0.75, 0.9)
        colours[label] = (int(r * 255), int(g * 255), int(b * 255))
    return colours


def draw(
    gallery_map: GalleryMap, picture_of: Callable[[SearchResult, tuple[int, int]], Image.Image | None]
) -> tuple[Image.Image, Points]:
    """The map as an image, and where each point landed on it; ``picture_of(member, size)``
    gives a member's small picture (from the thumbnails), or ``None``."""
    width, height = SIZE
    canvas = Image.new("RGB", (width + LEGEND_WIDTH, height), (250, 250, 250))
    pen = ImageDraw.Draw(canvas)
    inner = np.array([width - 2 * MARGIN, height - 2 * MARGIN], dtype=np.float64)
    xy = MARGIN + gallery_map.points * inner
    colours = class_colours([m.label for m in gallery_map.members])
    for (x, y), member in zip(xy, gallery_map.members, strict=True):
        pen.ellipse((x - 3, y - 3, x + 3, y + 3), fill=colours[member.label])
    # One thumbnail per occupied grid cell: the image nearest the cell's centre.
    cell = inner / np.array(CELLS)
    index = np.floor((xy - MARGIN) / cell).clip(0, np.array(CELLS) - 1).astype(int)
    best: dict[tuple[int, int], tuple[float, int]] = {}
    for row, (cx, cy) in enumerate(index.tolist()):
        centre = MARGIN + (np.array([cx, cy]) + 0.5) * cell
        distance = float(np.sum((xy[row] - centre) ** 2))
        if (cx, cy) not in best or distance < best[(cx, cy)][0]:
            best[(cx, cy)] = (distance, row)
    for _, row in best.values():
        member = gallery_map.members[row]
        picture = picture_of(member, (THUMB, THUMB))
        if picture is None:
            continue
        x, y = xy[row]
        box = (int(x - THUMB / 2), int(y - THUMB / 2))
        pen.rectangle((box[0] - 2, box[1] - 2, box[0] + picture.width + 1, box[1] + picture.height + 1),
                      fill=colours[member.label])
        canvas.paste(picture, box)
    legend(pen, colours, width)
    points = [(float(x), float(y), member) for (x, y), member in zip(xy, gallery_map.members, strict=True)]
    return canvas, points


def nearest(points: Points, x: float, y: float) -> SearchResult | None:
    """The point nearest the click at (x, y), in the drawn image's pixels."""
    if not points:
        return None
    where = np.array([(px, py) for px, py, _ in points])
    return points[int(np.argmin(((where - np.array([x, y])) ** 2).sum(axis=1)))][2]


def describe_map(gallery_map: GalleryMap, title: str, seconds: float) -> str:
    classes = len({m.label for m in gallery_map.members})
    text = (
        f"{count(len(gallery_map.members), 'image')} of {title}'s index, {count(classes, 'colour')} "
        "(one per class or folder), "
        f"laid out by {gallery_map.method} in {seconds:.1f} s: images the engine finds similar lie close together."
    )
    if gallery_map.sampled:
        text += f" The index holds {gallery_map.total} images; a random {len(gallery_map.members)} are mapped."
    return text + " Click a point to see its image."
