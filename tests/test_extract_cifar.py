"""Real representations of known, different quality on real photos (CIFAR-10, ../shared/data; skipped when
absent): the trained EfficientNet-Lite0 must score clearly higher than its random twin and the pixels when
the CIFAR-10 classes are the concepts."""

from __future__ import annotations

import numpy as np
import pytest

from qrprobe.concepts.bank import ConceptBank
from qrprobe.features import extract

PER_CLASS = 40

pytestmark = [pytest.mark.slow, pytest.mark.shared_data, pytest.mark.usefixtures("one_torch_thread")]


@pytest.fixture(scope="module")
def cifar_subset(cifar_test_subset):
    return cifar_test_subset(PER_CLASS)


def test_trained_lite0_beats_random_twin_and_pixels(cifar_subset, tmp_path):
    evaluate = pytest.importorskip("qrprobe.engine.evaluate").evaluate
    labels = np.asarray(cifar_subset.labels)
    classes = sorted(set(labels))
    onehot = (labels[:, None] == np.asarray(classes)[None, :]).astype(np.uint8)
    bank = ConceptBank.from_matrix(onehot, classes, groups="Labels", experts="cifar10",
                                   image_ids=cifar_subset.image_ids)
    nmi = {}
    for spec in ("efficientnet-lite0", "efficientnet-lite0-random", "pixels"):
        store = extract(spec, cifar_subset, tmp_path / spec, workers=1, progress=False)
        assert store.n == len(cifar_subset)
        assert list(store.labels) == list(labels)
        result = evaluate(store, bank, k=10, clusterings=3, seed=0)
        nmi[spec] = result.summary["nmi"]["mean"]
    print("CIFAR-10 NMI (K=10, 3 clusterings):", nmi)
    assert nmi["efficientnet-lite0"] > nmi["efficientnet-lite0-random"] + 10
    assert nmi["efficientnet-lite0"] > nmi["pixels"] + 10
