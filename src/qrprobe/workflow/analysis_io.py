"""What an analysis reads (:class:`AnalysisInputs`) and what it produces (:class:`AnalysisOutput`): the interface
between the analysis registry (:mod:`qrprobe.workflow.analyses`), its run functions
(:mod:`qrprobe.workflow.runs`), the CLI and the study runner.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pandas as pd

from ..concepts.bank import ConceptBank
from ..engine.inputs import Features
from ..errors import QRProbeInputError
from ..report.section import Section
from ..results import Result, markdown_table


@dataclass
class AnalysisInputs:
    """What an analysis reads; each kind uses the fields its ``needs`` name.

    features, concepts : one representation's features and its concept bank (rows matched by image id)
    result : a result directory's Result (explain, transfer, forward probe); versus : a base Result (explain)
    results, result_keys : several Results and their directory names (compare)
    target_features, target_concepts : the images a result is transferred to; source_concepts : its own bank
    external : external scores per model (compare; a study passes its models' ``external`` values)
    name : the representation's name in tables
    """

    features: Features | None = None
    concepts: ConceptBank | None = None
    result: Result | None = None
    versus: Result | None = None
    results: list[Result] = field(default_factory=list)
    result_keys: list[str] = field(default_factory=list)
    target_features: Features | None = None
    target_concepts: ConceptBank | None = None
    source_concepts: ConceptBank | None = None
    external: pd.DataFrame | None = None
    name: str = ""


def model_name(result: Result) -> str:
    """A result's name, else its features' model, else the stem of its features file ('' if none)."""
    features = result.inputs.get("features", {}) if isinstance(result.inputs, dict) else {}
    if result.name:
        return str(result.name)
    if features.get("model"):
        return str(features["model"])
    return Path(features["path"]).stem if features.get("path") else ""


_T = TypeVar("_T")


def required_input(value: _T | None, what: str) -> _T:
    """``value``, or the error that the analysis needs it (an input its ``needs`` names but the caller left out)."""
    if value is None:
        raise QRProbeInputError(f"this analysis needs {what}")
    return value


@dataclass
class AnalysisOutput:
    """What an analysis produced: a report section (with files to add beside it) or a Result."""

    section: Section | None = None
    result: Result | None = None
    extra: Callable[[Path], None] | None = None
    printed_tables: int = 2  # how many of the section's tables the CLI prints

    def markdown(self) -> str:
        """The output's main table(s) as Markdown (printed by the CLI)."""
        if self.result is not None:
            return markdown_table([self.result])
        assert self.section is not None
        return "\n\n".join(t.to_markdown() for t in self.section.tables()[:self.printed_tables])

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the analysis directory (``section.json`` …) or the result directory, atomically."""
        if self.result is not None:
            table = self.markdown()

            def add_markdown(tmp: Path) -> None:
                (tmp / "results.md").write_text(table + "\n", encoding="utf-8")

            return self.result.save(path, overwrite=overwrite, extra=add_markdown)
        assert self.section is not None
        return self.section.save(path, overwrite=overwrite, extra=self.extra)
