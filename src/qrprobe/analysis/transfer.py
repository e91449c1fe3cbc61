"""Transfer (paper Table 7, App. D.5): apply a trained quantizer and probe to another image collection.

Nothing is retrained on the target images. For every clustering of a Result:

1. the target features are standardized with the *source* mean and scale and assigned to the nearest source
   centroid: these are the target images' "true" clusters;
2. the target concepts are matched to the probe's inputs by concept name (a probe input absent from the
   target is 0 for every target image, and is listed in ``missing_concepts``);
3. the source probe predicts each target image's cluster from its concepts, and the engine's metrics score it
   against the assignments of step 1 (plus top-5 accuracy, reported in Table 7).

``drop_groups`` evaluates a probe trained without some concept groups (Table 7 drops the ImageNet labels,
absent on ObjectNet). The stored probe was trained with them, so it is retrained on the *source* data — same
clusterings, same splits, same schedule — from the source concept bank without those groups.
Table 4 (quantizing and probing afresh on another dataset) is simply ``evaluate`` on that dataset.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..concepts.bank import ConceptBank
from ..engine.config import ProbeConfig
from ..engine.kmeans.quantize import KMeans, apply_standardization
from ..engine.probe.reverse_probe import ReverseProbe
from ..engine.protocol import prepare_inputs
from ..errors import QRProbeInputError
from ..metrics import score_predictions
from ..results import Result, summarize

TRANSFER_METRICS = ("nmi", "ami", "top1", "top5", "map", "mi_bits", "cluster_entropy_bits",
                    "cross_entropy_bits", "mi_ratio")


@dataclass
class TransferResult:
    """Scores of a source Result's quantizer and probes on target images.

    Attributes
    ----------
    summary : ``{metric: {mean, std, values}}`` over clusterings (percentages ×100, bits)
    per_clustering : one dict of scores per clustering
    clusterings : (R, N_target) nearest-source-centroid assignment of every target image
    predictions : (R, N_target) the source probe's prediction for every target image
    missing_concepts : probe inputs with no column in the target concepts (fed as 0)
    dropped_groups : groups the probes were retrained without
    scored_rows : the target rows scored (None: all)
    name : label of the source representation
    """

    summary: dict
    per_clustering: list[dict]
    clusterings: np.ndarray
    predictions: np.ndarray
    missing_concepts: list[str] = field(default_factory=list)
    dropped_groups: list[str] = field(default_factory=list)
    scored_rows: np.ndarray | None = None
    name: str = ""
    notes: list[str] = field(default_factory=list)


def _require(result: Result, *names: str) -> None:
    missing = [n for n in names if getattr(result, n) is None]
    if missing:
        raise QRProbeInputError(
            f"the result {result.name or ''!s} lacks {', '.join(missing)}: transfer needs a result saved with its "
            "arrays (centroids, standardizer, probe coefficients and concept table)")


def aligned_concepts(bank: ConceptBank, names: Sequence[str]) -> tuple[sp.csr_matrix, list[str]]:
    """The target matrix with columns re-ordered to ``names`` (absent names → all-zero columns).

    Returns the (N, len(names)) CSR matrix and the list of names that the target bank lacks.
    """
    col_of = {n: j for j, n in enumerate(bank.names)}
    src_cols = [col_of.get(str(n), -1) for n in names]
    present = np.array([c >= 0 for c in src_cols], dtype=bool)
    select = sp.csr_matrix((np.ones(int(present.sum()), np.uint8),
                            (np.asarray(src_cols)[present], np.flatnonzero(present))),
                           shape=(bank.n_concepts, len(names)))
    matrix = sp.csr_matrix(bank.matrix @ select)
    missing = [str(n) for n, ok in zip(names, present, strict=True) if not ok]
    return matrix, missing


def top_k_accuracy(y_true: np.ndarray, log_proba: np.ndarray, k: int = 5) -> float:
    """Share of rows whose true class is among the ``k`` highest scores, ×100."""
    k = min(k, log_proba.shape[1])
    top = np.argpartition(-log_proba, k - 1, axis=1)[:, :k]
    return 100.0 * float(np.mean((top == np.asarray(y_true)[:, None]).any(axis=1)))


def _retrain_without(result: Result, source_concepts: ConceptBank, drop: list[str],
                     r: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Retrain clustering ``r``'s probe on the source data without the groups ``drop``."""
    _require(result, "clusterings", "splits")
    assert result.clusterings is not None  # checked by _require
    assert result.splits is not None
    bank = source_concepts
    if result.image_ids is not None and bank.image_ids is not None:
        order = pd.Index(bank.image_ids).get_indexer(pd.Index(result.image_ids))
        if (order < 0).any():
            raise QRProbeInputError("--source-concepts: its image ids do not cover the result's images")
        bank = bank.select_rows(order)
    elif bank.n_images != result.clusterings.shape[1]:
        raise QRProbeInputError(f"--source-concepts has {bank.n_images} rows but the result has "
                                f"{result.clusterings.shape[1]} images")
    bank = bank.drop_groups(drop)
    labels = np.asarray(result.clusterings[r], dtype=np.int64)
    codes = np.asarray(result.splits[r])
    train, val = np.flatnonzero(codes == 0), np.flatnonzero(codes == 1)
    probe_cfg = ProbeConfig.from_saved(result.config.get("probe", {}))
    seed = int(result.seeds[r])
    probe = ReverseProbe(probe_cfg, seed=seed, device=result.config.get("device", "auto"))
    k = int(result.config["k"])
    probe.fit(bank.matrix[train], labels[train], bank.matrix[val], labels[val], n_classes=k)
    return probe.coef_, probe.intercept_, bank.names


def _check_compatible(result: Result, dim: int, bank: ConceptBank, drop: list[str]) -> None:
    """Refuse target inputs the source's quantizer and probe cannot read: another feature dimension, or no
    concept in common (every probe input would be 0 and the scores would measure the bias alone)."""
    assert result.standardizer is not None  # checked by transfer's _require
    assert result.concepts is not None
    source_dim = len(np.asarray(result.standardizer["mean"]))
    if dim != source_dim:
        raise QRProbeInputError(f"FEATURES: the target features have {dim} dimensions, the result's quantizer "
                                f"{source_dim}; transfer needs the same representation on both image sets")
    table = result.concepts
    used = table.loc[~table["group"].isin(drop), "name"].astype(str) if drop else table["name"].astype(str)
    shared = set(used) & {str(n) for n in bank.names}
    if not shared:
        raise QRProbeInputError(
            f"CONCEPTS: none of the {len(used)} concepts of the result's probe (e.g. {list(used[:3])}) is among "
            f"the {bank.n_concepts} target concepts (e.g. {bank.names[:3]}); concepts are matched by name, so "
            "the probe would see only zeros")


def transfer(result: Result, features, concepts: ConceptBank, *, drop_groups: Sequence[str] = (),
             source_concepts: ConceptBank | None = None, rows: np.ndarray | None = None,
             device: str = "auto") -> TransferResult:
    """Apply ``result``'s quantizers and probes to target ``features`` / ``concepts`` without retraining.

    Parameters
    ----------
    result : a Result loaded with its arrays (centroids, standardizer, coef, bias, concept table).
    features : target features (N, D): array, FeatureStore or path; D must match the source.
    concepts : target ConceptBank with N rows.
    drop_groups : concept groups the probes must not use; needs ``source_concepts`` (the probes are retrained
        on the source data without them, see the module docstring).
    source_concepts : the source ConceptBank (only with ``drop_groups``).
    rows : score only these target rows (e.g. a test split); None: all rows.

    Returns
    -------
    TransferResult
    """
    _require(result, "centroids", "standardizer", "coef", "bias", "concepts")
    assert result.centroids is not None  # checked by _require
    assert result.standardizer is not None
    assert result.coef is not None
    assert result.bias is not None
    assert result.concepts is not None
    inputs = prepare_inputs(features, concepts)
    feats, bank = inputs.features, inputs.concepts
    drop = [str(g) for g in drop_groups]
    if drop:
        known = list(pd.unique(result.concepts["group"]))
        unknown = [g for g in drop if g not in known]
        if unknown:
            raise QRProbeInputError(f"--drop-groups: the result's probe has no group(s) {unknown}; it has {known}")
        if source_concepts is None:
            raise QRProbeInputError(
                "--drop-groups needs --source-concepts: the stored probe was trained with that group, so it is "
                "retrained on the source images without it")
    _check_compatible(result, feats.array.shape[1], bank, drop)
    z = apply_standardization(feats.array, result.standardizer["mean"], result.standardizer["scale"])
    n = z.shape[0]
    scored = np.arange(n) if rows is None else np.asarray(rows, dtype=np.int64)
    if len(scored) == 0:
        raise QRProbeInputError("no target rows to score")
    per, clusterings, predictions = [], [], []
    missing: list[str] = []
    for r in range(result.centroids.shape[0]):
        km = KMeans(int(result.centroids.shape[1]), device=device)
        km.cluster_centers_ = np.array(result.centroids[r], dtype=np.float32)  # a writable copy of the mmap
        labels = km.predict(z)
        names: Sequence[str]
        if drop:
            assert source_concepts is not None  # checked above
            coef, bias, names = _retrain_without(result, source_concepts, drop, r)
        else:
            coef, bias = np.array(result.coef[r], np.float32), np.array(result.bias[r], np.float32)
            names = result.concepts["name"].tolist()
        matrix, missing = aligned_concepts(bank, list(names))
        probe = ReverseProbe.from_coefficients(coef, bias, device=device)
        log_proba = probe.predict_log_proba(matrix)
        scores = score_predictions(labels[scored], log_proba[scored])
        scores["top5"] = top_k_accuracy(labels[scored], log_proba[scored], 5)
        per.append({"clustering": r, "seed": int(result.seeds[r]) if r < len(result.seeds) else r, **scores,
                    "n_scored": len(scored)})
        clusterings.append(labels.astype(np.int32))
        predictions.append(log_proba.argmax(axis=1).astype(np.int32))
    notes = []
    if missing:
        notes.append(f"{len(missing)} of the probe's concepts are absent from the target concepts and were fed "
                     f"as 0: {', '.join(missing[:10])}{' …' if len(missing) > 10 else ''}")
    return TransferResult(summarize(per, TRANSFER_METRICS), per, np.stack(clusterings), np.stack(predictions),
                          missing, drop, None if rows is None else scored, result.name, notes)
