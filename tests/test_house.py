"""The shape of the code: the packages' import graph, function-local imports included, has no
circle, rendering imports nothing that trains or times, no module runs past 400 lines, the
formatter owns the layout, and the command line starts its children before it imports
torch."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("archs", "bench")


def modules() -> dict[str, Path]:
    """Every module of the packages by dotted name (a package by its own name)."""
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The modules of the packages that ``name`` imports anywhere in its body: ``from a import
    b`` is ``a.b`` where that is a module, else ``a``; importing ``a.b.c`` runs the packages
    ``a`` and ``a.b`` first, unless ``name`` lies inside them (they are running already)."""

    def module(dotted: str) -> str | None:
        while dotted and dotted not in known:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {module(alias.name) for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            found |= {module(f"{base}.{alias.name}") for alias in node.names}
    packages = {
        ".".join(parts[:end])
        for parts in (dotted.split(".") for dotted in found - {None})
        for end in range(1, len(parts))
    }
    found |= {p for p in packages if p in known and not f"{name}.".startswith(f"{p}.")}
    return found - {None, name}


def cycle(graph: dict[str, set[str]]) -> list[str]:
    """One circle of ``graph`` (a path that starts and ends at one module), or []."""
    state: dict[str, str] = {}  # "open" while on the path, "done" after
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = "open"
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = "done"
        path.pop()
        return []

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return []


def test_the_cycle_finder_finds_a_circle_and_only_one():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


def test_the_import_graph_has_no_circle():
    known = modules()
    graph = {name: imports(name, path, known) for name, path in known.items()}
    assert {"archs.registry", "bench.runs", "bench.render.headline"} <= set(graph)
    assert "bench.store" in graph["bench.runs"]  # the reading of imports works
    assert "bench.render" in graph["bench.runs"]  # a submodule's package runs first
    assert "bench.stages" not in graph["bench.stages.train"]  # its own package is running
    assert cycle(graph) == []


def test_rendering_imports_no_code_that_trains_or_times():
    known = modules()
    graph = {name: imports(name, path, known) for name, path in known.items()}
    reached, todo = set(), [name for name in known if name.startswith("bench.render")]
    while todo:
        name = todo.pop()
        if name not in reached:
            reached.add(name)
            todo += graph[name]
    assert "bench.recipes" in reached  # what to train is data the pages read
    measuring = ("bench.training", "bench.stages", "bench.timing", "bench.data", "bench.allocator")
    assert sorted(m for m in reached if m.startswith(measuring)) == []


def test_the_formatter_owns_the_layout():
    sources = [p for d in (*PACKAGES, "tests", "tools") for p in (ROOT / d).rglob("*.py")]
    skipped = sum(p.read_text().count("fmt: " + "skip") for p in sources)
    assert skipped < 20


def test_no_module_is_longer_than_a_reader_takes_in_at_once():
    longest = max(modules().values(), key=lambda p: len(p.read_text().splitlines()))
    assert len(longest.read_text().splitlines()) <= 400, longest


def test_python_m_bench_starts_its_children_before_it_imports_torch():
    """``python -m bench`` starts the fork server from ``bench.children`` before anything
    imports torch: the package and that module import the standard library alone; the commands
    it skips are those that start no children."""
    from bench.children import READING
    from bench.stages import prune, reading

    code = "import sys, bench, bench.children; print('torch' in sys.modules)"
    imported = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert imported.stdout.strip() == "False", imported.stderr
    assert set(READING) == {reading.RENDER.name, reading.COMPARE.name, prune.COMMAND.name}
