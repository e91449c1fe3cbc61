"""``qrprobe.KMeans`` as a scikit-learn clusterer: scikit-learn's own estimator checks, its input checks with
errors that name ``X``, ``transform``/``score`` as scikit-learn's ``KMeans`` define them, the schema's names
(and those of earlier releases, with a warning)."""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import sklearn
import torch
from sklearn.base import clone
from sklearn.cluster import KMeans as SkKMeans
from sklearn.datasets import make_blobs
from sklearn.model_selection import GridSearchCV

from qrprobe import KMeans
from qrprobe.engine.config import KMeansConfig, config_fields, field_default
from qrprobe.engine.kmeans.quantize import RENAMED
from qrprobe.errors import ParameterError, QRProbeInputError

SKLEARN_16 = tuple(int(v) for v in sklearn.__version__.split(".")[:2]) >= (1, 6)

# Checks that cannot apply, each with its reason (scikit-learn reports them as skipped or failed; every other
# check must pass).
NOT_APPLICABLE = {
    "check_array_api_input": "scikit-learn runs it only with SCIPY_ARRAY_API=1; KMeans computes with torch on "
                             "numpy input and does not dispatch on the array API",
}


def blobs(n=600, d=6, centres=5, seed=0) -> np.ndarray:
    return make_blobs(n_samples=n, centers=centres, n_features=d, cluster_std=1.0, random_state=seed)[0]


@pytest.mark.skipif(not SKLEARN_16, reason="check_estimator(expected_failed_checks=…) needs scikit-learn ≥ 1.6")
@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_scikit_learn_estimator_checks_pass(precision):
    from sklearn.utils.estimator_checks import check_estimator

    estimator = KMeans(k=3, iters=20, restarts=2, kmeans_precision=precision, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the checks' own warnings (skipped checks, data conversions)
        outcomes = check_estimator(estimator, on_fail=None, on_skip=None)
    assert len(outcomes) > 40
    failed = {o["check_name"]: repr(o["exception"]) for o in outcomes if o["status"] == "failed"}
    assert not failed
    skipped = {o["check_name"] for o in outcomes if o["status"] == "skipped"}
    assert skipped <= set(NOT_APPLICABLE), skipped - set(NOT_APPLICABLE)


def test_parameters_are_the_schema_names():
    names = list(inspect.signature(KMeans).parameters)
    schema = [f.name for f in config_fields(KMeansConfig)]
    assert sorted(names) == sorted([*schema, "seed", "device", "chunk_rows", "progress"])
    defaults = KMeans().get_params()
    for f in config_fields(KMeansConfig):
        assert defaults[f.name] == field_default(f), f.name
    km = KMeans.from_config(KMeansConfig(k=7, iters=9, kmeans_precision="float16"), seed=4, device="cpu")
    assert (km.k, km.iters, km.kmeans_precision, km.seed) == (7, 9, "float16", 4)
    assert km.check(100) == KMeansConfig(k=7, iters=9, kmeans_precision="float16")


def test_names_of_earlier_releases_still_work_with_a_warning():
    x = blobs().astype(np.float32)
    with pytest.warns(FutureWarning) as record:
        old = KMeans(n_clusters=5, n_iter=20, n_restarts=2, init="random", precision="float32", backend="torch",
                     device="cpu")
    assert sorted(str(w.message) for w in record) == sorted(
        f"KMeans({o}=…) is deprecated; use {n}=…" for o, n in RENAMED.items())
    new = KMeans(5, iters=20, restarts=2, kmeans_precision="float32", device="cpu")
    assert old.get_params() == new.get_params()
    np.testing.assert_array_equal(old.fit(x).labels_, new.fit(x).labels_)
    assert "n_iter" not in old.get_params()
    with pytest.raises(TypeError, match="unexpected keyword argument 'n_init'"):
        KMeans(n_init=3)


@pytest.mark.parametrize(("params", "field"), [({"k": 1}, "k"), ({"k": 50}, "k"), ({"iters": 0}, "iters"),
                                               ({"restarts": 0}, "restarts"), ({"kmeans_backend": "sklearn"},
                                                                               "kmeans_backend"),
                                               ({"kmeans_init": "kmeans++"}, "kmeans_init"),
                                               ({"kmeans_precision": "half"}, "kmeans_precision"),
                                               ({"max_train_points": 3}, "max_train_points")])
def test_bad_parameters_name_themselves_in_the_schema_vocabulary(params, field):
    with pytest.raises(ParameterError) as info:
        KMeans(**{"k": 4, **params}, device="cpu").fit(blobs(n=40))
    assert info.value.param == field
    assert str(info.value).startswith(f"{field}: ")


@pytest.mark.parametrize(("X", "message"), [
    (np.array([[0.0, np.nan], [1.0, 2.0], [3.0, 4.0]]), r"^Input X contains NaN"),
    (np.array([[0.0, np.inf], [1.0, 2.0], [3.0, 4.0]]), r"^Input X contains infinity"),
    (np.zeros((0, 3)), r"^X: Found array with 0 sample\(s\)"),
    (np.zeros((1, 3)), r"^X: Found array with 1 sample\(s\) .* minimum of 2"),
    (np.ones((4, 2)) * (1 + 1j), r"^X: Complex data not supported$"),
    (sp.random(10, 3, density=0.5, format="csr"), r"^X: sparse input is not supported"),
    (np.ones(5), r"^X: Expected 2D array, got 1D array instead: Reshape your data"),
    (torch.tensor([[0.0, float("nan")], [1.0, 2.0]], dtype=torch.bfloat16), r"^X: Input X contains NaN or inf"),
    (torch.ones(3), r"^X: expected a 2-d \(N, D\) tensor"),
])
def test_bad_input_is_refused_with_one_line_naming_x(X, message):
    with pytest.raises(QRProbeInputError, match=message) as info:
        KMeans(2, device="cpu").fit(X)
    assert "\n" not in str(info.value)
    assert isinstance(info.value, ValueError)  # what scikit-learn's own checks expect


def test_predict_transform_score_after_fit():
    x = blobs().astype(np.float32)
    km = KMeans(5, iters=50, restarts=2, device="cpu", kmeans_precision="float32").fit(x)
    assert km.n_features_in_ == 6
    np.testing.assert_array_equal(km.fit_predict(x), km.labels_)
    dist = km.transform(x)
    assert dist.shape == (600, 5)
    assert dist.dtype == np.float32
    ref = np.sqrt(((x[:, None, :].astype(np.float64) - km.cluster_centers_[None].astype(np.float64)) ** 2).sum(-1))
    np.testing.assert_allclose(dist, ref, rtol=1e-6)
    np.testing.assert_array_equal(dist.argmin(1), km.predict(x))
    assert km.transform(x.astype(np.float64)).dtype == np.float64
    assert km.score(x) == pytest.approx(-km.inertia_, rel=1e-6)
    assert km.get_feature_names_out().tolist() == [f"kmeans{i}" for i in range(5)]
    with pytest.raises(QRProbeInputError, match="X has 5 features, but KMeans is expecting 6 features as input"):
        km.predict(x[:, :5])


def test_transform_and_score_agree_with_scikit_learn_kmeans_on_its_centroids():
    x = blobs(seed=3)
    init = x[np.random.default_rng(0).choice(len(x), 5, replace=False)]
    ours = KMeans(5, iters=100, restarts=1, kmeans_init=init, kmeans_precision="float32", device="cpu").fit(x)
    ref = SkKMeans(5, init=init, n_init=1, max_iter=100, tol=0, algorithm="lloyd").fit(x)
    np.testing.assert_array_equal(ours.labels_, ref.labels_)
    np.testing.assert_allclose(ours.transform(x), ref.transform(x), rtol=1e-4, atol=1e-4)
    assert ours.score(x) == pytest.approx(ref.score(x), rel=1e-4)


def test_16bit_transform_is_of_the_stored_values_and_predict_its_argmin():
    x = blobs(n=800, d=8, centres=6, seed=5)
    km = KMeans(6, iters=30, restarts=1, kmeans_precision="bfloat16", device="cpu").fit(x)
    dist = km.transform(x)
    np.testing.assert_array_equal(dist.argmin(1), km.predict(x))
    np.testing.assert_array_equal(km.predict(x), km.labels_)
    assert km.score(x) == pytest.approx(-km.inertia_, rel=1e-9)


def test_clone_and_grid_search_over_k():
    x = blobs(n=300, d=4, centres=4, seed=2)
    base = KMeans(2, iters=30, restarts=2, device="cpu")
    twin = clone(base).set_params(k=4)
    assert (twin.k, base.k) == (4, 2)
    search = GridSearchCV(base, {"k": [2, 4, 8]}, cv=3).fit(x)
    assert search.best_params_["k"] == 8  # more clusters, lower held-out K-means objective
    assert search.best_estimator_.cluster_centers_.shape == (8, 4)
