"""The README's test command and the CI entry point (.ci/run) run the same checks."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_test_command() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = re.findall(r"^bash scripts/install\.sh dev .*$", text, flags=re.MULTILINE)
    assert len(commands) == 1, f"expected one test command in README.md, found {commands}"
    return commands[0].strip()


def test_ci_runs_exactly_the_readme_test_command():
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()]
    assert _readme_test_command() in ci_lines


def test_readme_test_command_runs_the_type_checker_and_the_linter():
    command = _readme_test_command()
    assert ".venv/bin/ruff check ." in command
    assert ".venv/bin/mypy" in command
