from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Nothing in the test suite may reach the Hub; this also makes a missing model fail fast.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# Gradio's upload folder (uploads, and what the app may take as a query image): the tests' own.
os.environ.setdefault("GRADIO_TEMP_DIR", tempfile.mkdtemp(prefix="gradio-tests-"))

from engines.testing import build_tiny_clip, free_port, make_gallery  # noqa: E402

AIO = Path(os.environ.get("IMAGE_SEARCH_AIO") or ROOT.parent / "shared" / "datasets" / "aio").resolve()


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test's engines cache under their own folder (the engines' default is the XDG cache)."""
    folder = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("XDG_CACHE_HOME", str(folder))
    monkeypatch.delenv("IMAGE_SEARCH_CACHE", raising=False)
    return folder / "image-search"


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(build_tiny_clip(tmp_path_factory.mktemp("tiny-clip")))


@pytest.fixture(scope="session")
def other_tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(build_tiny_clip(tmp_path_factory.mktemp("other-clip"), seed=1))


@pytest.fixture()
def gallery(tmp_path: Path) -> Path:
    return make_gallery(tmp_path / "gallery")


@pytest.fixture(scope="session")
def aio() -> Path:
    if not (AIO / "train").is_dir():
        pytest.skip(f"the aio dataset is not at {AIO} (read from ../shared or $IMAGE_SEARCH_AIO, never committed)")
    return AIO


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, int]:
    """A real Chroma server (``chroma run``) on 127.0.0.1, stopped after the session."""
    import subprocess

    from engines.testing import start_chroma_server

    port = free_port()
    folder = tmp_path_factory.mktemp("chroma-server")
    log = open(folder / "server.log", "wb")
    try:
        process = start_chroma_server(folder / "db", port, log)
    except RuntimeError as exc:
        log.close()
        pytest.fail(f"{exc}: {(folder / 'server.log').read_text()[-2000:]}")
    yield "127.0.0.1", port
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


@pytest.fixture()
def watched_paths(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every path the process opens (audit hook) or stats while the test runs; the paths
    it opened are also in ``opened_paths``."""
    seen: list[str] = []
    opened = OPENED
    active = [True]

    def hook(event: str, args: tuple) -> None:
        if active[0] and event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
            seen.append(os.fsdecode(args[0]))
            opened.append(os.fsdecode(args[0]))

    opened.clear()
    sys.addaudithook(hook)  # hooks cannot be removed; this one goes quiet after the test
    real_stat = os.stat

    def stat(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        if isinstance(path, (str, bytes, os.PathLike)):
            seen.append(os.fsdecode(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", stat)
    yield seen
    active[0] = False


#: Paths opened while a test that uses ``watched_paths`` runs.
OPENED: list[str] = []


#: Fixtures that start real servers (Ray, a Chroma server, the app): tests using them are integration tests.
INTEGRATION_FIXTURES = {"chroma_server", "local_ray", "served", "app"}
#: What a test's own code does when it starts a process or a server.
_STARTS_SOMETHING = ("subprocess.", "page.launch(", "launch(demo", "sync_playwright")


def starts_something(item: pytest.Item) -> bool:
    """Whether the test starts a process, a launched app or a browser itself (read from its code)."""
    import inspect

    function = getattr(item, "function", None)
    try:
        source = inspect.getsource(function) if function is not None else ""
    except (OSError, TypeError):
        return False
    return any(word in source for word in _STARTS_SOMETHING)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the tests that start something (a subprocess, a launched app, a real server, a
    browser) ``integration``: ``pytest -m "not integration"`` is the quick loop of
    in-process tests, and the README's command runs everything."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if names & INTEGRATION_FIXTURES or item.path.name == "test_browser.py" or starts_something(item):
            item.add_marker(pytest.mark.integration)
