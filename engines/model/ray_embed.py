"""CLIP embedding spread over a Ray cluster with Ray Data: for galleries one process is too slow for.

:class:`RayEmbedder` is a :class:`~engines.model.embedder.ClipEmbedder` whose ``embed_items``
runs on an actor pool (one model load per actor) through ``map_batches``; everything else
(queries, identity, the engines' pipeline with its keys, skipping what is stored and
batched writes) is the ordinary one, so an index built this way is the one an in-process
build makes. Only ``python -m engines.index --ray`` imports this module; Ray is optional.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from ..errors import UnreadableImageError
from ..galleries.items import GalleryItem
from ..workspace import Workspace
from .embedder import ClipEmbedder, EmbedderConfig

log = logging.getLogger(__name__)


def start_ray(address: str | None = None, *, num_cpus: int | None = None) -> int:
    """Connect to Ray (``address``: ``auto`` or ``ray://host:port``; ``None``: a local Ray). Returns its CPUs."""
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("--ray needs Ray Data: pip install -r requirements-ray.txt") from exc
    if not ray.is_initialized():
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    return int(ray.cluster_resources().get("CPU", 1))


class _EmbedActor:
    """One embedder per actor, loaded once; a batch of rows in, their vectors (or errors) out."""

    def __init__(self, config: EmbedderConfig) -> None:
        self.embedder = ClipEmbedder(config)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        items = [
            GalleryItem(str(label), str(path) or None, bytes(data) or None, root=str(root) or None)
            for label, path, data, root in zip(batch["label"], batch["path"], batch["data"], batch["root"], strict=True)
        ]
        vectors = np.zeros((len(items), self.embedder.dim), dtype=np.float32)
        errors = []
        for row, outcome in enumerate(self.embedder.embed_items(items)):
            if isinstance(outcome, UnreadableImageError):
                errors.append(outcome.reason)
            else:
                vectors[row] = outcome
                errors.append("")
        return {"row": batch["row"], "vector": vectors, "error": np.array(errors, dtype=object)}


class RayEmbedder(ClipEmbedder):
    """A :class:`ClipEmbedder` whose gallery embedding runs on Ray Data actors.

    ``actors`` defaults to one fewer than the cluster's CPUs (at least one): an actor pool
    that takes every CPU leaves none for Ray Data's read tasks, and the job stalls.
    """

    def __init__(self, config: EmbedderConfig | None = None, *, actors: int | None = None) -> None:
        config = config or EmbedderConfig()
        if config.export_dir is None:  # actors find the exported ONNX graphs where this process does
            config = replace(config, export_dir=str(Workspace.at(None).onnx))
        super().__init__(config)
        self.actors = actors

    def embed_items(self, items: Sequence[GalleryItem]) -> Iterator[np.ndarray | UnreadableImageError]:
        if not items:
            return
        import ray.data

        cpus = start_ray()
        actors = self.actors or max(1, cpus - 1)
        # Actors load the model themselves; loading it here first exports the ONNX graphs
        # once, instead of in every actor at the same time.
        self._load()
        rows = [
            {"row": row, "label": item.label, "path": item.path or "", "data": item.data or b"", "root": item.root or ""}
            for row, item in enumerate(items)
        ]
        dataset = ray.data.from_items(rows, override_num_blocks=max(1, min(len(rows) // self.batch_size, 4 * actors)))
        embedded = dataset.map_batches(
            _EmbedActor, fn_constructor_kwargs={"config": replace(self.config, workers=1)},
            batch_size=self.batch_size, compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=1,
            batch_format="numpy",
        )
        # Batches may finish out of order: hold early ones until the next row in order arrives.
        waiting: dict[int, tuple[np.ndarray, str]] = {}
        following = 0
        for batch in embedded.iter_batches(batch_size=None, batch_format="numpy"):
            for row, vector, error in zip(batch["row"], batch["vector"], batch["error"], strict=True):
                waiting[int(row)] = (vector, str(error))
            while following in waiting:
                vector, error = waiting.pop(following)
                item = items[following]
                yield UnreadableImageError(item.source, error) if error else vector.astype(np.float32)
                following += 1
        if following != len(items):  # pragma: no cover - Ray returned fewer rows than it was given
            raise RuntimeError(f"Ray returned {following} of {len(items)} vectors")


