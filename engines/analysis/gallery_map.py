"""A 2-D map of an indexed gallery: PCA to 50 dimensions, then t-SNE (scikit-learn).

Neighbours in the engine's space stay neighbours on the map, so a user sees at a glance
how an engine groups the gallery: raw pixels by colour and layout, CLIP by meaning.
"""

from __future__ import annotations

import numpy as np

from ..base import SearchEngine
from ..errors import EmptyIndexError
from ..metrics import unit_rows
from ..results import GalleryMap, GalleryVectors, SearchResult

#: Images mapped at most; a larger gallery is sampled (the map says so). The map of 10,000
#: points takes about 33 s on 2 cores (benchmarks/duplicates.py prints it).
MAP_LIMIT = 10_000
PCA_DIMS = 50


def map_gallery(engine: SearchEngine, metric: str | None = None, *, limit: int | None = None, seed: int = 0) -> GalleryMap:
    """A 2-D map of ``engine``'s index (PCA then t-SNE), sampled to ``limit`` images where larger."""
    metric = engine.check_metric(metric)
    if len(engine) == 0:
        raise EmptyIndexError(engine.name)
    return gallery_map(engine.vectors(), metric, engine=engine.name, limit=limit or MAP_LIMIT, seed=seed)


def gallery_map(
    vectors: GalleryVectors, metric: str, *, engine: str, limit: int = MAP_LIMIT, seed: int = 0
) -> GalleryMap:
    """Map ``vectors`` (a random ``limit`` of them where there are more) to the plane."""
    total = len(vectors.items)
    if total == 0:
        raise EmptyIndexError(engine)
    if limit < 1:
        raise ValueError(f"Expected limit of at least 1, got {limit}")
    rows = np.arange(total) if total <= limit else np.sort(np.random.default_rng(seed).choice(total, limit, replace=False))
    data = unit_rows(vectors.matrix[rows], metric)
    points, method = _embed(data, seed)
    span = points.max(axis=0) - points.min(axis=0)
    points = (points - points.min(axis=0)) / np.where(span > 0, span, 1.0)
    members = tuple(
        SearchResult(0, vectors.items[row].label, 0.0, vectors.items[row].path, vectors.items[row].position,
                     vectors.records[row])
        for row in rows.tolist()
    )
    return GalleryMap(points, members, total, method)


def _embed(data: np.ndarray, seed: int) -> tuple[np.ndarray, str]:
    from sklearn.decomposition import PCA  # noqa: PLC0415 - heavy; only when a map is asked for
    from sklearn.manifold import TSNE  # noqa: PLC0415

    n = data.shape[0]
    if n == 1:
        return np.full((1, 2), 0.5), "single image"
    components = min(PCA_DIMS, n, data.shape[1])
    reduced = PCA(n_components=components, random_state=seed).fit_transform(data) if components > 2 else data
    if n < 5:  # t-SNE needs more points than its perplexity: the first two components are the map
        flat = np.zeros((n, 2))
        flat[:, : min(2, reduced.shape[1])] = reduced[:, :2]
        return flat, "PCA"
    tsne = TSNE(
        n_components=2, perplexity=min(30.0, (n - 1) / 3), init="pca", random_state=seed,
        max_iter=500,  # the layout settles well before sklearn's default 1,000 on galleries like these
    )
    return tsne.fit_transform(reduced.astype(np.float32)), "t-SNE"
