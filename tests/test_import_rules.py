"""The package's import rules hold: each part imports only the parts ARCHITECTURE.md allows it.

The rules are read from the ``import-rules`` block of ARCHITECTURE.md, so the document and the check cannot
drift apart; every ``import`` / ``from … import`` of every module (including lazy ones inside functions) is
checked.
"""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src" / "qrprobe"


def _rules() -> dict[str, set[str]]:
    text = (REPO / "ARCHITECTURE.md").read_text(encoding="utf-8")
    block = re.search(r"```text import-rules\n(.*?)```", text, re.S)
    assert block, "ARCHITECTURE.md must hold a ```text import-rules block"
    rules = {}
    for line in block.group(1).splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            part, _, allowed = line.partition(":")
            rules[part.strip()] = {a.strip() for a in allowed.split(",") if a.strip()}
    return rules


def _part(module: str) -> str:
    """``qrprobe.engine.probe`` → ``engine``; ``qrprobe.errors`` → ``errors``; ``qrprobe`` → ``qrprobe``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "qrprobe"


def _imports(path: Path) -> list[tuple[int, str]]:
    rel = path.relative_to(SRC.parent).with_suffix("")
    module = ".".join(rel.parts)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    module = module.removesuffix(".__init__")
    package = package.removesuffix(".__init__")
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            name = ("." * node.level + (node.module or "")) if node.level else (node.module or "")
            target = importlib.util.resolve_name(name, package) if node.level else name
            out.append((node.lineno, target))
        elif isinstance(node, ast.Import):
            out.extend((node.lineno, a.name) for a in node.names)
    return [(line, t) for line, t in out if t == "qrprobe" or t.startswith("qrprobe.")]


def test_every_part_imports_only_what_the_architecture_allows():
    rules = _rules()
    problems = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC)
        part = rel.parts[0].removesuffix(".py") if len(rel.parts) > 1 else rel.stem
        if part in ("__init__", "__main__"):
            continue  # the package's lazy public API and the entry point may import anything
        assert part in rules, f"{rel}: the part {part!r} has no line in ARCHITECTURE.md's import rules"
        for line, target in _imports(path):
            used = _part(target)
            if used != part and used not in rules[part]:
                problems.append(f"{rel}:{line}: {part} imports {target} ({used} is not allowed)")
    assert not problems, "\n".join(problems)


def test_the_rules_have_no_cycles():
    rules = _rules()
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        if state.get(node) == 1:
            raise AssertionError(f"import cycle: {' -> '.join([*trail, node])}")
        if state.get(node) == 2:
            return
        state[node] = 1
        for nxt in sorted(rules.get(node, ())):
            if nxt != "qrprobe":
                visit(nxt, [*trail, node])
        state[node] = 2

    for node in rules:
        visit(node, [])
