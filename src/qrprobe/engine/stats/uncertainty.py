"""Intervals and paired tests from per-clustering scores and their bootstrap replicates.

A result's score is the mean over R clusterings of a per-clustering score ``m_r``. Two things vary from run to
run: the clustering seed (K-means initialisation, split, probe shuffle order) and which images the test
splits happen to contain. The image bootstrap (:mod:`qrprobe.engine.stats.bootstrap`) gives, for every clustering,
``B`` replicate values ``X[r, b]`` under resampling weights shared by all clusterings (and all results on the
same images). Write ``m_r = μ + a_r + e_r`` (seed effect, test-sampling error); the errors of different
clusterings are correlated because their test splits share images. Then

    Var(mean_r m_r) = E[s²] / R + c̄,

where ``s²`` is the sample variance of the R values (ddof = 1: it sees the seed effects and the part of the
test error specific to each clustering) and ``c̄`` the mean covariance between the errors of two different
clusterings (the part of the test error all clusterings share, invisible in their spread). ``c̄`` is
estimated from the replicates: the mean off-diagonal entry of their R × R covariance. The estimate
``V = s²/R + c̄`` is unbiased; it is floored at a quarter of ``V_img`` (the image-bootstrap variance of the
mean) against a degenerate spread of few values. The interval is ``mean ± t_df · √V`` with ``df = R − 1``
(Welch–Satterthwaite for a difference of two results with their own clusterings); with one clustering only
``V_img`` is available (normal quantile). Replicates are centred on their own mean, so the plug-in bias of
NMI under resampling (a bootstrap sample repeats images, which adds spurious information) moves no interval:
only their spread is used. ``docs/statistics.md`` compares this with a two-level percentile bootstrap (which
undercovers with 5 clusterings) and reports the measured calibration.

A paired difference of two results on the same images uses the same formula on the difference: clustering by
clustering when the two share their clusterings (the same features and seeds, e.g. two concept sets), else
``V = s²_A/R_A + s²_B/R_B + c̄_AA + c̄_BB − 2·c̄_AB`` (``c̄_AB``: the covariance of the two means under the
shared resampling, which removes what the two results' errors have in common).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Estimate:
    """A mean with its standard error, interval and (for differences) a two-sided p-value against 0.

    ``se_images`` and ``se_seeds`` are the two components of ``se`` (``se² = se_images² + se_seeds²``);
    ``df`` the degrees of freedom of the t quantile (``inf``: normal).
    """

    mean: float
    se: float
    ci_low: float
    ci_high: float
    df: float
    p_value: float
    se_images: float
    se_seeds: float
    level: float

    def as_dict(self, prefix: str = "") -> dict[str, float]:
        return {f"{prefix}{k}": v for k, v in (
            ("se", self.se), ("ci_low", self.ci_low), ("ci_high", self.ci_high), ("df", self.df),
            ("p_value", self.p_value), ("se_images", self.se_images), ("se_seeds", self.se_seeds))}


_FLOOR = 0.25  # V is at least this share of the image-bootstrap variance of the mean


def _finite_replicates(*replicates: np.ndarray | None) -> list[np.ndarray | None]:
    """The replicate arrays (R, B) restricted to the replicates finite in all of them (a replicate that drew
    no image of a tiny split, or an undefined ratio, is left out rather than making the interval NaN)."""
    present = [np.asarray(x, dtype=np.float64) for x in replicates if x is not None]
    if not present:
        return list(replicates)
    keep = np.logical_and.reduce([np.isfinite(x).all(axis=0) for x in present])
    return [None if x is None else np.asarray(x, dtype=np.float64)[:, keep] for x in replicates]


def _spread(values: np.ndarray, replicates: np.ndarray | None) -> tuple[float, float, int]:
    """``(s²/R, c̄, R)`` of one set of per-clustering values and their replicates (R, B) or None."""
    values = np.asarray(values, dtype=np.float64)
    r = len(values)
    s2r = float(np.var(values, ddof=1)) / r if r > 1 else 0.0
    shared = 0.0
    if replicates is not None and r > 1 and replicates.shape[1] >= 2:
        cov = np.cov(np.asarray(replicates, dtype=np.float64))
        shared = float(cov.sum() - np.trace(cov)) / (r * (r - 1))
    return s2r, shared, r


def _image_variance(mean_replicates: np.ndarray | None) -> float:
    if mean_replicates is None or len(mean_replicates) < 2:
        return 0.0
    return float(np.var(mean_replicates, ddof=1))


def _estimate(mean: float, v: float, v_img: float, s2_terms: list[tuple[float, int]], level: float) -> Estimate:
    """An Estimate from the variance ``v`` of the mean (``v_img``: its image-sampling part) and the ``s²/R``
    terms with their R, for the degrees of freedom."""
    v = max(v, _FLOOR * v_img, 0.0)
    se = float(np.sqrt(v))
    denom = sum(t**2 / (r - 1) for t, r in s2_terms if r > 1)
    df = max(v**2 / denom, 1.0) if denom > 0 and any(r > 1 for _, r in s2_terms) else float("inf")
    q = float(stats.t.ppf(0.5 + level / 2, df)) if np.isfinite(df) else float(stats.norm.ppf(0.5 + level / 2))
    if se > 0:
        t_stat = abs(mean) / se
        p = float(2 * (stats.t.sf(t_stat, df) if np.isfinite(df) else stats.norm.sf(t_stat)))
    else:
        p = 1.0 if mean == 0 else 0.0
    return Estimate(float(mean), se, float(mean - q * se), float(mean + q * se), float(df), min(p, 1.0),
                    float(np.sqrt(v_img)), float(np.sqrt(max(v - v_img, 0.0))), level)


def mean_estimate(values: np.ndarray, replicates: np.ndarray | None, level: float = 0.95) -> Estimate:
    """The mean of per-clustering ``values`` (R,) with its interval, from their ``replicates`` (R, B) or None.

    ``p_value`` tests the mean against 0 (meaningful for differences, e.g. a score minus its null).
    """
    values = np.asarray(values, dtype=np.float64)
    (replicates,) = _finite_replicates(replicates)
    s2r, shared, r = _spread(values, replicates)
    v_img = _image_variance(None if replicates is None else np.asarray(replicates).mean(axis=0))
    v = v_img if r == 1 else s2r + shared
    return _estimate(float(values.mean()), v, v_img, [(s2r, r)], level)


def difference_estimate(values_a: np.ndarray, replicates_a: np.ndarray | None, values_b: np.ndarray,
                        replicates_b: np.ndarray | None, *, shared_clusterings: bool,
                        level: float = 0.95) -> Estimate:
    """``mean(values_a) − mean(values_b)`` with interval and p-value (two-sided, against no difference).

    ``replicates_*`` (R, B) must come from the same images and the same replicate numbers (the shared weights
    of :mod:`qrprobe.engine.stats.bootstrap`), or be None for both. ``shared_clusterings``: the two results were
    computed on the same clusterings (same R), so clustering ``r`` of one is paired with clustering ``r`` of
    the other; otherwise their seeds vary independently.
    """
    values_a, values_b = np.asarray(values_a, np.float64), np.asarray(values_b, np.float64)
    has_reps = replicates_a is not None and replicates_b is not None
    ra, rb = _finite_replicates(replicates_a, replicates_b) if has_reps else (None, None)
    if shared_clusterings:
        if len(values_a) != len(values_b):
            raise ValueError("shared clusterings need the same number of clusterings")
        return mean_estimate(values_a - values_b, ra - rb if ra is not None and rb is not None else None, level)
    s2a, shared_a, na = _spread(values_a, ra)
    s2b, shared_b, nb = _spread(values_b, rb)
    mean_diff = ra.mean(axis=0) - rb.mean(axis=0) if ra is not None and rb is not None else None
    v_img = _image_variance(mean_diff)
    cross = 0.0
    if ra is not None and rb is not None and ra.shape[1] >= 2:
        cross = float(np.cov(ra.mean(axis=0), rb.mean(axis=0))[0, 1])
    # a result with one clustering contributes its image variance instead of s²/R + c̄
    part_a = s2a + shared_a if na > 1 else _image_variance(None if ra is None else ra.mean(axis=0))
    part_b = s2b + shared_b if nb > 1 else _image_variance(None if rb is None else rb.mean(axis=0))
    return _estimate(float(values_a.mean() - values_b.mean()), part_a + part_b - 2 * cross, v_img,
                     [(s2a, na), (s2b, nb)], level)


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment of ``p_values`` (family-wise error), NaN entries left out and kept NaN."""
    p = np.asarray(p_values, dtype=np.float64)
    ok = np.flatnonzero(np.isfinite(p))
    out = np.full(len(p), np.nan)
    if len(ok) == 0:
        return out.tolist()
    order = ok[np.argsort(p[ok], kind="stable")]
    m = len(order)
    adjusted = np.maximum.accumulate([(m - i) * p[j] for i, j in enumerate(order)])
    out[order] = np.minimum(adjusted, 1.0)
    return out.tolist()


__all__ = ["Estimate", "difference_estimate", "holm", "mean_estimate"]
