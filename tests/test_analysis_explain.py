"""Cluster explanations: confusion pairs, coefficient differences, and the known-structure check."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import confusion_matrix as sk_confusion

from qrprobe.analysis.coefficients import coefficient_differences, concept_support, top_concepts
from qrprobe.analysis.confusion import confusion_drops, confusion_matrix, most_confused_pairs, pair_confusion
from qrprobe.analysis.explain import explain_groups
from qrprobe.errors import QRProbeInputError
from qrprobe.synthetic import SCENE_NAMES, make_object_scene


def test_confusion_matrix_matches_sklearn(rng) -> None:
    y = rng.integers(0, 7, 500)
    p = rng.integers(0, 7, 500)
    np.testing.assert_array_equal(confusion_matrix(y, p, 7), sk_confusion(y, p, labels=range(7)))
    with pytest.raises(QRProbeInputError):
        confusion_matrix(y, p, 5)


def test_pair_confusion_and_ranking() -> None:
    # cluster 0 and 1 swap 4 of their 20 images; cluster 2 is clean
    y = np.array([0] * 10 + [1] * 10 + [2] * 10)
    p = y.copy()
    p[[0, 1, 2]] = 1
    p[10] = 0
    conf = pair_confusion(confusion_matrix(y, p, 3))
    assert conf[0, 1] == conf[1, 0] == pytest.approx(4 / 20)
    assert np.all(np.diag(conf) == 0)
    pairs = most_confused_pairs(confusion_matrix(y, p, 3))
    assert pairs[["cluster_a", "cluster_b"]].values.tolist() == [[0, 1]]
    drops = confusion_drops(y, p, y, 3)
    assert drops["drop"].tolist() == [pytest.approx(0.2)]
    assert confusion_drops(y, y, p, 3).empty  # confusion rose: nothing dropped


def test_coefficient_differences_signed() -> None:
    concepts = pd.DataFrame({"name": ["sand", "road", "tree", "dog"], "group": ["S", "S", "S", "L"]})
    coef = np.array([[3.0, -1.0], [-2.0, 2.0], [0.001, 0.0], [5.0, 5.0]])
    diff = coefficient_differences(coef, 0, 1, concepts)
    assert diff["concept"].tolist() == ["sand", "road"]  # dog: no difference; tree: negligible
    assert diff["favours"].tolist() == [0, 1]
    assert diff["difference"].tolist() == [4.0, -4.0]
    only = coefficient_differences(coef, 0, 1, concepts, groups=["L"])
    assert only.empty
    assert top_concepts(coef, 1, concepts)["concept"].tolist() == ["road"]


def test_explanations_name_the_separating_scene(fast_config) -> None:
    """Clusters are object x scene; with the object labels alone, same-object clusters are confused; adding
    the scene group removes the confusion, and the word-cloud concepts are exactly the two scenes."""
    data = make_object_scene(n=1500)
    expl = explain_groups(data.features, data.bank, ["Labels"], ["Scene"], config=fast_config(n_clusterings=1),
                          top_pairs=5)
    assert len(expl.pairs) == 5
    for pair in expl.pairs:
        rows_a = np.flatnonzero(expl.labels == pair.cluster_a)
        rows_b = np.flatnonzero(expl.labels == pair.cluster_b)
        obj_a, obj_b = _majority(data.objects[rows_a]), _majority(data.objects[rows_b])
        scene_a, scene_b = _majority(data.scenes[rows_a]), _majority(data.scenes[rows_b])
        assert obj_a == obj_b  # confused: same label, different scene
        assert scene_a != scene_b
        assert pair.confusion_base > 0.3
        assert pair.confusion_added < 0.05
        top = pair.concepts.set_index("concept")
        assert top.index[0] in (f"scene:{SCENE_NAMES[scene_a]}", f"scene:{SCENE_NAMES[scene_b]}")
        assert top.loc[f"scene:{SCENE_NAMES[scene_a]}", "favours"] == pair.cluster_a
        assert top.loc[f"scene:{SCENE_NAMES[scene_b]}", "favours"] == pair.cluster_b
        assert set(pair.concepts["group"]) == {"Scene"}
        support = np.asarray(data.bank.matrix.sum(axis=0)).ravel()
        names = list(data.bank.concepts["name"])
        assert all(pair.concepts["support"] == [support[names.index(c)] for c in pair.concepts["concept"]])
    table = expl.pairs_table()
    assert list(table.columns[:9]) == ["cluster_a", "cluster_b", "n_test_a", "n_test_b", "confusion_base",
                                       "confused_base", "confusion_added", "confused_added", "drop"]
    # the counts the confusions rest on: confused images / test images of the pair
    total = table["n_test_a"] + table["n_test_b"]
    assert (table["n_test_a"] > 0).all()
    assert (table["n_test_b"] > 0).all()
    np.testing.assert_allclose(table["confused_base"] / total, table["confusion_base"] / 100, atol=1e-9)
    np.testing.assert_allclose(table["confused_added"] / total, table["confusion_added"] / 100, atol=1e-9)
    summary = expl.clusters_table()
    assert set(summary["cluster"]) == {c for p in expl.pairs for c in (p.cluster_a, p.cluster_b)}


def test_rare_concepts_are_left_out_unless_asked() -> None:
    concepts = pd.DataFrame({"name": ["sand", "road", "tree"], "group": ["S", "S", "S"], "n_images": [40, 2, 9]})
    coef = np.array([[3.0, -1.0], [-9.0, 9.0], [1.0, 0.0]])
    support = concept_support(concepts)
    kept = coefficient_differences(coef, 0, 1, concepts, support=support, min_support=5)
    assert kept["concept"].tolist() == ["sand", "tree"]
    assert kept["support"].tolist() == [40, 9]
    everything = coefficient_differences(coef, 0, 1, concepts, support=support, min_support=0)
    assert everything["concept"].tolist() == ["road", "sand", "tree"]
    unknown = coefficient_differences(coef, 0, 1, concepts.drop(columns="n_images"), min_support=5)
    assert unknown["support"].tolist() == [-1, -1, -1]  # unknown support: nothing can be left out
    assert concept_support(concepts.drop(columns="n_images")) is None
    matrix = np.array([[1, 0, 1], [1, 1, 0]])
    assert concept_support(concepts, matrix).tolist() == [2, 1, 1]  # the matrix wins over the table


def _majority(values: np.ndarray) -> int:
    return int(np.bincount(values).argmax())


def test_explain_groups_rejects_bad_groups(fast_config) -> None:
    data = make_object_scene(n=300)
    with pytest.raises(QRProbeInputError, match="both"):
        explain_groups(data.features, data.bank, ["Labels"], ["Labels"], config=fast_config())
    with pytest.raises(QRProbeInputError, match="unknown concept group"):
        explain_groups(data.features, data.bank, ["Labels"], ["Texture"], config=fast_config())
