"""docs/CONTRIBUTING.md, "Add a K-means distance engine", followed literally: a trivial engine (every row against
every centroid in float64 on the CPU) is written as a subclass of ``Engine``, registered with its name, where
it can run and what it guarantees, and exact Lloyd on it gives the reference labels (``_kmeans_reference``).

Copy this file for a new engine: replace ``Float64Engine`` and ``SPEC`` by yours.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import make_blobs

from _kmeans_reference import inertia, reference_lloyd
from qrprobe.engine.kmeans import engines
from qrprobe.engine.kmeans.bounds import make_groups
from qrprobe.engine.kmeans.engines import DistanceEngine, Engine
from qrprobe.engine.kmeans.engines.base import gamma, slot_csq, slot_matrix
from qrprobe.engine.kmeans.quantize import KMeans
from qrprobe.engine.kmeans.standardize import to_storage
from qrprobe.engine.kmeans.stored import Stored
from qrprobe.errors import QRProbeInputError


# ------------------------------------------------------------------------------------------------ 1. the engine
class Float64Engine(Engine):
    """Every row against every centroid in float64 on the CPU: the stored values and the float32 centroids are
    exact in float64, their products too, and only the float64 sums round. The values are returned in float32,
    as the interface says, so the inherited bound (float32 results, accumulation error γ_{D+2}) covers them."""

    def gamma(self) -> float:
        return gamma(self.x.shape[1] + 2, 2.0**-53)  # float64 sums of D products (+ the two terms of v)

    def rounded(self, centroids: torch.Tensor) -> torch.Tensor:
        return centroids  # multiplied as they are

    def _prepare(self, centroids: torch.Tensor) -> None:
        self.slots = slot_matrix(centroids, self.slot_ids, self.x.shape[1]).double()  # (G·W, D)
        self.slot_sq = slot_csq(self.csq64, self.slot_ids).double()  # (G·W,), inf for padding slots

    def group_min2(self, rows: torch.Tensor, need: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
        n, g, w = len(rows), self.groups, self.width
        v = self.slot_sq - 2 * self.x[rows].double() @ self.slots.T  # (n, G·W): every group, needed or not
        two = torch.topk(v.view(n, g, w), 2, dim=2, largest=False)
        ids = self.centroid_ids(two.indices[..., 0] + torch.arange(g) * w)
        done = torch.ones((n, g), dtype=torch.bool)
        return two.values[..., 0].float(), ids, two.values[..., 1].float(), done

    def own(self, rows: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        dots = (self.x[rows].double() * self.c64[labels]).sum(1)
        return (self.csq64[labels] - 2 * dots).float()


# ------------------------------------------------------------------------------------------------ 2. its declaration
def cannot_run(x: torch.Tensor) -> str | None:
    if x.device.type != "cpu":
        return f"it runs on the CPU, the features are on {x.device}"
    if x.dtype not in engines.SIXTEEN_BIT:
        return f"it needs float16 or bfloat16 storage, not {x.dtype}"
    return None


SPEC = DistanceEngine(
    name="float64-dense", make=Float64Engine, cannot_run=cannot_run, priority=0,  # 0: used when asked for by name
    guarantee="labels exact after the float64 check; values within E = ‖x‖·A + B: exact inputs, float64 sums "
              "over D + 2 terms, results rounded to float32")


@pytest.fixture
def registered():
    engines.register(SPEC)
    try:
        yield SPEC
    finally:
        engines.unregister(SPEC.name)


def mixture(n=2500, d=24, centres=20, std=3.0, seed=0) -> np.ndarray:
    x, _ = make_blobs(n_samples=n, centers=centres, n_features=d, cluster_std=std, random_state=seed)
    return (x - x.mean(0)) / x.std(0)


# ------------------------------------------------------------------------------------------------ 3. the checks
@pytest.mark.parametrize("precision", ["bfloat16", "float16"])
@pytest.mark.parametrize("k", [25, 70])  # groups of 16 centroids below K = 64, of 32 above
def test_exact_lloyd_with_the_engine_gives_the_reference_labels(registered, precision, k):
    x16 = to_storage(mixture(), precision)
    stored = Stored(x16, precision, engine=registered.name)
    init = x16[np.random.default_rng(k).choice(len(x16), k, replace=False)].float().numpy()
    km = KMeans(k, iters=30, restarts=1, kmeans_init=init, device="cpu").fit_stored(stored)
    assert isinstance(stored.engine(k), Float64Engine)
    labels, centroids, n_done = reference_lloyd(x16, init, 30)
    np.testing.assert_array_equal(km.labels_, labels)
    np.testing.assert_array_equal(km.cluster_centers_, centroids)
    assert km.result_.n_iter == n_done
    assert km.inertia_ == pytest.approx(inertia(x16, centroids, labels), rel=1e-12)


def test_the_engine_values_lie_within_the_inherited_bound(registered):
    rng = np.random.default_rng(1)
    x16 = to_storage(rng.standard_normal((300, 40)) * 4 + 3, "float16")  # an offset: large x·c against distances
    centroids = torch.from_numpy(rng.standard_normal((50, 40)) + 3).float()
    engine = registered.make(x16, 16)
    engine.set_centroids(centroids, make_groups(centroids, 16))
    c64 = centroids.double()
    exact = (c64 * c64).sum(1) - 2 * x16.double() @ c64.T  # (N, K)
    norms = x16.double().norm(dim=1)
    rows = torch.arange(len(x16))
    m1, ids, _, done = engine.group_min2(rows, None)
    assert bool(done.all())
    assert bool(((m1.double() - exact[rows.unsqueeze(1), ids]).abs() <= engine.group_error(norms)).all())
    labels = torch.from_numpy(rng.integers(0, 50, len(x16)))
    own = engine.own(rows, labels).double()
    assert bool(((own - exact[rows, labels]).abs() <= engine.own_error(norms, labels)).all())


def test_auto_keeps_the_built_in_engines_and_float32_storage_is_refused_by_name(registered):
    x16 = to_storage(mixture(n=200), "bfloat16")
    assert engines.choose(x16).name in ("kernel", "torch")  # priority 0: never picked by "auto" over them
    assert engines.choose(x16, registered.name) is registered
    with pytest.raises(QRProbeInputError, match="'float64-dense' cannot run here: it needs float16 or bfloat16"):
        engines.choose(x16.float(), registered.name)
