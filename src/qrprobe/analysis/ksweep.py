"""K sweep (paper Fig. 6 and 7): the scores as the number of clusters K varies.

The paper's claim (App. D.2): the mutual-information estimate ``I(f_K(x); y(x))`` grows with K, since a finer
quantization keeps more of the representation, while NMI / AMI / top-1 rank models consistently for K ≥ 1000.
:func:`k_sweep` runs the full protocol (:func:`qrprobe.engine.evaluate.evaluate`) once per K;
:func:`k_sweep_table` lays out Results that already exist (one line per model, one point per K).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import pandas as pd

from ..concepts.bank import ConceptBank
from ..engine.config import ProtocolConfig
from ..engine.evaluate import evaluate, protocol_config
from ..engine.protocol import prepare_inputs
from ..errors import QRProbeInputError
from ..progress import once, scope
from ..results import METRICS, Result
from .compare import result_name


@dataclass
class KSweep:
    """``table``: one row per (model, K) with ``<metric>_mean`` / ``_std``; ``results``: the Results, by row."""

    table: pd.DataFrame
    results: list[Result]


def parse_ks(text: str | Sequence[int]) -> list[int]:
    """``"8,16,32"`` (or a sequence) → sorted distinct K values, each an integer ≥ 2."""
    try:
        values = [int(v) for v in (text.split(",") if isinstance(text, str) else text) if str(v).strip()]
    except ValueError as exc:
        raise QRProbeInputError(f"--k: expected comma-separated integers such as 8,16,32, got {text!r}") from exc
    if not values or min(values) < 2:
        raise QRProbeInputError(f"--k: every K must be an integer ≥ 2, got {text!r}")
    return sorted(set(values))


def k_sweep_table(results: Sequence[Result], names: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per Result: ``model``, ``k``, and ``<metric>_mean`` / ``_std`` for every metric, sorted."""
    names = [result_name(r) for r in results] if names is None else list(names)
    rows = []
    for name, res in zip(names, results, strict=True):
        row = {"model": name, "k": int(res.config.get("k", 0)), "clusterings": len(res.seeds)}
        for m in METRICS:
            if m in res.summary:
                row[f"{m}_mean"] = res.summary[m]["mean"]
                row[f"{m}_std"] = res.summary[m]["std"]
        rows.append(row)
    table = pd.DataFrame(rows)
    if len(table):
        table = table.sort_values(["model", "k"], kind="stable").reset_index(drop=True)
    return table


def k_sweep(features, concepts: ConceptBank, ks: Sequence[int], *, config: ProtocolConfig | None = None,
            name: str = "", progress: bool = False, **params) -> KSweep:
    """Evaluate one representation at every K of ``ks`` (other protocol settings from ``config``).

    Parameters
    ----------
    features : (N, D) array, FeatureStore or path.
    concepts : ConceptBank with N rows.
    ks : the values of K (each ≥ 2 and ≤ N).
    config : the protocol; its ``k`` is replaced by each value of ``ks``.
    name : the representation's label (one curve per name in the figures).

    Returns
    -------
    KSweep with the table and one Result per K.
    """
    ks = parse_ks(ks)
    cfg = protocol_config(config, params)
    inputs = prepare_inputs(features, concepts)
    feats, bank = inputs.features, inputs.concepts
    n = feats.array.shape[0]
    if max(ks) > n:
        raise QRProbeInputError(f"--k: K={max(ks)} exceeds the number of images N={n}")
    results = []
    with scope(name), once():  # a warning about these inputs is printed once, not per K
        for i, k in enumerate(ks):
            with scope(f"K sweep {i + 1}/{len(ks)}: K={k}"):
                at_k = replace(cfg, kmeans=replace(cfg.kmeans, k=k))
                results.append(evaluate(feats, bank, config=at_k, name=name, progress=progress))
    label = name or results[0].name or "model"
    return KSweep(k_sweep_table(results, [label] * len(results)), results)
