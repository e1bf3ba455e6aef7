"""Indexes that travel: an indexed gallery written as a ``datasets`` dataset, and read back.

The dataset holds the images themselves (so results show where the original files are
absent), labels, original paths, content hashes, and each image's vector with the identity
of what made it (engine, model, backend, precision). ``load_gallery`` on it hands the
vectors to the engines with the items; an engine with the same identity indexes it without
decoding or embedding anything (``pipeline.run_pipeline``), and another refuses it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..base import SearchEngine
from ..errors import EmptyIndexError, GalleryError
from ..galleries.images import open_regular
from ..galleries.sources import HubSource, parse_source
from ..results import GalleryVectors, printable


def export_index(engine: SearchEngine, target: str | Path, *, overwrite: bool = False) -> str:
    """Write ``engine``'s index as a ``datasets`` dataset: images, labels, paths, content hashes
    and vectors, with the engine's identity. ``target`` is a folder (refused if it exists,
    unless ``overwrite``) or a Hub dataset id (``owner/name``, pushed with your token).
    ``load_gallery(target)`` reads it back; indexing that with an engine of the same identity
    reuses the vectors. Returns where it was written."""
    if len(engine) == 0:
        raise EmptyIndexError(engine.name)
    return write_index(engine.vectors(), target, overwrite=overwrite, engine=engine.name,
                       details=engine.export_details())


def write_index(
    vectors: GalleryVectors, target: str | Path, *, overwrite: bool = False, engine: str = "",
    details: dict[str, str] | None = None, with_images: bool = True, relative_to: Path | None = None,
) -> str:
    """Write ``vectors`` (with their images and identity) to ``target``: a folder, or a Hub
    dataset id. Returns where. ``with_images=False``: vectors, hashes and paths only (paths
    ``relative_to`` the gallery folder), to ship beside the folder the images are in (``ship_vectors``)."""
    import datasets

    if vectors.identity is None:
        raise ValueError("Expected vectors with their identity (engine.vectors())")
    identity = vectors.identity.to_json()
    dim = int(vectors.matrix.shape[1])
    features = datasets.Features({
        **({"image": datasets.Image()} if with_images else {}),
        "label": datasets.Value("string"),
        "path": datasets.Value("string"),
        "content_hash": datasets.Value("string"),
        "vector": datasets.Sequence(datasets.Value("float32"), length=dim),
        "index_identity": datasets.Value("string"),
    })
    where = parse_source(target, purpose="target")
    hub = isinstance(where, HubSource)
    folder = None if isinstance(where, HubSource) else Path(where.path).resolve()
    if folder is not None and folder.exists() and not overwrite:
        raise FileExistsError(f"{folder} already exists; choose another folder or ask to overwrite it")

    def rows() -> Iterator[dict[str, Any]]:
        for row, item in enumerate(vectors.items):
            known = vectors.hashes[row] if vectors.hashes else None
            data: bytes | None = item.data
            try:
                if item.path is not None and (with_images or not known):  # shipped vectors with hashes: no read
                    with open_regular(item.checked_path()) as handle:
                        data = handle.read()
            except OSError as exc:
                raise GalleryError(f"Could not read {item.source} to export it: {exc}") from exc
            image = {"bytes": data, "path": printable(os.path.basename(item.path or "")) or None}
            yield {
                **({"image": image} if with_images else {}),
                "label": printable(item.label),
                # Where the image was, as text for people: never opened again (load_gallery reads the bytes).
                "path": printable(os.path.relpath(item.path, relative_to) if relative_to and item.path
                                  else item.path or ""),
                # The bytes are in hand: hash them rather than read the file a second time.
                "content_hash": known or hashlib.sha256(data or b"").hexdigest(),
                "vector": vectors.matrix[row].tolist(),
                "index_identity": identity,
            }

    _remove_stale_scratch()
    with tempfile.TemporaryDirectory(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-") as scratch:
        dataset = datasets.Dataset.from_generator(rows, features=features, cache_dir=scratch)
        dataset.info.description = f"An image-search index: {identity}"
        card = _card(identity, len(vectors.items), dim, engine, details or {}, with_images)
        if hub:
            from huggingface_hub import DatasetCard  # noqa: PLC0415

            dataset.push_to_hub(str(target))
            DatasetCard(card).push_to_hub(str(target), repo_type="dataset")
            return str(target)
        assert folder is not None
        staging = folder.with_name(folder.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        dataset.save_to_disk(str(staging))
        (staging / "README.md").write_text(card)
        if folder.exists():
            shutil.rmtree(folder)
        staging.rename(folder)  # a reader never sees half an export
    return str(folder)


#: Scratch folders of exports are named with this and the process id, so that one left by a
#: process killed mid-export is recognised and removed by the next export.
SCRATCH_PREFIX = "image-search-export-"


def _remove_stale_scratch() -> None:
    for folder in Path(tempfile.gettempdir()).glob(f"{SCRATCH_PREFIX}*"):
        pid = folder.name[len(SCRATCH_PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def _card(identity: str, count: int, dim: int, engine: str, details: dict[str, str], with_images: bool) -> str:
    pretty = json.dumps(json.loads(identity), indent=2, sort_keys=True)
    made = "".join(f"- {key}: {value}\n" for key, value in details.items())
    use = ("Load it with `engines.load_gallery(<this folder or Hub id>)` and index it" if with_images else
           "No images: these vectors ship beside the folder they were made from (`index --ship`); "
           "`load_gallery(<that folder>)` hands them to the files whose bytes they were made from. Index it")
    return (
        f"# Image-search index\n\n{count} images with their {dim}-dimensional vectors, exported by the "
        f"{engine or 'image-search'} engine. {use} "
        "with an engine of the same identity: the stored vectors are used, nothing is embedded.\n\n"
        f"{made}\nVector identity (also in every row's `index_identity`):\n\n```json\n{pretty}\n```\n"
    )


def ship_vectors(engine: SearchEngine, folder: str | Path) -> str:
    """Write ``engine``'s vectors beside the folder gallery they were made from
    (``<folder>/.image-search-index``, vectors and content hashes, no images), so that a fresh
    copy of the folder (a Space's repository) is indexed by that model without embedding."""
    from ..galleries.shipped import SHIPPED

    if len(engine) == 0:
        raise EmptyIndexError(engine.name)
    if not os.path.isdir(folder):
        raise GalleryError(f"Vectors ship beside a folder gallery; {folder} is not a folder")
    return write_index(engine.vectors(), Path(folder) / SHIPPED, overwrite=True, engine=engine.name,
                       details=engine.export_details(), with_images=False, relative_to=Path(folder))
