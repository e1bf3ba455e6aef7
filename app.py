"""Image search: query a gallery by image or sentence with the pixel, CLIP or Chroma engine.

    python app.py [--data DIR_OR_HUB_ID] [--model ID_OR_DIR] [--port N] [--share --auth user:pass]

The entry point that ``python app.py``, ``gradio app.py`` and Hugging Face Spaces run.
``demo`` is built at import from the environment; the page lives in ``ui/`` and the
engines in ``engines/``. Nothing heavy happens at start-up: galleries are read, and
models loaded, when first used.
"""

from __future__ import annotations

from collections.abc import Sequence

from ui.config import AppConfig
from ui.page import build_demo, serve

demo = build_demo(AppConfig.from_env())


def main(argv: Sequence[str] | None = None) -> int:
    return serve(argv, demo)


if __name__ == "__main__":
    raise SystemExit(main())
