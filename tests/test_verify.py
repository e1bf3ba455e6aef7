"""Verified near duplicates: candidates from the vectors, confirmed by local features and one geometry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

from engines import create_engine
from engines.analysis.local_features import LocalFeatures
from engines.analysis.verify import MIN_INLIERS, Features, match
from engines.galleries.items import GalleryItem

pytest.importorskip("cv2", reason="verification needs opencv-python-headless (requirements.txt)")


def scene(seed: int, size: tuple[int, int] = (640, 480)) -> Image.Image:
    """A photo-like picture with corners and texture: shapes on a gradient."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 1, size[0])[None, :, None]
    y = np.linspace(0, 1, size[1])[:, None, None]
    base = (60 + 120 * x + 60 * y) * np.array([1.0, 0.8, 0.6]) + rng.normal(0, 6, (size[1], size[0], 3))
    picture = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    pen = ImageDraw.Draw(picture)
    for _ in range(60):
        x0, y0 = rng.integers(0, size[0] - 40), rng.integers(0, size[1] - 40)
        w, h = rng.integers(10, 80, size=2)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (pen.rectangle if rng.random() < 0.5 else pen.ellipse)((x0, y0, x0 + w, y0 + h), fill=colour)
    return picture


def edited_set(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True)
    original = scene(1)
    width, height = original.size
    crop = original.crop((int(width * 0.1), int(height * 0.1), int(width * 0.9), int(height * 0.9))).resize(original.size)
    turned = ImageEnhance.Brightness(original.rotate(8, resample=Image.Resampling.BICUBIC, expand=False)).enhance(1.3)
    pictures = {
        "original.jpg": original, "cropped.jpg": crop, "turned.jpg": turned,
        "small.jpg": original.resize((160, 120)), "mirrored.jpg": original.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
        "other.jpg": scene(2), "another.jpg": scene(3),
    }
    paths = {}
    for name, picture in pictures.items():
        paths[name] = folder / name
        picture.save(paths[name], quality=60 if name == "small.jpg" else 90)
    return paths


def test_edited_copies_verify_and_distinct_scenes_or_a_mirror_do_not(tmp_path: Path) -> None:
    paths = edited_set(tmp_path / "photos")
    features = LocalFeatures(tmp_path / "cache")
    found = {name: features.of(GalleryItem("", str(path))) for name, path in paths.items()}
    for edit in ("cropped.jpg", "turned.jpg", "small.jpg"):
        got = match(found["original.jpg"], found[edit])
        assert got is not None and got.inliers >= MIN_INLIERS, edit
    for other in ("other.jpg", "another.jpg", "mirrored.jpg"):
        assert match(found["original.jpg"], found[other]) is None, other
    assert len(list((tmp_path / "cache" / "local-features").rglob("*.npz"))) == len(paths)  # kept for next time


def test_duplicates_are_verified_by_default_and_say_how_they_were_decided(tmp_path: Path) -> None:
    paths = edited_set(tmp_path / "photos")
    engine = create_engine("pixel", cache_dir=str(tmp_path / "cache"))
    engine.index(str(tmp_path / "photos"), progress=False)
    loose = engine.candidate_threshold()
    assert loose > engine.duplicate_threshold()  # l1: candidates come from further away
    groups = engine.duplicates()
    near = [g for g in groups if g.kind == "near"]
    assert len(near) == 1, [[Path(m.path or "").name for m in g.members] for g in groups]
    names = {Path(m.path or "").name for m in near[0].members}
    assert {"original.jpg"} < names <= {"original.jpg", "cropped.jpg", "turned.jpg", "small.jpg"}
    assert not names & {"mirrored.jpg", "other.jpg", "another.jpg"}
    assert near[0].inliers is not None and near[0].inliers >= MIN_INLIERS
    assert near[0].decided.startswith("the same photo")
    assert {"cropped.jpg", "turned.jpg"} <= names  # edits that move pixels far are found by their features
    # The vectors alone, at their default threshold, miss those edits.
    unverified = engine.duplicates(verify=False)
    members = {Path(m.path or "").name for g in unverified for m in g.members}
    assert not members & {"cropped.jpg", "turned.jpg"}
    assert all(g.inliers is None and g.decided == "close vectors" for g in unverified if g.kind == "near")
    assert paths  # the files stay: nothing is deleted or moved
    assert all(path.exists() for path in paths.values())


def test_keep_one_proposes_the_largest_then_oldest_and_writes_a_script_that_moves_the_others(tmp_path: Path) -> None:
    import csv
    import subprocess

    from ui import duplicates_tab
    from ui.config import AppConfig
    from ui.service import SearchService

    paths = edited_set(tmp_path / "photos")
    big = Image.open(paths["original.jpg"]).resize((1280, 960))
    big.save(tmp_path / "photos" / "large.jpg", quality=90)  # the most pixels: kept, though newest
    service = SearchService(AppConfig(data=str(tmp_path / "photos"), cache_dir=str(tmp_path / "cache")))
    found = duplicates_tab.find(service, str(tmp_path / "photos"), "pixel", {"features": "pixels"}, "l1", None)
    tiles, groups = found["thumbs"], found["found"]
    near = [g for g in groups if g.kind == "near"]
    assert near and near[0].decided.startswith("the same photo")
    # The page: the copy to keep first, each other one with its edit and its matched part outlined.
    shown = [(picture, text) for picture, text in tiles if text.startswith("group 1 ·")]
    assert "the copy to keep" in shown[0][1] and "large.jpg" in shown[0][1]
    assert any("cropped" in text for _, text in shown) and any("rotated" in text for _, text in shown)
    for picture, _ in shown:
        assert service.thumbnails.handed_out(picture) and "-" in Path(picture).stem  # an outlined copy
    crop_tile = next(picture for picture, text in shown if "cropped" in text)
    pixels = np.asarray(Image.open(crop_tile).convert("RGB"))
    assert (np.abs(pixels[2, pixels.shape[1] // 2].astype(int) - (255, 210, 0)) < 60).all()  # the outline's edge
    plan = duplicates_tab.keep_one(service, groups, str(tmp_path / "review"))
    table, script, line = plan["plan_csv"], plan["plan_script"], plan["plan_line"]
    with open(table, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows and {Path(row["keep"]).name for row in rows} == {"large.jpg"}
    moved = {Path(row["move"]).name for row in rows}
    assert "large.jpg" not in moved and not moved & {"other.jpg", "another.jpg", "mirrored.jpg"}
    assert "file" in line and all((tmp_path / "photos" / name).exists() for name in moved)  # nothing moved yet
    subprocess.run(["bash", script], check=True, cwd=tmp_path)
    assert {p.name for p in (tmp_path / "review").iterdir()} == moved
    assert (tmp_path / "photos" / "large.jpg").exists()


def test_a_match_says_which_part_of_each_picture_the_other_shows_and_how_it_was_edited(tmp_path: Path) -> None:
    paths = edited_set(tmp_path / "photos")
    original = Image.open(paths["original.jpg"])
    framed = Image.new("RGB", (original.width + 160, original.height + 240), (235, 235, 235))
    framed.paste(original, (80, 160))  # a screenshot: the photo inside borders
    framed.save(tmp_path / "photos" / "framed.jpg", quality=90)
    features = LocalFeatures(None)
    of = {name: features.of(GalleryItem("", str(tmp_path / "photos" / name)))
          for name in ("original.jpg", "cropped.jpg", "turned.jpg", "small.jpg", "framed.jpg")}

    cropped = match(of["original.jpg"], of["cropped.jpg"])
    assert cropped is not None and cropped.edit() == "cropped"
    assert np.allclose(cropped.shown_in_a, (0.1, 0.1, 0.9, 0.9), atol=0.03)  # the crop window, in the original
    assert np.allclose(cropped.shown_in_b, (0, 0, 1, 1), atol=0.02)
    assert cropped.scale == pytest.approx(1.25, rel=0.05)
    seen_back = cropped.swapped()
    assert seen_back.shown_in_b == cropped.shown_in_a and "more around it" in seen_back.edit()

    framed_match = match(of["original.jpg"], of["framed.jpg"])
    assert framed_match is not None and "more around it" in framed_match.edit()
    width, height = framed.size
    expected = (80 / width, 160 / height, (80 + original.width) / width, (160 + original.height) / height)
    assert np.allclose(framed_match.shown_in_b, expected, atol=0.03)

    turned = match(of["original.jpg"], of["turned.jpg"])
    assert turned is not None and "rotated 8°" in turned.edit() and abs(turned.angle) == pytest.approx(8, abs=1)
    small = match(of["original.jpg"], of["small.jpg"])
    assert small is not None and small.edit() == "resized, re-encoded or retouched"


def test_a_verified_group_carries_each_members_region_and_edit(tmp_path: Path) -> None:
    edited_set(tmp_path / "photos")
    engine = create_engine("pixel", cache_dir=str(tmp_path / "cache"))
    engine.index(str(tmp_path / "photos"), progress=False)
    near = [g for g in engine.duplicates() if g.kind == "near"][0]
    assert near.regions is not None and near.edits is not None
    assert len(near.regions) == len(near.edits) == len(near.members)
    by_name = {Path(m.path or "").name: (region, edit) for m, region, edit in zip(near.members, near.regions,
                                                                                  near.edits, strict=True)}
    region, edit = by_name["cropped.jpg"]
    assert edit == "cropped" and region is not None and np.allclose(region, (0, 0, 1, 1), atol=0.02)
    assert by_name["original.jpg"][1] == "" and by_name["original.jpg"][0] is not None
    assert "cropped" in near.decided and "rotated" in near.decided
    from ui.api import _verified_members  # what the API and MCP tools answer

    listed = _verified_members([{"file": m.path} for m in near.members], near)
    assert {Path(m["file"]).name: m["edit"] for m in listed}["cropped.jpg"] == "cropped"
    assert all(m["region"] is None or len(m["region"]) == 4 for m in listed)


def test_a_shot_in_which_a_third_changed_is_another_photo_though_its_keypoints_agree(tmp_path: Path) -> None:
    from engines.analysis.matches import MAX_CHANGED
    from engines.analysis.verify import PairVerifier

    folder = tmp_path / "photos"
    folder.mkdir()
    original = scene(1)
    width, height = original.size
    burst = original.copy()  # the camera on a tripod; the subject moved, over a third of the frame
    subject = scene(7).resize((width // 2, int(height / 1.5))).rotate(180).filter(ImageFilter.GaussianBlur(4))
    burst.paste(subject, (width // 3, height // 5))
    captioned = original.copy()
    ImageDraw.Draw(captioned).rectangle((0, height - height // 8, width, height), fill=(0, 0, 0))
    for name, picture in {"original.jpg": original, "burst.jpg": burst, "captioned.jpg": captioned}.items():
        picture.save(folder / name, quality=90)
    items = [GalleryItem("", str(folder / name)) for name in ("original.jpg", "burst.jpg", "captioned.jpg")]
    features = LocalFeatures(None)
    assert match(features.of(items[0]), features.of(items[1])) is not None  # the geometry alone accepts it
    found = PairVerifier(items, features)([(0, 1), (0, 2)])
    assert (0, 1) not in found
    caption = found[(0, 2)]
    assert caption.changed is not None and 0.05 <= caption.changed <= MAX_CHANGED
    assert "painted over" in caption.edit()


def test_a_screenshot_far_from_its_photo_in_the_vectors_is_found_by_shared_keypoints(tmp_path: Path) -> None:
    from engines.analysis.shared_keypoints import keypoint_pairs

    folder = tmp_path / "photos"
    folder.mkdir()
    original = scene(1)
    shot = Image.new("RGB", (original.width + 200, original.height + 300), (240, 240, 240))
    ImageDraw.Draw(shot).rectangle((0, 0, shot.width, 60), fill=(50, 50, 60))  # a title bar
    shot.paste(original, (100, 120))
    pictures = {"original.jpg": original, "screenshot.jpg": shot, **{f"other{n}.jpg": scene(10 + n) for n in range(6)}}
    for name, picture in pictures.items():
        picture.save(folder / name, quality=90)
    names = sorted(pictures)
    features = LocalFeatures(None)
    pairs = {tuple(pair) for pair in keypoint_pairs([features.of(GalleryItem("", str(folder / n))) for n in names])}
    assert (names.index("original.jpg"), names.index("screenshot.jpg")) in pairs
    # (These drawn scenes share plain corners, so they are candidates too: verification turns them away.)

    engine = create_engine("pixel", cache_dir=str(tmp_path / "cache"))  # raw pixels: the borders move them far
    engine.index(str(folder), progress=False)
    near = [g for g in engine.duplicates() if g.kind == "near"]
    assert [sorted(Path(m.path or "").name for m in g.members) for g in near] == [["original.jpg", "screenshot.jpg"]]
    assert "more around it" in near[0].edits[1] or "cropped" in near[0].edits[1]  # type: ignore[index]


def test_a_copy_with_a_bold_caption_passes_the_quick_check(tmp_path: Path) -> None:
    """A caption's letters are the strongest corners of a picture: strongest-first keypoints put
    the quick check's 200 all on them, and the copy was turned away before the full check."""
    from PIL import ImageFont

    from engines.analysis.verify import GRID, QUICK_KEYPOINTS, compute_features

    faces = Path(__file__).parent / "data" / "faces"  # real photos (SOURCE.md there)
    photo = Image.open(faces / "biden-2.jpg").convert("RGB")
    w, h = photo.size
    captioned = photo.copy()
    pen = ImageDraw.Draw(captioned)
    pen.rectangle((0, int(h * 0.82), w, h), fill=(0, 0, 0))  # a bar over 18% of the photo
    pen.text((int(w * 0.03), int(h * 0.84)), "SUMMER 2023 WITH LOVE", fill=(255, 255, 255),
             font=ImageFont.load_default(size=int(h * 0.12)), stroke_width=2, stroke_fill=(255, 255, 255))
    captioned.save(tmp_path / "captioned.jpg", quality=90)
    original = compute_features(GalleryItem("", str(faces / "biden-2.jpg")))
    copy = compute_features(GalleryItem("", str(tmp_path / "captioned.jpg")))
    assert original is not None and copy is not None
    found = match(original, copy)
    assert found is not None and found.inliers >= MIN_INLIERS
    # The quick check reads keypoints from every part of the picture that has any, not only the caption.
    def cells(xy: np.ndarray) -> set[tuple[int, int]]:
        return {(int(x * GRID), int(y * GRID)) for x, y in np.minimum(xy / np.array(copy.frame), 0.999)}

    assert cells(copy.xy[:QUICK_KEYPOINTS]) == cells(copy.xy) and len(cells(copy.xy)) > 4
    # Negative control: another person's photo is not this one.
    assert match(compute_features(GalleryItem("", str(faces / "obama-1.jpg"))), copy) is None


def reference_pairs(features: list[Features | None]) -> set[tuple[int, int]]:
    """The shared-keypoint pairs by the definition, with dictionaries: the streamed version's yardstick."""
    from collections import Counter
    from itertools import combinations

    from engines.analysis import shared_keypoints as sk

    buckets: dict[tuple[int, int], set[int]] = {}
    for row, found in enumerate(features):
        if found is None or not len(found.descriptors):
            continue
        bits = np.unpackbits(found.descriptors[: sk.STRONGEST], axis=1)
        for table in range(sk.TABLES):
            for key in bits[:, sk._POSITIONS[table]].astype(np.int64) @ sk._WEIGHTS:
                buckets.setdefault((table, int(key)), set()).add(row)
    shared: Counter[tuple[int, int]] = Counter()
    for owners in buckets.values():
        if 2 <= len(owners) <= sk.MAX_BUCKET:
            shared.update(combinations(sorted(owners), 2))
    return {pair for pair, times in shared.items() if times >= sk.MIN_SHARED}


def test_shared_keypoint_pairs_streamed_in_chunks_and_slices_are_those_of_the_definition(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from engines.analysis import shared_keypoints as sk

    rng = np.random.default_rng(3)
    originals = [rng.integers(0, 256, (200, 32), dtype=np.uint8) for _ in range(60)]
    features: list[Features | None] = []
    for n in range(300):
        if n < 60:
            descriptors = originals[n]
        elif n < 120:  # a copy: most descriptors kept, a few bits flipped, another order
            descriptors = originals[n - 60][rng.permutation(200)[:170]].copy()
            descriptors[rng.random(descriptors.shape) < 0.02] ^= 1
        elif n % 40 == 0:
            features.append(None)  # unreadable
            continue
        else:
            descriptors = rng.integers(0, 256, (int(rng.integers(0, 220)), 32), dtype=np.uint8)
        features.append(Features(np.zeros((len(descriptors), 2), np.float32), descriptors, (1.0, 1.0)))
    expected = reference_pairs(features)
    assert len(expected & {(n, n + 60) for n in range(60)}) >= 55  # the copies are there to be found
    asked: list[int] = []

    def features_of(chunk: list[int]) -> list[Features | None]:
        asked.append(len(chunk))
        return [features[row] for row in chunk]

    monkeypatch.setattr(sk, "CHUNK", 32)
    monkeypatch.setattr(sk, "SLICE", 500)  # many slices: no bucket may be split between two
    found = sk.streamed_pairs(features_of, range(len(features)))
    assert {tuple(pair) for pair in found.tolist()} == expected
    assert max(asked) == 32 and sum(asked) == len(features)  # never more than a chunk at once
    rows = list(range(0, 300, 2))  # only these take part: the others' descriptors fill no bucket
    only = reference_pairs([found if row % 2 == 0 else None for row, found in enumerate(features)])
    assert {tuple(pair) for pair in sk.keypoint_pairs(features, rows).tolist()} == only


def test_the_sorting_files_go_under_the_cache_and_a_killed_runs_are_swept(tmp_path: Path) -> None:
    import os
    import time

    from engines.analysis import shared_keypoints as sk

    scratch = tmp_path / "cache" / "scratch"
    killed, running = scratch / f"{sk.PREFIX}old", scratch / f"{sk.PREFIX}new"
    for folder in (killed, running):
        folder.mkdir(parents=True)
        (folder / "table-0.u32").write_bytes(b"\0" * 8)
    day_ago = time.time() - sk.KILLED_AFTER_S - 60
    os.utime(killed, (day_ago, day_ago))
    seen: list[Path] = []
    rng = np.random.default_rng(1)
    shared = rng.integers(0, 256, (200, 32), dtype=np.uint8)
    features = [Features(np.zeros((200, 2), np.float32), shared, (1.0, 1.0)) for _ in range(2)]

    def features_of(chunk: list[int]) -> list[Features | None]:
        seen.extend(p for p in scratch.iterdir() if p not in (killed, running))
        return [features[row] for row in chunk]

    pairs = sk.streamed_pairs(features_of, [0, 1], scratch)
    assert pairs.tolist() == [[0, 1]]
    assert len(seen) == 1 and not seen[0].exists()  # this run's folder, under the cache, gone at its end
    assert not killed.exists() and running.exists()  # a day-old one is a killed run's; a newer one may be running
