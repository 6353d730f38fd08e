"""Cascade partners (lacy.partners): the import graph runs one way."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


# --- the import graph -----------------------------------------------------------------------------------------


def import_graph() -> dict[str, set[str]]:
    """Every ``lacy`` module and the ``lacy`` modules it imports, at module level or inside functions."""
    modules = {}
    for path in (SRC / "lacy").rglob("*.py"):
        name = ".".join(path.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")
        modules[name] = path

    def module_of(target: str) -> str | None:
        while target and target not in modules:
            target = target.rpartition(".")[0]
        return target or None

    graph = {}
    for name, path in modules.items():
        imported = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            imported |= {m for t in targets if t.startswith("lacy") and (m := module_of(t)) not in (None, name)}
        graph[name] = imported - {"lacy"}  # the package's label constants import nothing
    return graph


def test_partners_depend_on_nothing_that_uses_them_and_the_graph_has_no_circle():
    graph = import_graph()
    for module in [m for m in graph if m.startswith("lacy.partners")]:
        allowed_llm = module == "lacy.partners.rag"  # the served partner's HTTP endpoint
        assert not graph[module] & {"lacy.cascade", "lacy.cascade_cli", "lacy.factscore"}, module
        assert allowed_llm or "lacy.llm" not in graph[module], module
    assert "lacy.partners.rag" not in graph["lacy.llm"]
    assert graph["lacy.cascade"] & {m for m in graph if m.startswith("lacy.partners")} == {"lacy.partners.base"}
    assert "lacy.factscore" not in graph["lacy.knowledge"]

    def visit(module: str, path: list[str]) -> None:
        for nxt in graph[module]:
            assert nxt not in path, " -> ".join(path + [nxt])
            visit(nxt, path + [nxt])

    for module in graph:
        visit(module, [module])
