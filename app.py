"""Image search: query a gallery by image or sentence with the pixel, CLIP or Chroma engine.

    python app.py [--data DIR_OR_HUB_ID] [--model ID_OR_DIR] [--port N] [--share --auth user:pass]

The entry point that ``python app.py``, ``gradio app.py`` and Hugging Face Spaces run.
``demo`` is built at import from the environment; the page lives in ``ui/`` and the
engines in ``engines/``. Nothing heavy happens at start-up: galleries are read, and
models loaded, when first used.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from ui.config import AppConfig, parse_args
from ui.page import build_demo, launch

demo = build_demo(AppConfig.from_env())


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for chatty in ("httpx", "httpcore", "urllib3", "gradio"):  # a line per request is noise here
        logging.getLogger(chatty).setLevel(logging.WARNING)
    config = parse_args(argv, AppConfig.from_env(), check=True)
    app = demo if config == demo.service.config else build_demo(config)  # type: ignore[attr-defined]
    launch(app, config, prevent_thread_lock=True, quiet=True)
    print(f"Image search is running on {app.local_url}", flush=True)
    if app.share_url:
        print(f"Public link: {app.share_url}", flush=True)
    app.block_thread()


if __name__ == "__main__":
    main()
