"""Search a gallery from the command line, rclip's way: one result per line, score then path.

    python -m engines.search "a red bus" --data ~/Pictures [--engine clip] [--k 10] [--json]
    python -m engines.search --image query.jpg --data ~/Pictures
    python -m engines.search "a dog + a beach - snow" --data ~/Pictures --threshold 0.25

The index is built (or brought up to date: only new and changed files are embedded) first,
with a progress bar on standard error; it is the same index the app and ``engines.index``
use with the same settings. Standard output holds only results, so the command pipes into
other tools (``--paths-only`` prints paths alone). Bad input exits with status 2 and one line.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn, TextIO

from .base import check_threshold
from .deployment import deployment_from
from .errors import EngineError
from .filters import Filter
from .fusion import sentence_of, with_words
from .galleries.gallery import load_gallery
from .galleries.sources import gallery_name, parse_source
from .model.hub import hide_library_progress
from .model.packaged import model_or_packaged
from .query import Query, SearchQuery, Text, parse_text_query
from .registry import available_engines, create_engine, engine_class, uses_a_model
from .results import SearchResult, passing_threshold, printable
from .settings import SEARCH, add_arguments, from_environment

#: The most results one command prints (k); a gallery's whole ranking is rarely what a pipe wants.
MAX_K = 10_000


def _k(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of results, got {text!r}") from None
    if not 1 <= value <= MAX_K:
        raise argparse.ArgumentTypeError(f"expected 1 to {MAX_K:,} results, got {value}")
    return value


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


class OneLineParser(argparse.ArgumentParser):
    """Bad input is one line on standard error and exit status 2, like every other refusal of
    the command (argparse prints its whole usage first); no abbreviated flags (``--thr``)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(allow_abbrev=False, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="image-search",
        description="Search a gallery by sentence or image; print score and path, best first. "
        "Other commands: image-search index | evaluate | app (each with --help).",
    )
    p.add_argument("query", nargs="?", help="a sentence, or sentences joined rclip's way: 'a dog + a beach - snow', '2:a dog'")
    p.add_argument("--image", type=Path, metavar="PATH", help="an image to search with (with a sentence: both)")
    p.add_argument("--words", metavar="TEXT", help="find the photos that show these words (the words engine, ocr)")
    p.add_argument("--face", type=Path, metavar="PATH", help="find the photos of the person in this photo (its largest "
                   "face; the faces engine: finding the gallery's faces the first time takes a while)")
    p.add_argument("--with-words", action="store_true",
                   help="fuse a sentence's ranking with the photos that show its words (reads the text once)")
    p.add_argument("--person", action="append", default=[], metavar="NAME",
                   help="only photos of this person (repeatable: any of them), named with image-search faces "
                        "or the app's People tab")
    # Like rclip, the gallery is the current folder unless --data (or IMAGE_SEARCH_DATA) names one.
    environment = from_environment(SEARCH)
    add_arguments(p, SEARCH, {**environment, "data": environment.get("data") or "."})
    p.add_argument("--engine", choices=list(available_engines()), default="clip")
    p.add_argument("--k", "-k", type=_k, default=10, help="how many results (default 10)")
    p.add_argument("--metric", help="the engine's metric (default: its first, e.g. cosine)")
    p.add_argument("--threshold", type=_number, help="drop results worse than this score in the metric's direction")
    p.add_argument("--json", action="store_true", help="print a JSON list of results instead of lines")
    p.add_argument("--paths-only", action="store_true", help="print paths alone, one per line")
    # No "-0" alias: an option that looks like a number makes argparse read "-0.5" as an option.
    p.add_argument("--null", action="store_true",
                   help="end each result with a NUL byte instead of a line break, paths as their exact bytes "
                        "(as find -print0; for xargs -0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar while the index is brought up to date")
    return p


def build_query(text: str | None, image: Path | None) -> SearchQuery | Query:
    """A sentence (with rclip's ``+``/``-`` syntax), an image, or both as one query."""
    if image is not None and not image.is_file():
        raise FileNotFoundError(f"no such image file: {image}")
    if image is not None:
        _check_image(image)  # before any model loads or any indexing
    if text is None:
        if image is None:
            raise ValueError("give a sentence, --image PATH, or both")
        return image
    typed = parse_text_query(text)
    if image is None:
        return typed
    return Query(positive=[*typed.positive, image], negative=typed.negative)


def _check_image(path: Path) -> None:
    """A clear error now for a query file that is no image Pillow can read (its header only)."""
    from PIL import Image, UnidentifiedImageError

    from .galleries.images import open_regular, register_heif

    register_heif()
    try:
        with open_regular(path) as handle, Image.open(handle):
            pass
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ValueError(f"{path} is not an image this command can read ({type(exc).__name__})") from None


def _line_path(result: SearchResult) -> str:
    return result.path if result.path is not None else f"{result.label}#{result.position}"


def _control(ch: str) -> bool:
    return ord(ch) < 0x20 or ord(ch) == 0x7F


def write_results(results: Sequence[SearchResult], out: TextIO, *, as_json: bool, paths_only: bool,
                  null: bool = False) -> int:
    """Results as lines (``score<TAB>path``), paths alone, or a JSON list; returns how many
    paths were written escaped.

    A path goes out as its own bytes (a name that is not UTF-8 too, so ``xargs`` opens it),
    but one with a control character (a line break among them) is written escaped, as
    ``printable`` shows it: a file named ``a\\n/home/me/.bashrc`` must never become two lines
    that a pipe into ``xargs rm`` reads as two files. ``null`` ends each result with a NUL
    byte instead, and then every path goes out exactly (a path cannot hold a NUL).
    """
    if as_json:
        rows = [{"rank": r.rank, "score": r.score, "match": r.match,
                 "path": None if r.path is None else printable(r.path),
                 "label": r.label, "position": r.position} for r in results]
        out.write(json.dumps(rows, indent=1) + "\n")
        return 0
    raw = getattr(out, "buffer", None)
    escaped = 0
    for result in results:
        line = _line_path(result) if paths_only else f"{result.score:.4f}\t{_line_path(result)}"
        if not null and any(_control(ch) for ch in _line_path(result)):
            escaped += 1
            line = "".join(f"\\x{ord(ch):02x}" if _control(ch) and ch != "\t" else ch for ch in printable(line))
        end = b"\0" if null else b"\n"
        if raw is not None:
            out.flush()
            raw.write(os.fsencode(line) + end)
        else:
            out.write(printable(line) + end.decode())
    out.flush()
    return escaped


def main(argv: Sequence[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.no_progress:
            hide_library_progress()
        query: SearchQuery | Query
        if args.words is not None or args.face is not None:
            if args.query is not None or args.image is not None or args.words is not None and args.face is not None:
                raise ValueError("--words and --face go alone, without a sentence or --image")
            args.engine, query = ("ocr", Text(args.words)) if args.words is not None else ("faces", args.face)
            if args.face is not None:
                build_query(None, args.face)  # the same checks as --image, before anything loads
        else:
            query = build_query(args.query, args.image)
        if args.query is not None and not engine_class(args.engine).accepts_text:
            raise ValueError(f"the {args.engine} engine searches by image only: use --image, or --engine clip")
        gallery = load_gallery(gallery_name(parse_source(args.data)))
        deployment = deployment_from(args, gallery.source)
        if uses_a_model(args.engine):  # a learned engine: its model, or the packaged one offline
            model, note = model_or_packaged(deployment.model)
            if note and args.query is not None:
                raise ValueError(note)  # a sentence cannot be answered by an image model
            if note:
                print(f"image-search: {note}", file=sys.stderr)
            deployment = replace(deployment, model=model)
        options: dict[str, Any] = {"features": args.features} if args.features and args.engine == "pixel" else {}
        engine = create_engine(args.engine, deployment=deployment, **options)
        engine.check_metric(args.metric)  # bad input is refused before minutes of indexing
        if args.threshold is not None:
            check_threshold(args.threshold)
        count = engine.index(gallery["train"], progress=not args.no_progress)
        if engine.last_computed or engine.skipped:  # silent when the index was already up to date
            print(f"image-search: {count:,} images indexed ({engine.last_computed:,} new or changed, "
                  f"{len(engine.skipped):,} skipped)", file=sys.stderr)
        chosen = Filter(people=args.person) if args.person else None
        sentence = sentence_of(query)
        if args.with_words and sentence is not None and args.engine != "ocr":
            words = create_engine("ocr", deployment=deployment)
            words.index(gallery["train"], progress=not args.no_progress)
            results = with_words(engine, words, sentence, args.k, args.metric, chosen)
            if args.threshold is not None:  # the learned engine's scores: its threshold, its direction
                higher = engine.check_metric(args.metric) in engine.higher_is_better
                results = passing_threshold(results, args.threshold, higher)
        else:
            results = engine.search(query, k=args.k, metric=args.metric, threshold=args.threshold, filter=chosen)
    except (EngineError, ValueError, OSError, ImportError) as exc:
        print(f"image-search: error: {printable(str(exc))}", file=sys.stderr)
        return 2
    escaped = write_results(results, sys.stdout, as_json=args.json, paths_only=args.paths_only, null=args.null)
    if escaped:
        print(f"image-search: {escaped:,} paths hold control characters (a line break, say) and were written "
              "escaped; use --null with xargs -0 to get them exactly", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
