"""ARCHITECTURE.md stays true to the code: every module of the package is named in the row of the part that
holds it, and every file the document names exists."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src" / "qrprobe"


def _rows() -> dict[str, str]:
    """The table of parts: first cell (each backticked name in it) → the whole row."""
    text = (REPO / "ARCHITECTURE.md").read_text(encoding="utf-8")
    rows = {}
    for line in text.splitlines():
        if line.startswith("| `"):
            first = line.split("|")[1]
            for name in re.findall(r"`([^`]+)`", first):
                rows[name] = line
    return rows


def _modules() -> list[Path]:
    return [p.relative_to(SRC) for p in sorted(SRC.rglob("*.py")) if p.name != "__init__.py"]


def test_every_module_is_named_in_its_parts_row():
    rows = _rows()
    missing = []
    for rel in _modules():
        if len(rel.parts) == 1:
            if rel.name not in rows and rel.name != "__main__.py":
                missing.append(str(rel))
            continue
        row = rows.get(rel.parts[0] + "/", "")
        # a module in a sub-folder is named with its folder (``distributed/`` … ``run.py``) in the row
        folders = [f"{part}/" for part in rel.parts[1:-1]]
        named = re.search(rf"(`|\b){re.escape(rel.name)}\b|`{re.escape(rel.stem)}`", row)
        if not row or not named or not all(f in row for f in folders):
            missing.append(str(rel))
    assert not missing, "modules not named in ARCHITECTURE.md's table: " + ", ".join(missing)


def test_every_file_the_table_names_exists():
    rows = _rows()
    stale = []
    for name, row in rows.items():
        if name.endswith("/"):
            folder = SRC / name
            assert folder.is_dir(), f"ARCHITECTURE.md names the folder {name}, which does not exist"
            for mentioned in re.findall(r"`([\w/]+\.py)`", row):
                if not any(p.name == Path(mentioned).name for p in folder.rglob("*.py")):
                    stale.append(f"{name}{mentioned}")
        elif name.endswith(".py") and not (SRC / name).is_file():
            stale.append(name)
    assert not stale, "ARCHITECTURE.md names files that do not exist: " + ", ".join(stale)
