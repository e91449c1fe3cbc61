"""What the results say about themselves, as the report's first section after the study's own notes.

Each result carries notes on its inputs (``inputs.notes``: how the concept battery differs from the paper,
rows matched by position ...), structured flags (``inputs.flags``, :mod:`qrprobe.engine.degenerate`; the
warning-level ones also mark the comparison's rows) and small-sample warnings of its statistics
(``statistics.warnings``). A note shared by every result is listed once; otherwise it names its results.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..results import Result
from .section import Section


def _collect(results: Sequence[Result], names: Sequence[str]) -> dict[str, list[str]]:
    """``{note text: names of the results that carry it}`` in first-seen order."""
    seen: dict[str, list[str]] = {}
    for res, name in zip(results, names, strict=True):
        texts = [*res.inputs.get("notes", []),
                 *(f.get("message", "") for f in res.inputs.get("flags", []) if f.get("level") != "warning"),
                 *(res.statistics or {}).get("warnings", [])]
        for text in dict.fromkeys(t for t in texts if t):
            seen.setdefault(str(text), []).append(name)
    return seen


def input_notes_section(results: Sequence[Result], names: Sequence[str]) -> Section | None:
    """The notes, flags and small-sample warnings of ``results`` (None when they have none)."""
    seen = _collect(results, names)
    if not seen:
        return None
    notes = [text if len(who) == len(results) and len(results) > 1 else f"{', '.join(who)}: {text}"
             for text, who in seen.items()]
    if len(results) > 1:
        intro = ("What the results record about their inputs and estimates; a note without model names holds "
                 "for every result. Where the inputs differ from the paper's, it is said here.")
    else:
        intro = "What the result records about its inputs and estimates, including where they differ from the paper's."
    return Section("notes", "Notes on the inputs and estimates", intro, notes=notes)


__all__ = ["input_notes_section"]
