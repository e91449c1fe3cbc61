"""Self-labels (Table 6) and concepts → ground-truth labels (App. D.1)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from qrprobe.analysis.concepts_to_labels import concepts_to_labels, labels_from_group
from qrprobe.analysis.self_labels import encode_labels, read_labels, self_labels
from qrprobe.engine.config import ProbeConfig
from qrprobe.errors import QRProbeInputError
from qrprobe.synthetic import OBJECT_NAMES, make_object_scene

FAST = ProbeConfig(epochs=20, milestones=(12, 16))


def test_self_labels_score_a_given_labelling() -> None:
    data = make_object_scene(n=1200)
    combos = data.objects * 3 + data.scenes  # a perfect "self-labelling": the generating combinations
    res = self_labels(combos, data.bank, repeats=2, probe=FAST, device="cpu", name="oracle")
    assert res.summary["top1"]["mean"] > 95
    assert res.config["k"] == 12
    assert res.clusterings.shape == (2, 1200)
    noise = np.random.default_rng(99).integers(0, 12, 1200)  # independent of the data seed
    res_noise = self_labels(noise, data.bank, repeats=1, probe=FAST, device="cpu")
    assert res_noise.summary["nmi"]["mean"] < 5


def test_concepts_to_labels_from_group() -> None:
    data = make_object_scene(n=1200)
    # the label group predicts itself; once removed, scenes and noise say nothing about the object
    res = concepts_to_labels(data.bank, label_group="Labels", repeats=1, probe=FAST, device="cpu")
    assert res.config["excluded_groups"] == ["Labels"]
    assert res.summary["ami"]["mean"] < 2
    rows, labels = labels_from_group(data.bank, "Labels")
    assert len(rows) == 1200
    assert set(labels) == set(OBJECT_NAMES)
    # with the object labels given separately and kept among the inputs, the probe is perfect
    full = concepts_to_labels(data.bank, labels=np.asarray(OBJECT_NAMES)[data.objects], repeats=1, probe=FAST,
                              device="cpu")
    assert full.summary["top1"]["mean"] > 99
    with pytest.raises(QRProbeInputError, match="exactly one"):
        concepts_to_labels(data.bank)
    with pytest.raises(QRProbeInputError, match="several"):
        labels_from_group(data.bank, "Noise")


def test_read_and_encode_labels(tmp_path) -> None:
    codes, classes = encode_labels([10, 3, 10, 7])
    assert codes.tolist() == [2, 0, 2, 1]
    assert classes == ["3", "7", "10"]
    codes, classes = encode_labels(["b", "a", "b"])
    assert codes.tolist() == [1, 0, 1]
    pd.DataFrame({"image_id": ["c", "a", "b"], "label": ["x", "y", "z"]}).to_csv(tmp_path / "l.csv", index=False)
    assert read_labels(tmp_path / "l.csv", np.array(["a", "b", "c"])).tolist() == ["y", "z", "x"]
    with pytest.raises(QRProbeInputError, match="no label"):
        read_labels(tmp_path / "l.csv", np.array(["a", "d"]))
    np.save(tmp_path / "l.npy", np.zeros((2, 2)))
    with pytest.raises(QRProbeInputError, match="1-D"):
        read_labels(tmp_path / "l.npy")
    with pytest.raises(QRProbeInputError, match="no label"):
        encode_labels(["a", None])
