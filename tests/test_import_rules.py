"""The package's import rules hold: each part imports only the parts ARCHITECTURE.md allows it, and no module
imports itself back through others.

The rules are read from the ``import-rules`` block of ARCHITECTURE.md, so the document and the check cannot
drift apart. A part is a top-level module or folder of ``src/qrprobe`` (``errors``, ``engine``), or a wing or
module inside one when the block gives it a line of its own (``engine.kmeans``, ``engine.protocol``): a module
belongs to the most specific part that contains it. Every ``import`` / ``from … import`` of every module is
checked, including lazy ones inside functions and those under ``TYPE_CHECKING``. The cycle check is on modules,
not parts: a cycle hidden behind lazy imports inside one part is found too.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src" / "qrprobe"
EXEMPT = ("qrprobe", "qrprobe.__main__")  # the lazy public API and the entry point may import anything


def read_rules(text: str) -> dict[str, set[str]]:
    block = re.search(r"```text import-rules\n(.*?)```", text, re.S)
    assert block, "ARCHITECTURE.md must hold a ```text import-rules block"
    rules = {}
    for line in block.group(1).splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            part, _, allowed = line.partition(":")
            rules[part.strip()] = {a.strip() for a in allowed.split(",") if a.strip()}
    return rules


def _module_name(path: Path, src: Path) -> str:
    rel = path.relative_to(src.parent).with_suffix("")
    return ".".join(rel.parts).removesuffix(".__init__")


def _modules(src: Path) -> dict[str, Path]:
    return {_module_name(p, src): p for p in sorted(src.rglob("*.py"))}


def _imports(path: Path, module: str, known: dict[str, Path]) -> list[tuple[int, str]]:
    """``(line, module)`` for every import of a module of the package; ``from pkg import sub`` names ``pkg.sub``
    when ``sub`` is a module."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            name = ("." * node.level + (node.module or "")) if node.level else (node.module or "")
            target = importlib.util.resolve_name(name, package) if node.level else name
            subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in known]
            out.extend((node.lineno, s) for s in subs)
            if len(subs) < len(node.names):
                out.append((node.lineno, target))
        elif isinstance(node, ast.Import):
            out.extend((node.lineno, a.name) for a in node.names)
    root = next(iter(known)).split(".")[0]
    return [(line, t) for line, t in out if t == root or t.startswith(root + ".")]


def part_of(module: str, rules: dict[str, set[str]]) -> str:
    """The most specific part holding ``module``: ``qrprobe.engine.kmeans.lloyd`` → ``engine.kmeans`` when the
    rules have that line, else ``engine``; ``qrprobe`` → ``qrprobe``."""
    names = module.split(".")[1:]
    for cut in range(len(names), 0, -1):
        if ".".join(names[:cut]) in rules:
            return ".".join(names[:cut])
    return names[0] if names else "qrprobe"


def _allowed(part: str, used: str, rules: dict[str, set[str]]) -> bool:
    """Whether ``part`` may import ``used``: the same part, a part it lists, or a part inside one it lists
    (``cli`` listing ``engine`` may use ``engine.kmeans``)."""
    if used == part:
        return True
    allowed = rules[part]
    return any(used == a or used.startswith(a + ".") for a in allowed)


def rule_problems(src: Path, rules: dict[str, set[str]]) -> list[str]:
    known = _modules(src)
    problems = []
    for module, path in known.items():
        if module in EXEMPT:
            continue
        part = part_of(module, rules)
        if part not in rules:
            problems.append(f"{path.relative_to(src)}: the part {part!r} has no line in the import rules")
            continue
        for line, target in _imports(path, module, known):
            used = part_of(target, rules)
            if not _allowed(part, used, rules):
                problems.append(f"{path.relative_to(src)}:{line}: {part} imports {target} ({used} is not allowed)")
    return problems


def module_cycles(src: Path) -> list[list[str]]:
    """Cycles of the module import graph (every import, lazy ones included; importing a package's module does
    not count as importing the package's ``__init__``)."""
    known = _modules(src)
    graph = {m: sorted({t for _, t in _imports(p, m, known) if t in known and t != m}) for m, p in known.items()
             if m not in EXEMPT}
    cycles, state = [], {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in graph.get(node, ()):
            if state.get(nxt) == 1:
                cycles.append([*trail[trail.index(nxt):], nxt] if nxt in trail else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node, [node])
    return cycles


def rule_cycles(rules: dict[str, set[str]]) -> list[list[str]]:
    """Cycles among the parts' rules (a part listing a part that lists it back, directly or not)."""
    cycles, state = [], {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(rules.get(node, ())):
            if nxt == "qrprobe" or nxt not in rules:
                continue
            if state.get(nxt) == 1:
                cycles.append([*trail[trail.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for node in rules:
        if node not in state:
            visit(node, [node])
    return cycles


def _rules() -> dict[str, set[str]]:
    return read_rules((REPO / "ARCHITECTURE.md").read_text(encoding="utf-8"))


def test_every_part_imports_only_what_the_architecture_allows():
    problems = rule_problems(SRC, _rules())
    assert not problems, "\n".join(problems)


def test_no_module_imports_itself_back():
    cycles = module_cycles(SRC)
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_the_rules_have_no_cycles():
    cycles = rule_cycles(_rules())
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_a_wing_reaches_outside_its_part_only_where_the_part_may():
    rules = _rules()
    for part, allowed in rules.items():
        if "." not in part:
            continue
        top = part.split(".")[0]
        outside = {a for a in allowed if a.split(".")[0] != top}
        assert outside <= rules[top], f"{part} may import {sorted(outside - rules[top])}, which {top} may not"


def test_the_engine_is_three_wings_and_a_front_end():
    rules = _rules()
    wings = {p for p in rules if p.startswith("engine.") and (SRC / Path(*p.split("."))).is_dir()}
    assert wings == {"engine.kmeans", "engine.probe", "engine.stats"}
    flat = {p.stem for p in (SRC / "engine").glob("*.py")} - {"__init__"}
    assert flat == {"config", "inputs", "degenerate", "protocol", "evaluate", "estimator"}
    # the lower wings never use the front end's upper modules, and no wing imports the engine's package itself
    for wing in ("engine.kmeans", "engine.probe"):
        assert not rules[wing] & {"engine.protocol", "engine.evaluate", "engine.estimator", "engine.stats"}


# ---------------------------------------------------------------------------------------------- the checks checked
def _plant(tmp_path: Path, files: dict[str, str]) -> Path:
    src = tmp_path / "src" / "qrprobe"
    for rel, text in files.items():
        path = src / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return src


_PLANT_RULES = read_rules("```text import-rules\nerrors:\nengine: errors\nengine.kmeans: errors\n"
                          "engine.protocol: errors, engine.kmeans\n```")
_PLANT = {"__init__.py": "", "errors.py": "", "engine/__init__.py": "", "engine/kmeans/__init__.py": "",
          "engine/kmeans/lloyd.py": "from ...errors import X\n",
          "engine/protocol.py": "from .kmeans.lloyd import Y\n"}


def test_the_check_passes_a_clean_package(tmp_path):
    src = _plant(tmp_path, _PLANT)
    assert rule_problems(src, _PLANT_RULES) == []
    assert module_cycles(src) == []


def test_the_check_finds_an_upward_import(tmp_path):
    src = _plant(tmp_path, {**_PLANT, "engine/kmeans/lloyd.py": "def f():\n    from ..protocol import Z\n"})
    problems = rule_problems(src, _PLANT_RULES)
    assert len(problems) == 1
    assert "engine.kmeans imports qrprobe.engine.protocol (engine.protocol is not allowed)" in problems[0]


def test_the_check_finds_a_lazy_cycle_inside_one_part(tmp_path):
    src = _plant(tmp_path, {**_PLANT, "engine/kmeans/a.py": "from . import b\n",
                            "engine/kmeans/b.py": "def f():\n    from .a import g\n"})
    assert rule_problems(src, _PLANT_RULES) == []  # the same part: the rules allow it
    cycles = module_cycles(src)
    assert cycles == [["qrprobe.engine.kmeans.a", "qrprobe.engine.kmeans.b", "qrprobe.engine.kmeans.a"]]


def test_the_check_finds_a_cycle_in_the_rules():
    rules = read_rules("```text import-rules\na: b\nb: c\nc: a\n```")
    assert rule_cycles(rules) == [["a", "b", "c", "a"]]
