"""``image-search``: one command for everything (the console script ``pyproject.toml`` installs).

    image-search "a red bus" --data ~/Pictures     search (engines.search), the default
    image-search index --data ~/Pictures ...        build or export an index (engines.index)
    image-search evaluate --data DIR ...            P@k and mAP (engines.evaluate)
    image-search faces --data DIR [--name 2=Ada]    find the faces, list and name the people
    image-search export-model --to DIR_OR_HUB_ID    a CLIP model as ONNX that runs without PyTorch
    image-search app [--data DIR] ...               the web app (python app.py)

A sentence that is itself a command's name is searched with ``image-search search "index"``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

#: Command -> the module whose ``main(argv)`` runs it; imported only when chosen, so a search
#: does not pay for Gradio.
COMMANDS = {
    "search": ("engines.search", "main"),
    "index": ("engines.index", "main"),
    "evaluate": ("engines.evaluate", "main"),
    "faces": ("engines.people_command", "main"),
    "export-model": ("engines.export_model", "main"),
    "app": ("ui.page", "serve"),
}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    command = args.pop(0) if args and args[0] in COMMANDS else "search"
    module, function = COMMANDS[command]
    result: int | None = getattr(importlib.import_module(module), function)(args)
    return result or 0


if __name__ == "__main__":
    raise SystemExit(main())
