"""The layout shows the architecture: one installed namespace, no import cycles, tools below the agent."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = {"agent": "lessonforge.agent", "tools": "lessonforge.tools", "prompts": "lessonforge.prompts",
           "evals": "lessonforge.evals"}


def _modules() -> dict[str, Path]:
    found = {}
    for folder, package in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = [p for p in path.relative_to(ROOT / folder).with_suffix("").parts if p != "__init__"]
            found[".".join([package, *parts])] = path
    return found


def _imports(path: Path, modules: dict[str, Path]) -> dict[str, int]:
    """Our modules ``path`` imports, anywhere in it (an import inside a function counts), with a line."""
    found: dict[str, int] = {}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                     for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            if name in modules:
                found.setdefault(name, node.lineno)
    return found


def _graph() -> dict[str, dict[str, int]]:
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        imported = _imports(path, modules)
        # imports only for type checking are not run
        tree = ast.parse(path.read_text(encoding="utf-8"))
        typing_only = {n.lineno for block in ast.walk(tree) if isinstance(block, ast.If)
                       and isinstance(block.test, ast.Name) and block.test.id == "TYPE_CHECKING"
                       for n in ast.walk(block) if isinstance(n, ast.ImportFrom | ast.Import)}
        graph[name] = {m: line for m, line in imported.items() if line not in typing_only and m != name}
    return graph


def test_there_are_no_import_cycles_not_even_inside_functions():
    graph = _graph()
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        state[module] = 1
        stack.append(module)
        for dep in graph[module]:
            if state.get(dep) == 1:
                cycles.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                visit(dep)
        stack.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_cycle_check_sees_an_import_inside_a_function(tmp_path, monkeypatch):
    """(the check above can fail: an import hidden in a function body is found)"""
    path = tmp_path / "m.py"
    path.write_text("def f():\n    from lessonforge.tools import cache\n", encoding="utf-8")
    assert "lessonforge.tools.cache" in _imports(path, _modules())


@pytest.mark.parametrize("low, high", [("lessonforge.tools", "lessonforge.agent"),
                                       ("lessonforge.tools", "lessonforge.evals"),
                                       ("lessonforge.prompts", "lessonforge.agent"),
                                       ("lessonforge.agent", "lessonforge.evals")])
def test_lower_layers_never_import_higher_ones(low, high):
    wrong = {f"{m} -> {d} (line {line})" for m, deps in _graph().items() if m.startswith(low + ".") or m == low
             for d, line in deps.items() if d.startswith(high)}
    allowed = {d for d in wrong if d.startswith("lessonforge.agent.cli ")}  # `lessonforge eval` is a subcommand
    assert wrong - allowed == set()


def test_everything_installs_under_the_lessonforge_namespace():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    setuptools = project["tool"]["setuptools"]
    assert all(p.startswith("lessonforge.") for p in setuptools["packages"])
    assert setuptools["package-dir"] == {package: folder for folder, package in FOLDERS.items()}
    # every package folder is listed (a new subpackage left out would be missing from the wheel)
    listed = set(setuptools["packages"])
    on_disk = {name for name, path in _modules().items() if path.name == "__init__.py"}
    assert on_disk == listed
    assert project["project"]["scripts"]["lessonforge"] == "lessonforge.agent.cli:main"
