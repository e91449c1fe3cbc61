"""The documented K-means options: greedy k-means++ (``kmeans_init="k-means++"``), the objective-plateau
early stop (``kmeans_early_stop``) and the restart screen (``kmeans_restart_screen``), all off by default."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.cluster import kmeans_plusplus
from sklearn.datasets import make_blobs

from _kmeans_reference import greedy_kmeans_plus_plus, reference_lloyd
from qrprobe.engine.config import KMeansConfig, ProtocolConfig
from qrprobe.engine.kmeans.lloyd import initial_centroids, kmeans_plus_plus, local_trials
from qrprobe.engine.kmeans.quantize import KMeans, Stored
from qrprobe.engine.kmeans.standardize import to_storage
from qrprobe.errors import ParameterError


def blobs(n=3000, d=16, centres=30, std=3.0, seed=0) -> np.ndarray:
    x, _ = make_blobs(n_samples=n, centers=centres, n_features=d, cluster_std=std, random_state=seed)
    return ((x - x.mean(0)) / x.std(0)).astype(np.float32)


def potential(x: np.ndarray, centres: np.ndarray) -> float:
    return float(((x[:, None, :].astype(np.float64) - centres[None]) ** 2).sum(-1).min(1).sum())


def test_local_trials_follow_scikit_learn():
    assert local_trials(1000) == 2 + int(np.log(1000)) == 8
    assert local_trials(2) == 2


def test_greedy_k_means_plus_plus_picks_the_rows_of_a_float64_reference():
    x = blobs(n=600, d=8, centres=12)
    for seed in range(3):
        ours = kmeans_plus_plus(torch.from_numpy(x), 12, np.random.default_rng(seed)).numpy()
        rows = greedy_kmeans_plus_plus(x, 12, np.random.default_rng(seed), local_trials(12))
        np.testing.assert_array_equal(ours, x[rows])


def test_greedy_k_means_plus_plus_matches_scikit_learn_and_beats_plain_d2_sampling():
    x = blobs()
    ours = [potential(x, kmeans_plus_plus(torch.from_numpy(x), 20, np.random.default_rng(s)).numpy())
            for s in range(12)]
    plain = [potential(x, kmeans_plus_plus(torch.from_numpy(x), 20, np.random.default_rng(s), trials=1).numpy())
             for s in range(12)]
    sk = [potential(x, kmeans_plusplus(x, 20, random_state=s)[0]) for s in range(12)]
    assert np.mean(ours) == pytest.approx(np.mean(sk), rel=0.05)  # the same algorithm: same potential on average
    assert np.mean(ours) < 0.95 * np.mean(plain)


def test_greedy_k_means_plus_plus_on_16_bit_storage_equals_float32_of_the_same_values():
    x16 = to_storage(blobs(n=800).astype(np.float64), "float16")
    a = kmeans_plus_plus(x16, 10, np.random.default_rng(3), chunk=128)
    b = kmeans_plus_plus(x16.float(), 10, np.random.default_rng(3))
    np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize(("name", "value", "bad"), [("kmeans_early_stop", 0.001, (-0.1, 1.5, "x")),
                                                     ("kmeans_restart_screen", 10, (0, -3, 1.5, "x", True))])
def test_options_are_off_by_default_and_saved_forms_stay_as_before(name, value, bad):
    assert getattr(KMeansConfig(), name) is None
    assert name not in ProtocolConfig().to_dict()  # cache keys of earlier results unchanged
    cfg = ProtocolConfig(**{name: value})
    assert cfg.to_dict()[name] == value
    assert ProtocolConfig.from_dict(cfg.to_dict()) == cfg
    assert ProtocolConfig.from_dict(ProtocolConfig().to_dict()) == ProtocolConfig()
    for wrong in bad:
        with pytest.raises(ParameterError, match=name):
            KMeansConfig(**{name: wrong})


def test_early_stop_float32_path_stops_on_the_plateau():
    x = blobs(n=4000, d=16, centres=60, std=4.0)
    full = KMeans(40, iters=200, restarts=1, seed=0, kmeans_precision="float32", device="cpu").fit(x)
    same = KMeans(40, iters=200, restarts=1, seed=0, kmeans_precision="float32", device="cpu",
                  kmeans_early_stop=None).fit(x)
    np.testing.assert_array_equal(full.labels_, same.labels_)
    early = KMeans(40, iters=200, restarts=1, seed=0, kmeans_precision="float32", device="cpu",
                   kmeans_early_stop=1e-3).fit(x)
    assert early.result_.n_iter < full.result_.n_iter
    assert early.inertia_ >= full.inertia_ * (1 - 1e-6)
    assert early.inertia_ <= full.inertia_ * 1.02


@pytest.mark.parametrize("precision", ["float16", "bfloat16"])
@pytest.mark.parametrize("threshold", [0.0, 1e-3])
def test_early_stop_exact_path_equals_float64_lloyd_with_the_same_rule(precision, threshold):
    x = blobs(n=3000, d=32, centres=25, std=3.0)
    s = Stored(to_storage(x.astype(np.float64), precision), precision)
    init = s.x[np.random.default_rng(0).choice(len(x), 40, replace=False)].float().numpy()
    km = KMeans(40, iters=60, restarts=1, kmeans_init=init, device="cpu", kmeans_early_stop=threshold).fit_stored(s)
    labels, centroids, n_done = reference_lloyd(s.x, init, 60, early_stop=threshold)
    np.testing.assert_array_equal(km.labels_, labels)
    np.testing.assert_array_equal(km.cluster_centers_, centroids)
    assert km.result_.n_iter == n_done
    if threshold:
        assert n_done < reference_lloyd(s.x, init, 60)[2]


def test_restart_screen_needs_the_16_bit_path():
    x = blobs(n=400, d=8, centres=10)
    for other in ({"kmeans_precision": "float32"}, {"kmeans_backend": "faiss"}):
        with pytest.raises(ParameterError, match=r"kmeans_restart_screen.*16-bit"):
            KMeans(5, restarts=3, kmeans_restart_screen=2, device="cpu", **other).fit(x)


@pytest.mark.parametrize("screen", [1, 4, 12])
def test_restart_screen_keeps_the_best_restart_at_t_and_finishes_it_as_uninterrupted(screen):
    """Every restart runs ``screen`` iterations; the one with the lowest inertia then goes on: its labels and
    centroids are those the same restart reaches uninterrupted (Lloyd's next step depends only on the
    centroids), the other restarts keep their inertia at T, and the result is never better than the paper's
    schedule, which sees every restart to the end."""
    x = blobs(n=3000, d=16, centres=60, std=4.0)
    s = Stored(to_storage(x.astype(np.float64), "float16"), "float16")
    k, restarts, iters, seed = 40, 4, 60, 1

    def fit(**kw):
        return KMeans(k, iters=kw.pop("iters", iters), restarts=kw.pop("restarts", restarts), seed=seed,
                      device="cpu", **kw).fit_stored(s)

    at_t = fit(iters=screen).result_.inertias
    full = fit()
    screened = fit(kmeans_restart_screen=screen)
    pick = int(np.argmin(at_t))
    rng = np.random.default_rng(seed)  # the restarts' initial centroids, drawn in turn as fit_exact draws them
    starts = [initial_centroids(s.x, k, "random", rng) for _ in range(restarts)]
    alone = fit(restarts=1, kmeans_init=starts[pick].numpy())
    np.testing.assert_array_equal(screened.labels_, alone.labels_)
    np.testing.assert_array_equal(screened.cluster_centers_, alone.cluster_centers_)
    assert screened.inertia_ == alone.inertia_ == full.result_.inertias[pick]
    assert screened.inertia_ >= full.inertia_
    assert [v for r, v in enumerate(screened.result_.inertias) if r != pick] == \
        [v for r, v in enumerate(at_t) if r != pick]
    assert fit(kmeans_restart_screen=iters).inertia_ == full.inertia_  # T ≥ iters: the paper's schedule
