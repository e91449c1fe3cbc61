"""Group breakdown (paper Fig. 4 and Table 3): how much each concept group explains.

All probes of a breakdown are trained on the same R clusterings (quantized once), so differences between
rows are due to the concepts alone.

- *Cumulative*: the groups in a given order, each step adding one group to all previous ones, with the
  label group first (``Labels``, ``+Objects``, ``+Scene``, ...) and, separately, without it.
- *Single*: the label group alone, then each other group added on its own on top of it; the gain is reported
  as the mean over clusterings of the paired difference (same clustering, same split), with its std.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..concepts.bank import ConceptBank
from ..engine.config import ProtocolConfig
from ..engine.evaluate import protocol_config
from ..engine.protocol import Quantization, prepare_inputs, probe_all, quantize
from ..errors import QRProbeInputError
from ..progress import bar as progress_bar
from ..progress import format_seconds, note, scope
from ..results import HEADLINE

BREAKDOWN_METRICS = HEADLINE  # nmi, ami, top1, map, mi_bits


@dataclass
class Breakdown:
    """Scores of concept-group combinations on fixed clusterings.

    Attributes
    ----------
    cumulative : DataFrame, one row per step: ``step`` (the group added at this step), ``groups`` (all the
        step's groups, ``+``-joined), ``with_labels``,
        ``n_concepts``, ``<metric>_mean`` / ``<metric>_std``, ``mi_drop`` (adding the step's group lowered the
        MI estimate by more than its interval: :func:`mi_drop`)
    single : DataFrame, one row per group on top of the label group: ``group``, ``n_concepts``,
        ``<metric>_mean`` / ``_std`` and ``delta_<metric>_mean`` / ``_std`` (paired over clusterings);
        the first row is the label group itself (deltas 0). Empty without a label group.
    order : groups in cumulative order (label group excluded); label_group : the ground-truth group or None
    config : the protocol (dict); name : the representation's name
    """

    cumulative: pd.DataFrame
    single: pd.DataFrame
    order: list[str]
    label_group: str | None
    config: dict = field(default_factory=dict)
    name: str = ""


def _metrics_row(values: dict[str, list[float]]) -> dict:
    row = {}
    for m in BREAKDOWN_METRICS:
        row[f"{m}_mean"] = float(np.mean(values[m]))
        row[f"{m}_std"] = float(np.std(values[m]))
    return row


def _scores(quant: Quantization, bank: ConceptBank, groups: Sequence[str], progress: bool) -> dict[str, Any]:
    sub = bank.select_groups(groups)
    if sub.matrix.nnz == 0:
        raise QRProbeInputError(f"concept groups {list(groups)}: no image shows any of their concepts")
    outcomes = probe_all(quant, sub, progress)
    return {m: [o.scores[m] for o in outcomes] for m in BREAKDOWN_METRICS} | {"n_concepts": sub.n_concepts}


def resolve_order(bank: ConceptBank, order: Sequence[str] | None, label_group: str | None) -> list[str]:
    """The groups to add, in order: ``order`` if given (checked), else the bank's groups; label group removed."""
    known = bank.groups
    if label_group is not None and label_group not in known:
        raise QRProbeInputError(f"--label-group: unknown group {label_group!r}; the concepts have groups {known}")
    if order is None:
        order = known
    order = [str(g) for g in order]
    unknown = [g for g in order if g not in known]
    if unknown:
        raise QRProbeInputError(f"--order: unknown group(s) {unknown}; the concepts have groups {known}")
    if len(set(order)) != len(order):
        raise QRProbeInputError(f"--order: a group is listed twice in {order}")
    return [g for g in order if g != label_group]


def group_breakdown(features, concepts: ConceptBank, *, order: Sequence[str] | None = None,
                    label_group: str | None = None, config: ProtocolConfig | None = None,
                    cumulative: bool = True, single: bool = True, without_labels: bool = True,
                    name: str = "", progress: bool = False, **params) -> Breakdown:
    """Cumulative and single-group breakdown of one representation.

    Parameters
    ----------
    features : (N, D) array, FeatureStore or path (see :func:`qrprobe.engine.inputs.load_features`).
    concepts : ConceptBank with N rows.
    order : groups in the order they are accumulated (default: the bank's order).
    label_group : the ground-truth label group (e.g. ``"IN-1k"``), put first in the cumulative steps and used
        as the base of the single-group deltas; None: no label group.
    config : the protocol (K, clusterings, seeds, probe schedule); default: the paper's.
    cumulative, single : which parts to compute. without_labels : also the cumulative steps without the
        label group.

    Returns
    -------
    Breakdown
    """
    cfg = protocol_config(config, params)
    inputs = prepare_inputs(features, concepts)
    feats, bank = inputs.features, inputs.concepts
    order = resolve_order(bank, order, label_group)
    cum_steps = _cumulative_steps(order, label_group, without_labels) if cumulative else []
    singles: list[list[str]] = ([[label_group]] + [[label_group, g] for g in order]
                                if single and label_group is not None else [])
    planned = list(dict.fromkeys(tuple(sorted(g)) for g in [*(groups for _, _, groups in cum_steps), *singles]))
    with scope(name):
        quant = quantize(feats, cfg, progress)
        cache: dict[tuple[str, ...], dict] = {}
        with progress_bar(len(planned), "breakdown", enabled=progress, unit="step", leave=True) as bar:

            def scores(groups: Sequence[str]) -> dict:
                key = tuple(sorted(groups))
                if key not in cache:
                    what = f"breakdown step {len(cache) + 1}/{len(planned)}: {' + '.join(groups)}"
                    bar.set_description(what)
                    t = time.perf_counter()
                    with scope(f"step {len(cache) + 1}/{len(planned)}"):
                        cache[key] = _scores(quant, bank, groups, progress)
                    bar.update()
                    note(f"{what} ({cache[key]['n_concepts']} concepts) in "
                                   f"{format_seconds(time.perf_counter() - t)}", progress)
                return cache[key]

            cum_rows = []
            previous: dict[bool, dict] = {}
            for with_labels, step, groups_now in cum_steps:
                s = scores(groups_now)
                cum_rows.append({"step": step, "groups": " + ".join(groups_now), "with_labels": with_labels,
                                 "n_concepts": s["n_concepts"], **_metrics_row(s),
                                 "mi_drop": mi_drop(previous.get(with_labels), s)})
                previous[with_labels] = s
            single_rows = _single_rows(scores, label_group, order) if singles and label_group is not None else []
    return Breakdown(pd.DataFrame(cum_rows), pd.DataFrame(single_rows), order, label_group, cfg.to_dict(),
                     name or str(feats.provenance.get("model") or ""))


def mi_drop(before: dict | None, after: dict) -> bool:
    """Whether adding a group lowered the MI estimate by more than its interval: the paired difference over
    clusterings (same clusterings and splits) has a 95% t interval entirely below 0. Information cannot fall
    when concepts are added, so such a drop is the probe's (optimisation or overfitting; docs/protocol.md)."""
    if before is None:
        return False
    diff = np.asarray(after["mi_bits"], dtype=float) - np.asarray(before["mi_bits"], dtype=float)
    if len(diff) < 2:
        return False
    from scipy import stats

    high = diff.mean() + stats.t.ppf(0.975, len(diff) - 1) * diff.std(ddof=1) / np.sqrt(len(diff))
    return bool(high < 0)


def _cumulative_steps(order: list[str], label_group: str | None, without_labels: bool
                      ) -> list[tuple[bool, str, list[str]]]:
    """The cumulative steps ``(with_labels, group added, groups so far)``, with and/or without the labels."""
    variants = []
    if label_group is not None:
        variants.append(True)
    if label_group is None or without_labels:
        variants.append(False)
    out = []
    for with_labels in variants:
        groups: list[str] = [label_group] if with_labels and label_group is not None else []
        if with_labels and label_group is not None:
            out.append((True, label_group, list(groups)))
        for g in order:
            groups = [*groups, g]
            out.append((with_labels, g, list(groups)))
    return out


def _single_rows(scores, label_group: str, order: list[str]) -> list[dict]:
    """Each group added alone to the label group, with its difference to the label group alone."""
    base = scores([label_group])
    single_rows = []
    for g in [label_group, *order]:
        s = base if g == label_group else scores([label_group, g])
        row = {"group": g if g == label_group else f"+{g}", "n_concepts": s["n_concepts"], **_metrics_row(s)}
        for m in BREAKDOWN_METRICS:
            diff = np.asarray(s[m]) - np.asarray(base[m])
            row[f"delta_{m}_mean"] = float(diff.mean())
            row[f"delta_{m}_std"] = float(diff.std())
        single_rows.append(row)
    return single_rows
