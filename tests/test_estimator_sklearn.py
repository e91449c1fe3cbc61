"""``ReverseProbing`` as a scikit-learn estimator: ``check_estimator`` (with the checks that cannot apply listed,
each with its reason), ``GridSearchCV`` over ``k``, ``cross_val_score``, input validation, and what ``predict``,
``transform`` and ``score`` mean (checked against scikit-learn's NMI and the fitted result's own arrays)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.metrics import normalized_mutual_info_score
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.utils.estimator_checks import parametrize_with_checks

from qrprobe.concepts import ConceptBank
from qrprobe.engine.estimator import ReverseProbing
from qrprobe.errors import QRProbeInputError
from qrprobe.synthetic import make_concept_combinations

FAST = {"clusterings": 1, "iters": 10, "restarts": 1, "epochs": 3, "device": "cpu", "null_repeats": 0,
        "bootstrap": 0}
GOOD = {**FAST, "iters": 20, "restarts": 3, "kmeans_init": "k-means++"}  # K-means finds the 4 combinations

#: Checks of scikit-learn that cannot apply to reverse probing, with the reason.
EXPECTED_FAILED = {
    "check_estimators_nan_inf": (
        "it fits 10 images to reach predict/transform, whose 2-image test split holds a single cluster: the "
        "protocol refuses such a fit (no score is meaningful, engine/degenerate.py); NaN/inf in X and y at fit "
        "and after it are checked by test_nan_inf_refused below"),
}


@parametrize_with_checks([ReverseProbing(k=2, **FAST)],
                         expected_failed_checks=lambda est: EXPECTED_FAILED)
def test_check_estimator(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def toy():
    features, concepts, _ = make_concept_combinations(n=300, n_bits=2, seed=3)
    return features, concepts


def test_grid_search_over_k(toy):
    """GridSearchCV fits every K on each fold and picks by held-out score; with 4 concept combinations in
    the features, K=4 is recovered best."""
    X, y = toy
    search = GridSearchCV(ReverseProbing(**GOOD), {"k": [2, 4]}, cv=KFold(2, shuffle=True, random_state=0))
    search.fit(X, y)
    assert search.best_params_ == {"k": 4}
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    assert search.best_estimator_.result_.config["k"] == 4
    assert search.predict(X).shape == (len(X),)


def test_cross_val_score_dense_sparse_and_labels(toy):
    X, y = toy
    cv = KFold(3, shuffle=True, random_state=1)
    dense = cross_val_score(ReverseProbing(k=4, **GOOD), X, y, cv=cv)
    train, test = next(cv.split(X))  # cross_val_score takes no sparse y; fit and score take one
    sparse = ReverseProbing(k=4, **GOOD).fit(X[train], sp.csr_matrix(y[train])).score(X[test], sp.csr_matrix(y[test]))
    assert sparse == pytest.approx(dense[0])
    assert dense.shape == (3,)
    assert np.all(dense > 80)  # the concepts name the clusters
    labels = y @ np.array([1, 2])  # the 4 combinations as class labels: the same information
    np.testing.assert_allclose(cross_val_score(ReverseProbing(k=4, **GOOD), X, labels, cv=cv), dense, atol=1e-6)


def test_predict_transform_score_meaning(toy):
    X, y = toy
    est = ReverseProbing(k=4, **{**FAST, "clusterings": 2, "kmeans_precision": "float32"}).fit(X, y)
    res = est.result_
    np.testing.assert_array_equal(est.predict(X), res.clusterings[0])  # training images: their clusters
    np.testing.assert_array_equal(est.predict_all(X), res.clusterings)
    np.testing.assert_array_equal(est.predict_clusters_from_concepts(y), res.predictions)  # the probes' argmax
    dist = est.transform(X)
    assert dist.shape == (len(X), 4)
    assert dist.dtype == np.float64
    np.testing.assert_array_equal(dist.argmin(1), est.predict(X))
    z = (X - res.standardizer["mean"]) / res.standardizer["scale"]
    np.testing.assert_allclose(dist[:, 2], np.linalg.norm(z - res.centroids[0, 2], axis=1), rtol=1e-5)
    # score: NMI (scikit-learn's, ×100) of clusters vs. the probes' predictions, averaged over clusterings
    rng = np.random.default_rng(0)
    held = rng.normal(size=(40, X.shape[1])) + X[:40]
    flipped = y[:40].copy()
    flipped[:10] = 1 - flipped[:10]
    expected = np.mean([100 * normalized_mutual_info_score(c, p) for c, p in
                        zip(est.predict_all(held), est.predict_clusters_from_concepts(flipped), strict=True)])
    assert est.score(held, flipped) == pytest.approx(expected)
    assert est.score(held, flipped) < est.score(X, y)
    shuffled = y[rng.permutation(len(y))]
    assert est.score(X, shuffled) < 20  # concepts of other images say little about an image's cluster


def test_concepts_as_bank_and_unseen_classes(toy):
    X, y = toy
    bank = ConceptBank.from_matrix(y, ["a", "b"])
    a = ReverseProbing(k=4, **FAST).fit(X, bank)
    b = ReverseProbing(k=4, **FAST).fit(X, y)
    assert a.score(X, bank) == pytest.approx(b.score(X, y))
    labels = (y @ np.array([1, 2])).astype(np.int64)
    c = ReverseProbing(k=4, **FAST).fit(X, labels)
    assert c.n_concepts_in_ == 4
    assert list(c.classes_) == [0, 1, 2, 3]
    assert np.isfinite(c.score(X[:20], np.full(20, 7)))  # an unseen class: rows without concepts
    with pytest.raises(QRProbeInputError, match=r"y has 3 concepts.*fitted with 2"):
        b.score(X, np.zeros((len(X), 3)))


@pytest.mark.parametrize(("X", "message"), [
    (np.full((50, 3), np.nan), "NaN"),
    (np.zeros((0, 3)), "0 sample"),
    (np.ones((50, 3)) + 1j, "[Cc]omplex"),
    (sp.csr_matrix(np.ones((50, 3))), "[Ss]parse"),
    (np.array([["a", "b"]] * 50, dtype=object), "could not convert|dtype"),
])
def test_bad_features_refused_before_work(X, message):
    y = np.eye(2, dtype=np.uint8)[np.arange(X.shape[0]) % 2]
    with pytest.raises((ValueError, TypeError), match=message):
        ReverseProbing(k=2, **FAST).fit(X, y)


def test_nan_inf_refused(toy):
    X, y = toy
    with pytest.raises(ValueError, match=r"infinity|NaN"):
        ReverseProbing(k=2, **FAST).fit(np.where(np.arange(X.size).reshape(X.shape) == 5, np.inf, X), y)
    with pytest.raises(ValueError, match=r"NaN|infinity"):
        ReverseProbing(k=2, **FAST).fit(X, np.where(y == 1, np.nan, 0.0))
    fitted = ReverseProbing(k=2, **FAST).fit(X, y)
    bad = X.copy()
    bad[3, 1] = np.nan
    for method in (fitted.predict, fitted.transform):
        with pytest.raises(ValueError, match="NaN"):
            method(bad)
    with pytest.raises(ValueError, match="NaN"):
        fitted.score(bad, y)


def test_bad_concepts_refused(toy):
    X, y = toy
    with pytest.raises(QRProbeInputError, match="binary"):
        ReverseProbing(k=2, **FAST).fit(X, y * 2)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        ReverseProbing(k=2, **FAST).fit(X, y[:-1])
    with pytest.raises(QRProbeInputError, match="requires y to be passed"):
        ReverseProbing(k=2, **FAST).fit(X, None)
    with pytest.raises(QRProbeInputError, match="non-integer"):
        ReverseProbing(k=2, **FAST).fit(X, np.linspace(0, 1, len(X)))


def test_library_calls_are_silent_unless_asked(toy, capfd, caplog):
    """fit and evaluate print nothing by default (the tiny test split's warnings go to the ``qrprobe`` logger and
    into the result); ``progress=True`` prints them."""
    import logging

    import qrprobe

    X, y = toy
    with caplog.at_level(logging.WARNING, logger="qrprobe"):
        est = ReverseProbing(k=4, **FAST).fit(X[:30], y[:30])  # 6 test images for 4 clusters: warned
        qrprobe.evaluate(X[:40], ConceptBank.from_matrix(y[:40], ["a", "b"]), k=4, **FAST)
    assert capfd.readouterr().err == ""
    assert est.result_.inputs["warnings"]
    logged = [r.getMessage() for r in caplog.records]  # each names its model (and K): "features (K=4): …"
    assert all(any(m.endswith(f": {w}") for m in logged) for w in est.result_.inputs["warnings"])
    ReverseProbing(k=4, **{**FAST, "progress": True}).fit(X[:40], y[:40])
    err = capfd.readouterr().err
    assert "warning: " in err
    assert "note: FEATURES and CONCEPTS rows were matched by position" in err


@pytest.fixture(scope="module")
def fitted(toy):
    X, y = toy
    return ReverseProbing(k=4, **GOOD).fit(X, y), X, y


def test_score_is_a_function_of_the_image_set(fitted):
    """score(X, y) depends on which images, not on their order, and splitting the images into blocks and
    predicting each gives the same clusters (hypothesis over permutations and block sizes)."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    est, X, y = fitted
    base = est.score(X, y)
    clusters = est.predict_all(X)

    @settings(max_examples=25, deadline=None)
    @given(st.randoms(use_true_random=False), st.integers(1, len(X)))
    def check(rnd, block):
        order = np.array(rnd.sample(range(len(X)), len(X)))
        assert est.score(X[order], y[order]) == pytest.approx(base, abs=1e-9)
        parts = [est.predict_all(X[order][i:i + block]) for i in range(0, len(X), block)]
        np.testing.assert_array_equal(np.concatenate(parts, axis=1), clusters[:, order])

    check()
