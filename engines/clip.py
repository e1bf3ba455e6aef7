"""The CLIP engine, and what it shares with the Chroma engine: queries through one embedder
(``UsesEmbedder``), and one embedding per photo per model (``ThroughClipCache``).

The CLIP engine ranks the gallery by CLIP image embeddings, for image or text queries.

Vectors come from the shared :class:`~engines.model.embedder.ClipEmbedder` and are compared with
the same four metrics as the pixel engine. Embeddings are cached on disk per model and per
file content, so re-indexing an unchanged gallery computes nothing.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .analysis.tags import TagRule, TagStore, TagTable, build_table, tag_names
from .base import FeatureVector, Items, Option, SkippedFile
from .deployment import DEFAULT_MODEL, Deployment
from .errors import InvalidQueryError
from .featured import FeaturedEngine
from .filters import Filter
from .galleries.items import GalleryItem
from .metrics import METRICS
from .model.embedder import ClipEmbedder, EmbedderConfig
from .pipeline import FLUSH_EVERY
from .query import Query, SearchQuery, Text
from .results import IndexProgress, Progress, SearchResult, VectorIdentity
from .storage.cache import VectorCache
from .storage.file_facts import ContentHashes
from .vector_engine import VectorEngine
from .workspace import Workspace

#: Held weakly: a model lives while an engine uses it, so an application that drops the
#: engines of a model (the app's least recently picked one) frees its weights too.
_SHARED: weakref.WeakValueDictionary[EmbedderConfig, ClipEmbedder] = weakref.WeakValueDictionary()
_SHARED_LOCK = threading.Lock()


def shared_embedder(config: EmbedderConfig | str = DEFAULT_MODEL) -> ClipEmbedder:
    """The process-wide embedder for ``config`` (or a model id or folder): the CLIP and
    Chroma engines asking for the same settings get the same loaded model, and so exactly
    the same vectors."""
    if isinstance(config, str):
        config = EmbedderConfig(config)
    with _SHARED_LOCK:
        embedder = _SHARED.get(config)
        if embedder is None:
            embedder = _SHARED[config] = ClipEmbedder(config)
        return embedder


def resolve_embedder(embedder: ClipEmbedder | EmbedderConfig | None) -> ClipEmbedder:
    """The embedder an engine is handed: itself, or the shared one for a config (default: the default model)."""
    return embedder if isinstance(embedder, ClipEmbedder) else shared_embedder(embedder or EmbedderConfig())


#: Said before a learned engine's first build counts images.
LOADING_MODEL = "Loading the model (the first time it is also exported to ONNX: up to a minute)…"


class UsesEmbedder(FeaturedEngine):
    """The part of the CLIP and Chroma engines that is the same: queries go through one embedder.

    Subclasses set ``self.embedder`` with :func:`resolve_embedder` in their constructor.
    """

    accepts_text = True
    normalised = True
    #: The photos' tags for the rules kept for this model; ``None`` until asked for, and after an index build.
    _tags: TagTable | None = None
    #: The folders the index's photos were listed from: where its tags are kept (``_tag_key``).
    _tag_scope: str | None = None
    options = (
        Option("model", "Model", (), "", "CLIP, SigLIP or SigLIP 2; each model keeps its own index",
               listed_by_app=True),
    )
    embedder: ClipEmbedder
    cache_dir: Path

    @classmethod
    def deployment_options(cls, deployment: Deployment) -> dict[str, Any]:
        options = {"model": deployment.model, "backend": deployment.backend, "precision": deployment.precision}
        if deployment.cache_dir is not None:
            options["export_dir"] = str(Workspace(deployment.cache_dir).onnx)
        return {**super().deployment_options(deployment), **options}

    def vector_identity(self) -> VectorIdentity:
        # The CLIP and Chroma engines hold the same vectors: one identity for both.
        return VectorIdentity.of("clip", self.embedder.identity())

    def export_details(self) -> dict[str, str]:
        return {"model": self.embedder.model_name, "backend": self.embedder.backend, "precision": self.embedder.precision}

    @property
    def decode_draft(self) -> tuple[int, int]:  # type: ignore[override]
        return self.embedder.decode_size

    def search(self, query: SearchQuery | Query, k: int = 10, metric: str | None = None,
               labels: str | Sequence[str] | None = None, threshold: float | None = None,
               filter: Filter | None = None) -> list[SearchResult]:  # noqa: A002 - as SearchEngine.search
        results = super().search(query, k, metric, labels, threshold, filter)
        if not isinstance(query, Text) or self.check_metric(metric) != "cosine" or not results:
            return results
        # A SigLIP model's probability for each (sentence, photo) pair, from the cosine it ranked by.
        matches = self.embedder.family.match(np.array([r.score for r in results]))
        if matches is None:
            return results
        return [replace(r, match=float(m)) for r, m in zip(results, matches, strict=True)]

    # -- tags from the user's words (engines/analysis/tags.py) ---------------------------------
    def index(self, items: Items | str, *, progress: Progress = True) -> int:
        if callable(progress) and not self.embedder.loaded:
            # The model loads (the first time also exports to ONNX) before any image is counted.
            progress(IndexProgress(self.name, 0, 0, 0.0, phase=LOADING_MODEL))
        count = super().index(items, progress=progress)
        self._tags = None  # the rules stay; which photos pass is computed again for the new index
        self._tag_scope = None
        return count

    def _tag_store(self) -> TagStore:
        return TagStore(self.local_features_dir())

    def local_features_dir(self) -> Path | None:
        # The CLIP engine may run without a cache (cache=False); the Chroma engine always keeps one.
        return self.cache_dir if getattr(self, "cache_enabled", True) else None

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self.embedder.embed_images(images)

    def model_side(self) -> int | None:
        return max(1, int(self.embedder.decode_size[0]) // 2)  # decode_size is twice the model's input side

    def _tag_key(self) -> tuple[str, str]:
        """Where this engine's tags are kept: its model (vector identity) and its gallery (the
        folders its photos were listed from), so each gallery keeps its own tags."""
        if self._tag_scope is None:
            roots = sorted({item.root for item in self.vectors().items if item.root}) if len(self) else []
            self._tag_scope = "|".join(roots)
        return self.vector_identity().to_json(), self._tag_scope or ""

    def tag(self, names: str | Sequence[str] | None = None) -> TagTable:
        """Tag the indexed photos with the user's words (``"beach, snow, dog"``), kept for this
        model and used by ``Filter(tags=...)``; ``None``: the tags already kept. A tag named
        again keeps what marks taught it."""
        store, (identity, scope) = self._tag_store(), self._tag_key()
        kept = {rule.name.casefold(): rule for rule in store.load(identity, scope)}
        if names is None:
            rules = list(kept.values())
        else:
            rules = [kept.get(name.casefold(), TagRule(name)) for name in tag_names(names)]
            store.save(identity, rules, scope)
        return self._tag_table_of(rules)

    def _tag_table_of(self, rules: Sequence[TagRule]) -> TagTable:
        gallery = self.vectors()
        words = self.embedder.embed_texts([rule.name for rule in rules]) if rules else np.zeros((0, self.embedder.dim))
        self._tags = build_table(rules, gallery.records, gallery.matrix, words)
        return self._tags

    def tag_table(self) -> TagTable | None:
        """The photos' tags for the tags kept for this model (``None``: none kept yet)."""
        if self._tags is None and len(self):
            rules = self._tag_store().load(*self._tag_key())
            if not rules:
                return None  # nothing to score: no vectors read
            self._tag_table_of(rules)
        return self._tags if self._tags is not None and self._tags.rules else None

    def teach_tag(self, name: str, relevant: Sequence[SearchResult], irrelevant: Sequence[SearchResult]) -> TagTable:
        """Move tag ``name``'s threshold to where the photos marked relevant and not relevant
        (results of this engine) fall best; marks add up over calls."""
        store, (identity, scope) = self._tag_store(), self._tag_key()
        rules = store.load(identity, scope)
        found = [i for i, rule in enumerate(rules) if rule.name.casefold() == name.strip().casefold()]
        if not found:
            raise InvalidQueryError(f"Expected one of the tags ({', '.join(r.name for r in rules) or 'none yet'}), "
                                    f"got {name!r}")
        rules[found[0]] = rules[found[0]].learn([r.record for r in relevant if r.record],
                                                [r.record for r in irrelevant if r.record])
        store.save(identity, rules, scope)
        return self._tag_table_of(rules)

    def _tag_mask_records(self) -> tuple[str, ...]:
        """Every record the tags were scored for (a user error when there are no tags)."""
        table = self.tag_table()
        if table is None:
            raise InvalidQueryError("Expected tags to filter by: name some first (engine.tag('beach, snow'))")
        return table.records

    def _tag_mask(self, names: Sequence[str], records: Sequence[str]) -> np.ndarray:
        table = self.tag_table()
        if table is None:
            raise InvalidQueryError("Expected tags to filter by: name some first (engine.tag('beach, snow'))")
        return table.mask(names, records)

    def _image_vector(self, image: Image.Image) -> FeatureVector:
        return self.embedder.embed_images([image])[0]

    def _text_vector(self, text: str) -> FeatureVector:
        return self.embedder.embed_texts([text])[0]


class ThroughClipCache:
    """One embedding per photo per model: vectors the CLIP engine cached for this model are
    taken from its cache, and what is embedded here is written there too, so choosing "CLIP +
    Chroma" after "CLIP" (or the reverse) decodes and embeds nothing twice. Keys are content
    hashes, as the CLIP engine's are."""

    def __init__(self, embedder: ClipEmbedder, cache_dir: Path, hashes: ContentHashes) -> None:
        self.embedder, self.hashes = embedder, hashes
        self.cache = VectorCache(Workspace(cache_dir).vectors("clip"), embedder.identity())
        self.known = self.cache.load(embedder.dim)
        #: How many vectors came from the cache instead of the model.
        self.reused = 0

    def compute(self, items: list[GalleryItem]) -> Iterator[np.ndarray | Exception]:
        keys = [self.hashes.of(item) for item in items]
        missing = [item for item, key in zip(items, keys, strict=True) if key not in self.known]
        fresh = iter(self.embedder.embed_items(missing))
        new_keys: list[str] = []
        new_vectors: list[np.ndarray] = []
        try:
            for key in keys:
                if key in self.known:
                    self.reused += 1
                    yield self.known[key]
                    continue
                vector = next(fresh)
                if not isinstance(vector, Exception):
                    new_keys.append(key)
                    new_vectors.append(vector)
                    if len(new_keys) >= FLUSH_EVERY:
                        self.cache.append(new_keys, np.stack(new_vectors))
                        new_keys, new_vectors = [], []
                yield vector
        finally:
            if new_keys:
                self.cache.append(new_keys, np.stack(new_vectors))


class ClipEngine(UsesEmbedder, VectorEngine):
    """CLIP image embeddings in an in-memory matrix; text queries rank by text-image similarity."""

    name = "clip"
    title = "CLIP"
    metrics = METRICS
    default_metric = "cosine"
    duplicate_thresholds = {"cosine": 0.95, "correlation": 0.95, "l2": 0.32, "l1": 5.5}
    _keys_are_content_hashes = True

    def __init__(
        self,
        *,
        embedder: ClipEmbedder | EmbedderConfig | None = None,
        cache: bool | str = True,
        cache_dir: str | Path | None = None,
        exact: bool = False,
    ) -> None:
        super().__init__(cache=cache, cache_dir=cache_dir, exact=exact)
        self.embedder = resolve_embedder(embedder)
        self._hashes: ContentHashes | None = None

    def _cache_namespace(self) -> dict[str, object]:
        return self.embedder.identity()

    def _index(self, gallery: list[GalleryItem], skipped: list[SkippedFile], *, progress: Progress) -> int:
        self._hashes = ContentHashes(Workspace(self.cache_dir).file_facts) if self.cache_enabled else None
        try:
            return super()._index(gallery, skipped, progress=progress)
        finally:
            if self._hashes is not None:
                self._hashes.save()

    def _item_key(self, item: GalleryItem) -> str:
        return self._hashes.of(item) if self._hashes is not None else item.content_hash

    def _dim(self) -> int:
        return self.embedder.dim

    def _compute(self, items: list[GalleryItem]) -> Iterator[np.ndarray | Exception]:
        return self.embedder.embed_items(items)
