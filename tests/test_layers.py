"""The house's layers, checked over the import graph (every import, also those inside
functions; ``TYPE_CHECKING`` blocks aside): no circle, nothing running back up, modules of a
readable size, and no feature reaching into an engine's attributes."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from conftest import ROOT

PACKAGES = ("engines", "ui")
MAX_LINES = 300
#: The contract: what it may import of the package (nothing that is built on it).
CONTRACT = {"engines.base", "engines.capabilities"}
BUILT_ON_THE_CONTRACT = ("engines.analysis", "engines.storage", "engines.featured", "engines.pixel", "engines.clip",
                         "engines.chroma", "engines.vector_engine", "engines.registry")


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The package's modules ``name`` imports, anywhere but under ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text())
    skipped = {id(node) for block in ast.walk(tree) if isinstance(block, ast.If)
               and "TYPE_CHECKING" in ast.unparse(block.test) for node in ast.walk(block)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                full = f"{target}.{alias.name}"
                found.add(full if full in known else target)
    return {module for module in found if module in known and module != name}


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in edges[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in edges:
        if node not in index:
            visit(node)
    return found


def test_no_import_circle() -> None:
    assert cycles(graph()) == []


def test_the_checker_sees_a_circle() -> None:  # the positive control of the test above
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_nothing_runs_back_up() -> None:
    edges = graph()
    for name, targets in edges.items():
        if name.startswith("engines"):
            assert not {t for t in targets if t.startswith("ui")}, f"{name} imports the app"
        if name in CONTRACT:
            assert not {t for t in targets if t.startswith(BUILT_ON_THE_CONTRACT)}, f"the contract {name} imports a feature"
    assert "engines.analysis.duplicates" in edges["engines.featured"]  # the features are found (positive control)


#: The page's tabs and views: they and the named API (ui.api) sit side by side on ui.actions.
PAGE = re.compile(r"ui\.(\w+_tab|page|tags_view|photo_filters|feedback|api)$")


def test_the_page_and_the_api_share_the_use_cases_not_each_other() -> None:
    edges = graph()
    for name, targets in edges.items():
        if name == "ui.api" or name.startswith("ui.actions"):
            assert not {t for t in targets if PAGE.match(t) and t != name}, f"{name} imports the page"
        if PAGE.match(name) and name not in ("ui.api", "ui.page"):  # the page puts the tabs and the API together
            assert "ui.api" not in targets, f"{name} imports the API"
    # positive controls: the API and a tab do reach the actions, and the pattern names the tabs
    assert {"ui.actions.searching", "ui.actions.galleries"} <= edges["ui.api"]
    assert "ui.actions.galleries" in edges["ui.gallery_tab"]
    assert PAGE.match("ui.search_tab") and not PAGE.match("ui.actions.searching")


def test_modules_stay_readable() -> None:
    long = {name: n for name, path in modules().items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_no_feature_reaches_into_an_engine() -> None:
    """What a feature needs from an engine is a method the contract declares (engines/capabilities.py)."""
    reaching = re.compile(r"(getattr|hasattr)\(engine\b|engine\.\w+.*type: ignore\[attr-defined\]|\bengine\._[a-z]")
    places = [*(ROOT / "ui").rglob("*.py"), *(ROOT / "engines" / "analysis").rglob("*.py"),
              *(ROOT / "tests").glob("*.py"), *(ROOT / "benchmarks").glob("*.py")]
    found = [f"{path.relative_to(ROOT)}:{number}" for path in places if path.name != "test_layers.py"
             for number, line in enumerate(path.read_text().splitlines(), start=1) if reaching.search(line)]
    assert found == []
    assert reaching.search('x = getattr(engine, "embedder", None)')  # the pattern matches what it forbids
    assert reaching.search("engine._tags = None") and not reaching.search("engine.tag_table()")


def tuple_handlers(source: str) -> list[str]:
    """The page's event handlers (``on_*`` and ``*failed`` functions) that return a positional tuple."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef) and (node.name.startswith("on_") or node.name.endswith("failed")):
            if node.returns is not None and ast.unparse(node.returns).startswith(("tuple", "Tuple")):
                found.append(node.name)
    return found


def test_the_page_handlers_return_named_outputs() -> None:
    # Positional outputs tie a handler to the order of a list elsewhere, and a failure must pad
    # every output it leaves alone; dict outputs name what changes.
    found = {path.name: tuple_handlers(path.read_text()) for path in sorted((ROOT / "ui").glob("*.py"))}
    assert {name: handlers for name, handlers in found.items() if handlers} == {}
    assert tuple_handlers("def on_go() -> tuple[str, str]:\n    return 'a', 'b'\n") == ["on_go"]  # the control
