"""Files the page hands out: CSV tables a spreadsheet opens safely, and the keep-one script.

Every cell of a CSV can come from a folder name, a file name or a label that someone else
chose. A spreadsheet runs a cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return as a formula (CSV injection), so such a cell is written with a leading ``'``
(OWASP's advice); numbers stay numbers.

The keep-one script moves files a user confirmed, so it must move exactly those: every path
is written byte for byte in bash's ``$'…'`` quoting (a non-UTF-8 name is moved as itself, not
as an escaped twin; a newline in a name can never start a command), every path is absolute
(or, on a public app, relative to the gallery folder the script is run from), each file is
moved once, a file kept by any group is never moved, files keep their folders under the
target (two ``IMG_0001.JPG`` of different folders do not collide), and the script goes on past
a file it cannot move and says at the end what it moved and what it did not.
"""

from __future__ import annotations

import csv
import os
import shutil
import tempfile
import weakref
from collections.abc import Iterable, Sequence
from typing import Any

from engines.storage.sweep import sweep

#: How long a download file (CSV) is kept: long enough to be fetched, short enough that
#: a day of use leaves no pile in /tmp.
SCRATCH_MAX_AGE_S = 600
SCRATCH_MAX_FILES = 64


class Scratch:
    """Files made for download: one folder per service, emptied as they age and removed with
    it; Gradio serves its own copies of them."""

    def __init__(self) -> None:
        self.folder = tempfile.mkdtemp(prefix="image-search-")
        weakref.finalize(self, shutil.rmtree, self.folder, True)

    def file(self, prefix: str, suffix: str) -> str:
        """A new file; files made more than ``SCRATCH_MAX_AGE_S`` ago (or beyond the newest
        ``SCRATCH_MAX_FILES``) are removed."""
        sweep(self.folder, SCRATCH_MAX_AGE_S, keep_newest=SCRATCH_MAX_FILES)
        handle, path = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=self.folder)
        os.close(handle)
        return path

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """``value`` as a spreadsheet may read it without running it."""
    if not isinstance(value, str) or not value.startswith(_FORMULA_START):
        return value
    try:
        float(value)
        return value  # a negative number is a number
    except ValueError:
        return "'" + value


def write_csv(path: str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """``rows`` under ``header`` as UTF-8 CSV at ``path``, every cell through ``csv_cell``."""
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows([csv_cell(cell) for cell in row] for row in rows)
    return path


def bash_quoted(text: str) -> bytes:
    """``text`` (a path, surrogate-escaped where its bytes are not UTF-8) as a bash ``$'…'``
    word that stands for exactly its bytes; printable ASCII stays readable, anything else
    (line breaks, control characters, non-ASCII, invalid UTF-8) is written ``\\xHH``."""
    out = bytearray(b"$'")
    for byte in os.fsencode(text):
        if byte in (0x27, 0x5C):  # ' and \
            out += b"\\" + bytes([byte])
        elif 0x20 <= byte < 0x7F:
            out.append(byte)
        else:
            out += b"\\x%02x" % byte
    return bytes(out + b"'")


_SCRIPT_HEAD = b"""#!/usr/bin/env bash
# Made by image search: keeps one file per duplicate group and moves the others into the
# folder below, each under its own folder (nothing is deleted; an existing file is never
# overwritten). Review the CSV first. Files it cannot move are named, and it goes on.
"""

_SCRIPT_BODY = b"""moved=0; left=0
move() {
  local file=$1 into="$target/$2"
  if [ ! -f "$file" ] || [ -L "$file" ]; then
    printf 'not moved (gone, or not a plain file): %q\\n' "$file" >&2; left=$((left + 1)); return
  fi
  if [ -e "$into/${file##*/}" ]; then
    printf 'not moved (%q already holds one of that name): %q\\n' "$into" "$file" >&2; left=$((left + 1)); return
  fi
  if mkdir -p -- "$into" && mv -n -- "$file" "$into/" && [ ! -e "$file" ]; then
    moved=$((moved + 1))
  else
    printf 'not moved: %q\\n' "$file" >&2; left=$((left + 1))
  fi
}
"""


def keep_one_script(moves: Sequence[tuple[str, str]], target: str, *, relative: bool) -> bytes:
    """The script that moves each ``(file, sub-folder)`` of ``moves`` into ``target/sub-folder``.

    ``relative``: the paths are relative to the gallery folder (a public app): the script
    says to run it from there.
    """
    lines = [_SCRIPT_HEAD]
    if relative:
        lines.append(b"# The paths are relative to the gallery folder: run this script from there.\n")
    lines += [b"target=" + bash_quoted(target) + b"\n", _SCRIPT_BODY]
    lines += [b"move " + bash_quoted(file) + b" " + bash_quoted(folder or ".") + b"\n" for file, folder in moves]
    total = str(len(moves)).encode()
    lines.append(b"printf 'Moved %d of %d files into %q; %d not moved (named above).\\n' "
                 b"\"$moved\" " + total + b" \"$target\" \"$left\"\n")
    lines.append(b'[ "$left" -eq 0 ]\n')
    return b"".join(lines)
