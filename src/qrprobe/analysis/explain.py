"""Cluster explanations (paper Fig. 5, 8-11): which cluster pairs a concept group disambiguates, and why.

Two reverse probes trained on the *same* clustering, one with a base concept set (e.g. the ground-truth
labels) and one with a concept group added, are compared through their test confusion matrices. The pairs of
clusters whose confusion drops most are the ones the added concepts explain; for each pair, the concepts whose
probe coefficients differ most between the two clusters say what separates them (a positive difference favours
the first cluster of the pair, a negative one the second).

Pair confusion is defined in :mod:`qrprobe.analysis.confusion`; what the coefficients mean, in
:mod:`qrprobe.analysis.coefficients`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import QRProbeInputError
from ..progress import scope
from .coefficients import (
    MIN_SUPPORT,
    ClusterSummary,
    coefficient_differences,
    concept_support,
    example_rows,
    summarize_clusters,
)
from .confusion import confusion_drops, confusion_matrix, most_confused_pairs


# ---------------------------------------------------------------------- explanations
@dataclass
class PairExplanation:
    """One pair of clusters and the concepts that separate them.

    ``concepts`` has columns ``concept``, ``group``, ``difference``, ``favours``, ``support`` (see
    :func:`coefficient_differences`); ``rows_a`` / ``rows_b`` are example image rows of each cluster.
    ``n_a`` / ``n_b`` are the test images of each cluster and ``confused_base`` / ``confused_added`` the test
    images of the pair assigned to the other cluster of the pair: the counts the confusions rest on.
    """

    cluster_a: int
    cluster_b: int
    confusion_base: float
    confusion_added: float
    concepts: pd.DataFrame
    rows_a: np.ndarray
    rows_b: np.ndarray
    n_a: int = 0
    n_b: int = 0

    @property
    def confused_base(self) -> int:
        return round(self.confusion_base * (self.n_a + self.n_b))

    @property
    def confused_added(self) -> int | None:
        if not np.isfinite(self.confusion_added):
            return None
        return round(self.confusion_added * (self.n_a + self.n_b))

    @property
    def drop(self) -> float:
        return self.confusion_base - self.confusion_added


@dataclass
class Explanation:
    """Explanations of one clustering: confused pairs and per-cluster summaries.

    Attributes
    ----------
    pairs : list of PairExplanation, largest confusion drop (or confusion) first
    clusters : list of ClusterSummary
    base_label, added_label : names of the base concept set and of the added group ("" for a single probe)
    clustering : which clustering (0 … R-1) of the Result(s)
    n_clusters : K
    notes : remarks (e.g. missing image paths)
    image_ids, paths : (N,) per-row image ids and paths, or None
    labels : (N,) the explained clustering (cluster of every image), or None
    """

    pairs: list[PairExplanation]
    clusters: list[ClusterSummary]
    base_label: str = ""
    added_label: str = ""
    clustering: int = 0
    n_clusters: int = 0
    notes: list[str] = field(default_factory=list)
    image_ids: np.ndarray | None = None
    paths: np.ndarray | None = None
    labels: np.ndarray | None = None

    def pairs_table(self) -> pd.DataFrame:
        """One row per pair: clusters, their test images, confusions (share and count), and the top concepts
        favouring each cluster."""
        rows = []
        for p in self.pairs:
            c = p.concepts
            rows.append({
                "cluster_a": p.cluster_a, "cluster_b": p.cluster_b, "n_test_a": p.n_a, "n_test_b": p.n_b,
                "confusion_base": 100 * p.confusion_base, "confused_base": p.confused_base,
                "confusion_added": 100 * p.confusion_added, "confused_added": p.confused_added,
                "drop": 100 * p.drop,
                "favours_a": ", ".join(c.loc[c["favours"] == p.cluster_a, "concept"].head(5)),
                "favours_b": ", ".join(c.loc[c["favours"] == p.cluster_b, "concept"].head(5)),
            })
        cols = ["cluster_a", "cluster_b", "n_test_a", "n_test_b", "confusion_base", "confused_base",
                "confusion_added", "confused_added", "drop", "favours_a", "favours_b"]
        table = pd.DataFrame(rows, columns=cols)
        if not self.added_label:
            table = table.drop(columns=["confusion_added", "confused_added", "drop"]).rename(
                columns={"confusion_base": "confusion", "confused_base": "confused"})
        return table

    def concepts_table(self) -> pd.DataFrame:
        """All pairs' coefficient differences, long format (``support``: images carrying the concept)."""
        cols = ["cluster_a", "cluster_b", "concept", "group", "difference", "favours", "support"]
        parts = [p.concepts.assign(cluster_a=p.cluster_a, cluster_b=p.cluster_b) for p in self.pairs]
        if not parts:
            return pd.DataFrame(columns=cols)
        return pd.concat(parts, ignore_index=True)[cols]

    def clusters_table(self) -> pd.DataFrame:
        """One row per summarised cluster: size, top concepts, most frequent concepts (when known)."""
        table = pd.DataFrame([{
            "cluster": s.cluster, "size": s.size,
            "top_concepts": ", ".join(s.top_concepts["concept"]),
            "frequent_concepts": ", ".join(f"{n} ({100 * f:.0f}%)" for n, f in zip(
                s.frequent_concepts["concept"], s.frequent_concepts["frequency"], strict=True)),
        } for s in self.clusters], columns=["cluster", "size", "top_concepts", "frequent_concepts"])
        if len(table) and (table["frequent_concepts"] == "").all():  # no concept matrix was available
            table = table.drop(columns="frequent_concepts")
        return table


def explain_pairs(labels: np.ndarray, test_rows: np.ndarray, coef: np.ndarray, concepts: pd.DataFrame, *,
                  pred_added: np.ndarray, pred_base: np.ndarray | None = None, top_pairs: int = 6,
                  top_concepts_per_pair: int = 12, groups: Sequence[str] | None = None,
                  n_examples: int = 6, seed: int = 0, matrix=None, min_support: int = MIN_SUPPORT,
                  ) -> tuple[list[PairExplanation], list[ClusterSummary]]:
    """Explain the cluster pairs of one clustering.

    With ``pred_base``, the pairs are those whose test confusion drops most from the base probe to the probe
    that produced ``pred_added`` and ``coef``; without it, the pairs the probe confuses most.

    Parameters
    ----------
    labels : (N,) true cluster of every image.
    test_rows : indices of the test images (confusions are measured on them).
    coef : (M, K) coefficients of the probe with the added concepts.
    concepts : its concept table (M rows).
    pred_added, pred_base : (N,) predictions of the two probes for every image.
    groups : restrict the explaining concepts to these groups (e.g. the added group).
    matrix : optional (N, M) concept matrix, for per-cluster concept frequencies (and each concept's support).
    min_support : leave out concepts carried by fewer images (when the support is known: from ``matrix`` or
        the concept table's ``n_images`` column); 0 keeps all.

    Returns
    -------
    (pairs, summaries of the clusters that appear in the pairs)
    """
    labels = np.asarray(labels)
    k = coef.shape[1]
    test_rows = np.asarray(test_rows)
    y = labels[test_rows]
    if pred_base is not None:
        table = confusion_drops(y, np.asarray(pred_base)[test_rows], np.asarray(pred_added)[test_rows], k,
                                top_pairs)
    else:
        table = most_confused_pairs(confusion_matrix(y, np.asarray(pred_added)[test_rows], k), top_pairs)
        table = table.rename(columns={"confusion": "confusion_base"}).assign(confusion_added=np.nan)
    support = concept_support(concepts, matrix)
    pairs = []
    for row in table.to_dict("records"):
        a, b = int(row["cluster_a"]), int(row["cluster_b"])
        pairs.append(PairExplanation(
            a, b, float(row["confusion_base"]), float(row["confusion_added"]),
            coefficient_differences(coef, a, b, concepts, top_concepts_per_pair, groups, support=support,
                                    min_support=min_support),
            example_rows(labels, a, n_examples, seed), example_rows(labels, b, n_examples, seed),
            int(row["n_a"]), int(row["n_b"])))
    involved = list(dict.fromkeys(c for p in pairs for c in (p.cluster_a, p.cluster_b)))
    summaries = summarize_clusters(labels, coef, concepts, clusters=involved, matrix=matrix,
                                   n_examples=n_examples, seed=seed)
    return pairs, summaries


def _support_notes(concepts: pd.DataFrame, matrix, min_support: int) -> list[str]:
    """What the explanation says about concept support: the threshold applied, or that it is unknown."""
    support = concept_support(concepts, matrix)
    if support is None:
        return ["how many images carry each concept is unknown (a result saved before concept counts were "
                "recorded, and no concept matrix): rarely seen concepts are not left out"]
    if min_support <= 0:
        return []
    rare = int((support < min_support).sum())
    return [f"{rare} concept(s) carried by fewer than {min_support} images are left out of the explanations "
            "(their coefficients rest on too few images)"] if rare else []


# ---------------------------------------------------------------------- from Results / from inputs
def _check_arrays(result, what: str) -> None:
    missing = [n for n in ("clusterings", "splits", "predictions", "coef", "concepts") if getattr(result, n) is None]
    if missing:
        raise QRProbeInputError(f"{what} lacks {', '.join(missing)}: explanations need a result saved with "
                                "its arrays")


def _check_clustering(result, clustering: int, what: str) -> None:
    r = result.clusterings.shape[0]
    if not 0 <= clustering < r:
        raise QRProbeInputError(f"--clustering {clustering}: {what} has clusterings 0 … {r - 1}")


def explain_result(result, *, clustering: int = 0, top_pairs: int = 6, top_concepts_per_pair: int = 12,
                   n_examples: int = 6, seed: int = 0, matrix=None, min_support: int = MIN_SUPPORT) -> Explanation:
    """Explain one Result: the pairs its probe confuses most and the concepts that separate them.

    ``result`` is a :class:`qrprobe.results.Result` loaded with its arrays; ``matrix`` its (N, M) concept
    matrix, optional, for per-cluster concept frequencies.
    """
    _check_arrays(result, "the result")
    _check_clustering(result, clustering, "the result")
    labels = np.asarray(result.clusterings[clustering])
    test = np.flatnonzero(np.asarray(result.splits[clustering]) == 2)
    pairs, summaries = explain_pairs(labels, test, np.asarray(result.coef[clustering]), result.concepts,
                                     pred_added=np.asarray(result.predictions[clustering]),
                                     top_pairs=top_pairs, top_concepts_per_pair=top_concepts_per_pair,
                                     n_examples=n_examples, seed=seed, matrix=matrix, min_support=min_support)
    expl = Explanation(pairs, summaries, base_label=result.name or "probe", clustering=clustering,
                       n_clusters=result.coef.shape[2], image_ids=result.image_ids, paths=result.paths,
                       labels=labels)
    expl.notes.extend(_support_notes(result.concepts, matrix, min_support))
    return expl


def explain_results(base, added, *, clustering: int = 0, groups: Sequence[str] | None = None,
                    top_pairs: int = 6, top_concepts_per_pair: int = 12, n_examples: int = 6, seed: int = 0,
                    matrix=None, min_support: int = MIN_SUPPORT) -> Explanation:
    """Explain what the concepts of ``added`` (a Result with more concept groups) add over ``base``.

    Both Results must share their clusterings and splits (same features, K and seeds: ``evaluate`` is
    deterministic). ``groups`` restricts the explaining concepts (default: the groups ``added`` has and
    ``base`` lacks; all concepts when there are none).
    """
    _check_arrays(base, "the base result")
    _check_arrays(added, "the added result")
    _check_clustering(base, clustering, "the base result")
    _check_clustering(added, clustering, "the added result")
    if not (np.array_equal(base.clusterings[clustering], added.clusterings[clustering])
            and np.array_equal(base.splits[clustering], added.splits[clustering])):
        raise QRProbeInputError(
            "the two results do not share clustering and split "
            f"{clustering}: evaluate both on the same features with the same K and seed")
    base_groups = list(pd.unique(base.concepts["group"]))
    added_groups = [g for g in pd.unique(added.concepts["group"]) if g not in base_groups]
    if groups is None:
        groups = added_groups or None
    labels = np.asarray(added.clusterings[clustering])
    test = np.flatnonzero(np.asarray(added.splits[clustering]) == 2)
    pairs, summaries = explain_pairs(labels, test, np.asarray(added.coef[clustering]), added.concepts,
                                     pred_added=np.asarray(added.predictions[clustering]),
                                     pred_base=np.asarray(base.predictions[clustering]), top_pairs=top_pairs,
                                     top_concepts_per_pair=top_concepts_per_pair, groups=groups,
                                     n_examples=n_examples, seed=seed, matrix=matrix, min_support=min_support)
    expl = Explanation(pairs, summaries, base_label=" + ".join(base_groups),
                       added_label=" + ".join(added_groups) or (added.name or "added"), clustering=clustering,
                       n_clusters=added.coef.shape[2], image_ids=added.image_ids, paths=added.paths,
                       labels=labels)
    expl.notes.extend(_support_notes(added.concepts, matrix, min_support))
    return expl


def explain_groups(features, concepts, base_groups: Sequence[str], added_groups: Sequence[str], *,
                   config=None, clustering: int = 0, only_added: bool = True, top_pairs: int = 6,
                   top_concepts_per_pair: int = 12, n_examples: int = 6, progress: bool = False,
                   min_support: int = MIN_SUPPORT, **params) -> Explanation:
    """Quantize the features once and compare a probe on ``base_groups`` with one on base + ``added_groups``.

    ``config`` is the protocol (:class:`qrprobe.engine.config.ProtocolConfig`, or its fields as keywords);
    clustering ``clustering`` (seed ``config.seed + clustering``) is explained. ``only_added``: explain with the
    added groups' concepts only (as the paper's word clouds do); else with all concepts.
    """
    from dataclasses import replace

    from ..engine.evaluate import protocol_config
    from ..engine.protocol import prepare_inputs, probe_all, quantize

    cfg = protocol_config(config, params)
    base_groups, added_groups = [str(g) for g in base_groups], [str(g) for g in added_groups]
    if not base_groups or not added_groups:
        raise QRProbeInputError("--base and --add must each name at least one concept group")
    overlap = set(base_groups) & set(added_groups)
    if overlap:
        raise QRProbeInputError(f"group(s) {sorted(overlap)} are both in --base and --add")
    inputs = prepare_inputs(features, concepts)
    feats, bank = inputs.features, inputs.concepts
    one = replace(cfg, seed=cfg.seed + clustering, clusterings=1)
    quant = quantize(feats, one, progress)
    base_bank = bank.select_groups(base_groups)
    added_bank = bank.select_groups([*base_groups, *added_groups])
    with scope(" + ".join(base_groups)):
        base_out = probe_all(quant, base_bank, progress)[0]
    with scope(" + ".join([*base_groups, *added_groups])):
        added_out = probe_all(quant, added_bank, progress)[0]
    labels = quant.labels[0]
    pairs, summaries = explain_pairs(labels, base_out.split.test, added_out.probe.coef_, added_bank.concepts,
                                     pred_added=added_out.predictions, pred_base=base_out.predictions,
                                     top_pairs=top_pairs, top_concepts_per_pair=top_concepts_per_pair,
                                     groups=added_groups if only_added else None, n_examples=n_examples,
                                     seed=cfg.seed, matrix=added_bank.matrix, min_support=min_support)
    expl = Explanation(pairs, summaries, base_label=" + ".join(base_groups), added_label=" + ".join(added_groups),
                       clustering=clustering, n_clusters=quant.k, image_ids=feats.image_ids, paths=feats.paths,
                       labels=labels)
    expl.notes.extend(_support_notes(added_bank.concepts, added_bank.matrix, min_support))
    expl.notes.append(
        f"clustering {clustering} (seed {one.seed}); test NMI {base_out.scores['nmi']:.2f} with "
        f"{expl.base_label}, {added_out.scores['nmi']:.2f} with {expl.added_label} added")
    return expl
