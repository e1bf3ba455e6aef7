"""``image-search faces``: find the faces of a gallery (only when asked), list its people, name them.

    image-search faces --data ~/Pictures                  find the faces (once), list the people
    image-search faces --data ~/Pictures --name 2=Ada     name the second person listed
    image-search "a beach" --person Ada --data ~/Pictures   then search only photos of Ada

People are listed largest first: number, name ("" until named), photos, and up to three files.
Naming two people alike merges them. Names are kept per gallery in the cache folder
(``people.json``), the same the app's People tab reads and writes; faces stay on this machine.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from .deployment import deployment_from
from .errors import EngineError
from .galleries.gallery import load_gallery
from .galleries.sources import gallery_name, parse_source
from .registry import create_engine
from .results import printable
from .search import OneLineParser
from .settings import SEARCH, add_arguments, from_environment


def _naming(text: str) -> tuple[int, str]:
    number, sep, name = text.partition("=")
    if not sep or not number.strip().isdigit() or int(number) < 1:
        raise argparse.ArgumentTypeError(f"expected NUMBER=NAME (a person's number as listed, from 1), got {text!r}")
    return int(number), name.strip()


def main(argv: Sequence[str] | None = None) -> int:
    p = OneLineParser(prog="image-search faces", description=__doc__.split("\n\n")[0])
    environment = from_environment(SEARCH)
    add_arguments(p, SEARCH, {**environment, "data": environment.get("data") or "."})
    p.add_argument("--name", type=_naming, action="append", default=[], metavar="NUMBER=NAME",
                   help="name the person listed as NUMBER (repeatable; an empty NAME takes a name away)")
    p.add_argument("--json", action="store_true", help="print the people as JSON")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    try:
        gallery = load_gallery(gallery_name(parse_source(args.data)))
        engine = create_engine("faces", deployment=deployment_from(args, gallery.source))
        engine.index(gallery["train"], progress=not args.no_progress)
        people = engine.people()
        for number, name in args.name:
            if number > len(people):
                raise ValueError(f"there is no person {number}: {len(people)} found")
            engine.name_person(people[number - 1].keys, name)
        if args.name:
            people = engine.people()
    except (EngineError, ValueError, OSError, ImportError) as exc:
        print(f"image-search: error: {printable(str(exc))}", file=sys.stderr)
        return 2
    photos_of = [sorted({path for path, _ in person.faces if path}) for person in people]
    if args.json:
        print(json.dumps([{"number": n, "name": person.name, "photos": photos}
                          for n, (person, photos) in enumerate(zip(people, photos_of, strict=True), start=1)],
                         ensure_ascii=False))
    else:
        for n, (person, photos) in enumerate(zip(people, photos_of, strict=True), start=1):
            shown = ", ".join(printable(path) for path in photos[:3]) + (", ..." if len(photos) > 3 else "")
            print(f"{n}\t{printable(person.name) or '(no name)'}\t{len(photos)} photos\t{shown}")
    if not people:
        print("image-search: no faces found in this gallery", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
