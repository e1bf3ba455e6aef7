"""Build an engine's index from the command line, in this process or on Ray; optionally export it.

    python -m engines.index --data DIR_OR_HUB_ID --engine clip|chroma [--model M] [--backend B]
        [--precision P] [--ray [ADDRESS]] [--actors N] [--chroma-host H --chroma-port P]
        [--chroma-path DIR] [--cache-dir DIR] [--export TARGET [--overwrite]] [--ship]

Without ``--ray`` the engine indexes here, with a progress bar, resumable after a crash (the
engine's own store keeps what was written). With ``--ray`` (a local Ray, or ``auto`` / a
cluster address) the embedding runs on a Ray Data actor pool and the vectors go through the
same pipeline into the same store: the Chroma collection the app reads (on the server given
by ``--chroma-host``), or the CLIP engine's cache. The app started with the same model,
cache folder and Chroma settings then searches them without embedding anything again.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import fields, replace

from .deployment import deployment_from
from .errors import EngineError
from .galleries.gallery import load_gallery
from .galleries.sources import gallery_name, parse_source
from .model.hub import hide_library_progress
from .model.packaged import model_or_packaged
from .registry import available_engines, create_engine, engine_class, uses_a_model
from .settings import INDEX, add_arguments, from_environment
from .storage.transfer import ship_vectors


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engines.index", description=__doc__.split("\n\n")[0])
    add_arguments(parser, INDEX, from_environment(INDEX), required=frozenset({"data"}))
    parser.add_argument("--engine", choices=list(available_engines()), default="clip")
    parser.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                        help="embed on Ray: a local Ray without ADDRESS, or 'auto' / ray://host:port")
    parser.add_argument("--actors", type=int, help="Ray actors embedding at once (default: the cluster's CPUs - 1)")
    parser.add_argument("--export", metavar="TARGET", help="then write the index as a datasets dataset: a folder or a Hub id")
    parser.add_argument("--overwrite", action="store_true", help="let --export replace an existing folder")
    parser.add_argument("--ship", action="store_true",
                        help="then write the vectors beside the folder's images (DIR/.image-search-index): a fresh "
                             "copy of the folder (a Space) is indexed by the same model without embedding")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.ray is not None and args.engine == "pixel":
        parser.error("--ray embeds with CLIP: use --engine clip or chroma")
    if args.actors is not None and args.actors < 1:
        parser.error("--actors must be at least 1")
    try:
        if args.no_progress:
            hide_library_progress()
        gallery = load_gallery(gallery_name(parse_source(args.data)))
        deployment = deployment_from(args, gallery.source)
        if uses_a_model(args.engine):  # without the CLIP model here: the packaged one, said so
            model, note = model_or_packaged(deployment.model)
            if note:
                print(f"image-search: {note}", file=sys.stderr)
            deployment = replace(deployment, model=model)
        options: dict[str, object] = {}
        if args.features and args.engine == "pixel":
            options["features"] = args.features
        if args.ray is not None:
            from .model.embedder import EmbedderConfig  # noqa: PLC0415
            from .model.ray_embed import RayEmbedder, start_ray  # noqa: PLC0415 - Ray only when asked for

            logging.getLogger("ray").setLevel(logging.WARNING)  # not a log line per dataset run
            cpus = start_ray(args.ray or None)
            # The embedder settings the engine would take from the deployment (model, export folder...).
            shared = engine_class(args.engine).deployment_options(deployment)
            config = EmbedderConfig(**{f.name: shared[f.name] for f in fields(EmbedderConfig) if f.name in shared})
            options["embedder"] = RayEmbedder(config, actors=args.actors)
            print(f"Ray: {cpus} CPUs, {args.actors or max(1, cpus - 1)} embedding actors", file=sys.stderr)
        engine = create_engine(args.engine, deployment=deployment, **options)
        started = time.perf_counter()
        count = engine.index(gallery["train"], progress=not args.no_progress)
        seconds = time.perf_counter() - started
        print(
            f"Indexed {count} images of {gallery.source} with {args.engine} in {seconds:.1f} s "
            f"({engine.last_computed} computed, {len(engine.skipped)} skipped)"
        )
        for skipped in engine.skipped:
            print(f"  skipped {skipped.source}: {skipped.reason}", file=sys.stderr)
        if args.export:
            print(f"Exported to {engine.export(args.export, overwrite=args.overwrite)}")
        if args.ship:
            print(f"Shipped with the gallery: {ship_vectors(engine, gallery.source)}")
    except (EngineError, ValueError, FileExistsError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
