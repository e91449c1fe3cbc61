"""Checked by mypy (README's test command, pyproject's ``[tool.mypy] files``), not run by pytest: the lazy public
API is typed, so a type checker or an IDE sees each export's real signature. Every ``type: ignore`` below must be
needed (``warn_unused_ignores``): were ``qrprobe.evaluate`` untyped (``Any``), mypy would report the ignore as
unused and the check would fail."""

from __future__ import annotations

import numpy as np

import qrprobe as qrp


def evaluate_is_typed(features: np.ndarray, bank: qrp.ConceptBank) -> qrp.Result:
    result = qrp.evaluate(features, bank, k=10, clusterings=2)
    scores: dict = result.summary
    assert scores is not None
    return result


def wrong_calls_are_caught(bank: qrp.ConceptBank) -> None:
    qrp.evaluate()  # type: ignore[call-arg]  # features and concepts are required
    count: int = qrp.evaluate(None, bank)  # type: ignore[assignment]
    config: str = qrp.ProtocolConfig()  # type: ignore[assignment]
    qrp.ReverseProbing().fit()  # type: ignore[call-arg]
    del count, config


def other_exports_are_typed() -> None:
    qrp.KMeans(k="many")  # type: ignore[arg-type]
    store: int = qrp.FeatureStore.open("feats")  # type: ignore[assignment]
    del store


def compare_is_typed(a: qrp.Result, b: qrp.Result) -> None:
    ranked = qrp.compare([a, b]).frame
    assert ranked is not None
    qrp.compare(a)  # type: ignore[arg-type]  # a list of results
    rows: int = qrp.compare([a, b])  # type: ignore[assignment]
    del rows
