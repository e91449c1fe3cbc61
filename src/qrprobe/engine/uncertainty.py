"""Intervals and paired tests from per-clustering scores and their bootstrap replicates.

A result's score is the mean over R clusterings of a per-clustering score ``m_r``. Two things vary from run to
run: the clustering seed (K-means initialisation, split, probe shuffle order) and which images the test
splits happen to contain. The image bootstrap (:mod:`qrprobe.engine.bootstrap`) gives, for every clustering,
``B`` replicate values ``X[r, b]`` under shared resampling weights; from them and the R values this module
estimates the variance of the mean as two components (``docs/statistics.md``):

- image sampling: ``V_img = Var_b(mean_r X[r, b])``, which includes the covariance between clusterings
  whose test splits share images;
- seeds: ``σ²_seed / R``, where ``σ²_seed = max(0, s² − noise)``, ``s²`` the sample variance of the R values
  (ddof = 1) and ``noise = (tr Σ − 1ᵀΣ1 / R) / (R − 1)`` the part of ``s²`` that test-image sampling alone
  produces (``Σ`` the R × R covariance of the replicates). Subtracting it avoids counting the test sampling
  twice.

The interval is ``mean ± t_{df} · √(V_img + σ²_seed/R)`` with Welch–Satterthwaite degrees of freedom for the
``s²`` term (R − 1 of them; the bootstrap term is treated as known). With one clustering only the image term
is available. Replicates are centred on their own mean, so the plug-in bias of NMI under resampling (a
bootstrap sample repeats images, which adds spurious information) moves no interval: only their spread is
used.

A paired difference of two results on the same images uses the same formulas on the difference: per
clustering when the two share their clusterings (the same features and seeds, e.g. two concept sets), else
with each result's seed component added.
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


def _components(values: np.ndarray, replicates: np.ndarray | None) -> tuple[float, float, float, int]:
    """(image variance of the mean, seed variance of the mean, s²/R, R) of one set of per-clustering values."""
    values = np.asarray(values, dtype=np.float64)
    r = len(values)
    v_img = 0.0
    noise = 0.0
    if replicates is not None and replicates.shape[1] >= 2:
        x = np.asarray(replicates, dtype=np.float64)
        cov = np.atleast_2d(np.cov(x))
        v_img = float(cov.sum()) / r**2
        if r > 1:
            noise = float(np.trace(cov) - cov.sum() / r) / (r - 1)
    if r < 2:
        return max(v_img, 0.0), 0.0, 0.0, r
    s2 = float(np.var(values, ddof=1))
    seed = max(0.0, s2 - noise)
    return max(v_img, 0.0), seed / r, s2 / r, r


def _estimate(mean: float, v_img: float, v_seed: float, s2_terms: list[tuple[float, int]], level: float) -> Estimate:
    var = v_img + v_seed
    se = float(np.sqrt(var))
    denom = sum(t**2 / (r - 1) for t, r in s2_terms if r > 1 and t > 0)
    df = var**2 / denom if v_seed > 0 and denom > 0 else float("inf")
    df = max(df, 1.0)
    q = float(stats.t.ppf(0.5 + level / 2, df)) if np.isfinite(df) else float(stats.norm.ppf(0.5 + level / 2))
    if se > 0:
        t_stat = abs(mean) / se
        p = float(2 * (stats.t.sf(t_stat, df) if np.isfinite(df) else stats.norm.sf(t_stat)))
    else:
        p = 1.0 if mean == 0 else 0.0
    return Estimate(float(mean), se, float(mean - q * se), float(mean + q * se), float(df), min(p, 1.0),
                    float(np.sqrt(v_img)), float(np.sqrt(v_seed)), level)


def mean_estimate(values: np.ndarray, replicates: np.ndarray | None, level: float = 0.95) -> Estimate:
    """The mean of per-clustering ``values`` (R,) with its interval, from their ``replicates`` (R, B) or None.

    ``p_value`` tests the mean against 0 (meaningful for differences, e.g. a score minus its null).
    """
    v_img, v_seed, s2r, r = _components(values, replicates)
    return _estimate(float(np.mean(values)), v_img, v_seed, [(s2r, r)], level)


def difference_estimate(values_a: np.ndarray, replicates_a: np.ndarray | None, values_b: np.ndarray,
                        replicates_b: np.ndarray | None, *, shared_clusterings: bool,
                        level: float = 0.95) -> Estimate:
    """``mean(values_a) − mean(values_b)`` with interval and p-value (two-sided, against no difference).

    ``replicates_*`` (R, B) must come from the same images and the same replicate numbers (the shared weights
    of :mod:`qrprobe.engine.bootstrap`), or be None for both. ``shared_clusterings``: the two results were
    computed on the same clusterings (same R), so clustering ``r`` of one is paired with clustering ``r`` of
    the other; otherwise their seeds vary independently.
    """
    values_a, values_b = np.asarray(values_a, np.float64), np.asarray(values_b, np.float64)
    has_reps = replicates_a is not None and replicates_b is not None
    if shared_clusterings:
        if len(values_a) != len(values_b):
            raise ValueError("shared clusterings need the same number of clusterings")
        reps = np.asarray(replicates_a) - np.asarray(replicates_b) if has_reps else None
        return mean_estimate(values_a - values_b, reps, level)
    ra = np.asarray(replicates_a) if has_reps else None
    rb = np.asarray(replicates_b) if has_reps else None
    _, seed_a, s2a, na = _components(values_a, ra)
    _, seed_b, s2b, nb = _components(values_b, rb)
    v_img = 0.0
    if has_reps and ra.shape[1] >= 2:
        v_img = float(np.var(ra.mean(axis=0) - rb.mean(axis=0), ddof=1))
    return _estimate(float(values_a.mean() - values_b.mean()), v_img, seed_a + seed_b, [(s2a, na), (s2b, nb)],
                     level)


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
