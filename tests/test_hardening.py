"""Hostile galleries, crashes mid-index and stale caches, against every engine."""

from __future__ import annotations

import builtins
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import engines.storage.cache
import engines.storage.chroma_db
from engines import Text, create_engine, list_image_files
from engines.testing import make_gallery, make_image

ENGINES = ["pixel", "clip", "chroma"]


def options(name: str, tiny_clip: str, tmp_path: Path) -> dict[str, object]:
    if name == "pixel":
        return {}
    if name == "clip":
        return {"model": tiny_clip, "batch_size": 2}
    return {"model": tiny_clip, "batch_size": 2, "path": str(tmp_path / "chroma")}


def write_hostile_gallery(root: Path) -> tuple[set[str], set[str]]:
    """Readable images of every awkward kind, broken files of every kind, and ignorable clutter.

    Returns (paths that must be indexed, paths that must be skipped).
    """
    good_dir, bad_dir = root / "good ünï", root / "bad"
    good_dir.mkdir(parents=True)
    bad_dir.mkdir()
    (root / "empty class").mkdir()
    base = make_image((200, 60, 60), 1, (40, 30))
    good: list[Path] = []

    def keep(name: str, image: Image.Image, **save: object) -> None:
        path = good_dir / name
        image.save(path, **save)
        good.append(path)

    keep("plain photo.jpg", base)
    keep("cmyk.jpg", base.convert("CMYK"))
    keep("deep 16-bit.png", Image.fromarray(np.full((20, 20), 40000, dtype=np.uint16)))
    keep("one-bit.png", base.convert("1"))
    palette = base.convert("P")
    keep("palette-transparent.png", palette, transparency=0)
    keep("animated.gif", base, save_all=True, append_images=[base.rotate(90)])
    exif = Image.Exif()
    exif[0x0112] = 6
    keep("rotated.jpg", base, exif=exif)
    keep("tiny 1x1.png", Image.new("RGB", (1, 1), (9, 9, 9)))
    keep("panorama.png", Image.new("RGB", (20000, 50), (10, 120, 200)))

    bad: list[Path] = []

    def broken(name: str, payload: bytes) -> None:
        (bad_dir / name).write_bytes(payload)
        bad.append(bad_dir / name)

    broken("zero.jpg", b"")
    broken("text.jpg", b"just some text, not a JPEG")
    for fmt, ext in (("JPEG", "jpg"), ("PNG", "png")):
        buffer = io.BytesIO()
        make_image((1, 2, 3), 5, (64, 64)).save(buffer, fmt)
        broken(f"truncated.{ext}", buffer.getvalue()[: len(buffer.getvalue()) // 2])
    bomb = bad_dir / "bomb.png"
    Image.new("L", (2000, 1000)).save(bomb)  # over the test's pixel limit, set below
    bad.append(bomb)
    os.symlink(bad_dir / "gone.png", bad_dir / "dangling.png")
    os.symlink(bad_dir / "loop.png", bad_dir / "loop.png")
    bad += [bad_dir / "dangling.png", bad_dir / "loop.png"]
    locked = bad_dir / "locked.png"
    base.save(locked)
    locked.chmod(0)
    bad.append(locked)

    base.save(good_dir / ".hidden.png")
    (good_dir / "notes.txt").write_text("not an image")
    (good_dir / "Thumbs.db").write_bytes(b"\0\1")
    return {str(p) for p in good}, {str(p) for p in bad}


@pytest.fixture()
def hostile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, set[str], set[str]]:
    root = tmp_path / "hostile"
    good, bad = write_hostile_gallery(root)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_500_000)  # the 2-megapixel bomb is over, the panorama under
    locked = next(p for p in bad if p.endswith("locked.png"))
    if os.geteuid() == 0:
        # root reads a chmod-000 file anyway; make the OS answer what it answers anyone else.
        real_open = builtins.open

        def guarded_open(file, *args, **kwargs):  # type: ignore[no-untyped-def]
            if str(file) == locked:
                raise PermissionError(13, "Permission denied", str(file))
            return real_open(file, *args, **kwargs)

        monkeypatch.setattr(builtins, "open", guarded_open)
    return root, good, bad


@pytest.mark.parametrize("name", ENGINES)
def test_hostile_gallery_keeps_every_readable_image(
    name: str, hostile: tuple[Path, set[str], set[str]], tiny_clip: str, tmp_path: Path
) -> None:
    root, good, bad = hostile
    engine = create_engine(name, **options(name, tiny_clip, tmp_path))
    files = list_image_files(root)
    assert set(files) == good | bad  # hidden and non-image files are never even listed
    assert engine.index(files, progress=False) == len(good)
    reasons = {s.source: s.reason for s in engine.skipped}
    assert set(reasons) == bad and all(reasons.values())
    assert "decompression bomb" in reasons[str(root / "bad" / "bomb.png")]
    assert "ermission" in reasons[str(root / "bad" / "locked.png")]
    assert {r.path for r in engine.search(Image.new("RGB", (5, 5)), k=100)} == good


@pytest.mark.parametrize("name", ["pixel", "clip"])
def test_constant_colour_queries_score_finitely(name: str, tiny_clip: str, tmp_path: Path, gallery: Path) -> None:
    # Zero-variance images on both sides: black and grey gallery images, black and grey queries.
    for n, colour in enumerate([(0, 0, 0), (128, 128, 128)]):
        Image.new("RGB", (16, 16), colour).save(gallery / "train" / "red" / f"constant {n}.png")
    engine = create_engine(name, **options(name, tiny_clip, tmp_path))
    engine.index(gallery / "train", progress=False)
    for metric in engine.metrics:
        for colour in ((0, 0, 0), (128, 128, 128)):
            scores = [r.score for r in engine.search(Image.new("RGB", (30, 30), colour), k=18, metric=metric)]
            assert len(scores) == 18 and np.isfinite(scores).all()


KILLER = """
import os, signal
import engines.storage.cache, engines.pipeline
from chromadb.api.models.Collection import Collection
engines.pipeline.FLUSH_EVERY = 4
writes = 0
def die_after_second_write(original):
    def write(*args, **kwargs):
        global writes
        result = original(*args, **kwargs)
        writes += 1
        if writes == 2:  # mid-index: 8 vectors stored, the rest not yet computed
            os.kill(os.getpid(), signal.SIGKILL)
        return result
    return write
# the engine's own store: the vector cache, or the collection (Chroma also fills the CLIP cache)
if {name!r} == "chroma":
    Collection.upsert = die_after_second_write(Collection.upsert)
else:
    engines.storage.cache.VectorCache.append = die_after_second_write(engines.storage.cache.VectorCache.append)
from engines import create_engine
create_engine({name!r}, **{options!r}).index({folder!r}, progress=False)
print("finished without being killed")
"""


@pytest.mark.parametrize("name", ENGINES)
def test_sigkill_mid_index_then_restart_embeds_only_what_is_missing(
    name: str, tiny_clip: str, tmp_path: Path
) -> None:
    from engines.testing import make_gallery

    folder = make_gallery(tmp_path / "g", per_class=6) / "train"
    total = len(list_image_files(folder))
    opts = options(name, tiny_clip, tmp_path)
    script = KILLER.format(name=name, options=opts, folder=str(folder))
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=os.environ)
    assert run.returncode == -9, run.stdout + run.stderr

    restarted = create_engine(name, **opts)
    assert len(restarted) == 0  # nothing half-built is taken for a finished index
    assert restarted.index(folder, progress=False) == total
    assert restarted.last_computed == total - 8  # the killed run's stored work was kept
    paths = [r.path for r in restarted.search(Text("red"), k=1000)] if name != "pixel" else [
        r.path for r in restarted.search(list_image_files(folder)[0], k=1000)
    ]
    assert len(paths) == len(set(paths)) == total  # no duplicates
    again = create_engine(name, **opts)
    again.index(folder, progress=False)
    assert again.last_computed == 0


def test_half_written_and_damaged_cache_files_are_ignored(gallery: Path, _isolated_cache: Path) -> None:
    engine = create_engine("pixel")
    engine.index(gallery / "train", progress=False)
    (folder,) = [p for p in (_isolated_cache / "pixel").iterdir()]
    (folder / ".tmp-abc.npz").write_bytes(b"half a file")  # a write cut short by a crash
    (folder / "shard-damaged.npz").write_bytes(b"garbage")
    again = create_engine("pixel")
    assert again.index(gallery / "train", progress=False) == 16 and again.last_computed == 0


def test_a_cache_from_an_older_format_is_not_read(gallery: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    create_engine("pixel").index(gallery / "train", progress=False)
    monkeypatch.setattr(engines.storage.cache, "CACHE_FORMAT", engines.storage.cache.CACHE_FORMAT + 1)
    newer = create_engine("pixel")
    newer.index(gallery / "train", progress=False)
    assert newer.last_computed == 16


def test_a_collection_from_an_older_format_is_rebuilt(
    tiny_clip: str, tmp_path: Path, gallery: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opts = options("chroma", tiny_clip, tmp_path)
    create_engine("chroma", **opts).index(gallery / "train", progress=False)
    monkeypatch.setattr(engines.storage.chroma_db, "COLLECTION_FORMAT", engines.storage.chroma_db.COLLECTION_FORMAT + 1)
    newer = create_engine("chroma", **opts)
    assert len(newer) == 0  # not misread as current
    # rebuilt from the CLIP cache's vectors of this model: nothing embedded again
    assert newer.index(gallery / "train", progress=False) == 16 and newer.last_computed == 0
    assert newer._collections().open("cosine", create=False).metadata["format"] == engines.storage.chroma_db.COLLECTION_FORMAT


def test_a_cache_written_before_alignment_is_read_and_rewritten(gallery: Path, _isolated_cache: Path) -> None:
    from engines.storage.cache import _mapped

    create_engine("pixel").index(gallery / "train", progress=False)
    (folder,) = list((_isolated_cache / "pixel").iterdir())
    (shard,) = list(folder.glob("shard-*.npz"))
    with np.load(shard) as data:
        keys, vectors = data["keys"], data["vectors"]
    shard.unlink()
    np.savez(folder / "shard-old.npz", keys=keys, vectors=vectors)  # as the previous version wrote it
    again = create_engine("pixel")
    assert again.index(gallery / "train", progress=False) == 16 and again.last_computed == 0
    (rewritten,) = list(folder.glob("shard-*.npz"))
    assert rewritten.name != "shard-old.npz"
    mapped = _mapped(rewritten, "vectors")
    assert mapped is not None and mapped.flags.aligned and np.array_equal(mapped, vectors)


def test_sound_hnsw_files_pass_the_check_and_damaged_ones_do_not(tmp_path: Path, tiny_clip: str) -> None:
    import struct

    import engines.storage.chroma_db as chroma_db
    from engines.storage.hnsw_check import hnsw_problem

    saved = dict(chroma_db.HNSW_SETTINGS)
    chroma_db.HNSW_SETTINGS.update(batch_size=10, sync_threshold=10)
    try:
        gallery = make_gallery(tmp_path / "g", per_class=12) / "train"
        create_engine("chroma", model=tiny_clip, path=str(tmp_path / "db")).index(gallery, progress=False)
    finally:
        chroma_db.HNSW_SETTINGS.clear()
        chroma_db.HNSW_SETTINGS.update(saved)
    segment = next((tmp_path / "db").glob("*/header.bin")).parent
    assert hnsw_problem(segment) is None  # the positive control: files Chroma wrote
    header = bytearray((segment / "header.bin").read_bytes())
    header[12:20] = struct.pack("<Q", 1)  # max elements below the count
    (segment / "header.bin").write_bytes(bytes(header))
    assert "sizes do not hold together" in (hnsw_problem(segment) or "")
