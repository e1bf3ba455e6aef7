"""Old scratch files removed: what killed writes left, and downloads nobody fetched."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path


def sweep(folder: str | Path, older_than_s: float, pattern: str = "*", keep_newest: int | None = None) -> None:
    """Remove the files of ``folder`` matching ``pattern`` made more than ``older_than_s`` ago
    (and beyond the ``keep_newest`` newest): scratch files of killed writes, old downloads.
    A file another process removed first, or cannot be removed, is left alone."""
    now = time.time()
    found = []
    for path in Path(folder).glob(pattern):
        try:
            if path.is_file() and not path.is_symlink():
                found.append((path.lstat().st_mtime, path))
        except OSError:
            continue
    for number, (made, path) in enumerate(sorted(found, reverse=True)):
        if now - made > older_than_s or keep_newest is not None and number >= keep_newest:
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
