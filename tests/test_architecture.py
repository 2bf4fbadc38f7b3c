"""The house rules of docs/architecture.md, checked on the source: no import cycles, and layers that
only import downwards (every import counts, also those inside functions)."""

from __future__ import annotations

import ast
from pathlib import Path

import anygate

SRC = Path(anygate.__file__).parent
TRANSLATORS = (
    "anygate.providers.anthropic",
    "anygate.providers.openai_chat.",
    "anygate.providers.google",
    "anygate.providers.mock",
)
"""Translator modules (the OpenAI presets are a table of data the registry reads)."""


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """Module → the anygate modules it imports (anywhere in it, ``TYPE_CHECKING`` blocks excluded)."""
    graph: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        module = _module_name(path)
        tree = ast.parse(path.read_text())
        type_only = {
            id(node)
            for block in ast.walk(tree)
            if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
            for statement in block.body
            for node in ast.walk(statement)
        }
        found: set[str] = set()
        for node in ast.walk(tree):
            if id(node) in type_only:
                continue
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names if alias.name.startswith("anygate"))
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("anygate"):
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
        graph[module] = {name for name in found if name != module}
    modules = set(graph)
    return {module: {name for name in names if name in modules} for module, names in graph.items()}


def test_no_import_cycles() -> None:
    graph = _imports()
    visiting: list[str] = []
    done: set[str] = set()

    def visit(module: str) -> None:
        if module in done:
            return
        assert module not in visiting, "import cycle: " + " -> ".join([*visiting, module])
        visiting.append(module)
        for imported in sorted(graph[module]):
            if imported.startswith(module + "."):
                continue  # a package importing its own submodules is not a cycle
            visit(imported)
        visiting.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)


def test_config_imports_no_translator() -> None:
    graph = _imports()
    reachable: set[str] = set()
    pending = ["anygate.config"]
    while pending:
        module = pending.pop()
        if module not in reachable:
            reachable.add(module)
            pending.extend(graph[module])
    assert not [m for m in reachable if m.startswith(TRANSLATORS) and not m.endswith(".presets")]


def test_nothing_below_the_gateway_imports_it() -> None:
    above = (
        "anygate.gateway",
        "anygate.sdk",
        "anygate.anthropic",
        "anygate.server",
        "anygate.testing",
        "anygate.ui",
    )
    entry_points = ("anygate", "anygate.__main__")
    below = [m for m in _imports() if not m.startswith(above) and m not in entry_points]
    graph = _imports()
    offenders = {m: sorted(n for n in graph[m] if n.startswith(above)) for m in below}
    assert {m: names for m, names in offenders.items() if names} == {}
