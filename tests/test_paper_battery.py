"""The paper's expert battery: the shipped COCO class lists, COCO things / stuff segmenters through the generic
paths (hand-made models forcing known classes), and the differences a battery has from the paper's."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from qrprobe.concepts.paper_battery import (
    PAPER_BATTERY,
    battery_differences,
    battery_markdown,
    battery_note,
    paper_roles,
)
from qrprobe.errors import QRProbeInputError
from qrprobe.experts import build_expert
from qrprobe.experts.categories import channel_columns, read_class_list

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = Path("/work/shared/paper/REFERENCE.md")
# COCO-Stuff labels.txt (Caesar et al., 2018): id 17 is the thing "cat", id 124 the stuff "grass"
CAT, GRASS = 17, 124


def _present(expert, image) -> set[str]:
    out = expert.predict([image])
    return {c for c, b in zip(expert.concepts, out.binary[0], strict=True) if b}


def _half_red_image() -> np.ndarray:
    image = np.zeros((48, 64, 3), dtype=np.uint8)
    image[:, :32] = (255, 0, 0)
    return image


def _entry(expert) -> dict:
    """What the labelling loop records about an expert (``bank.info["experts"]``)."""
    return {"name": expert.name, "expert": expert.registry_name, "group": expert.group,
            "n_concepts": len(expert.concepts), "rule": expert.rule, "config": expert.config()}


# ------------------------------------------------------------------------------------------ class lists
def test_coco_class_lists_have_the_papers_counts_and_ids():
    things_ids, things = read_class_list("coco-things-91")
    stuff_ids, stuff = read_class_list("coco-stuff")
    assert things_ids == list(range(1, 92))
    assert len(set(things)) == 91
    assert stuff_ids == list(range(92, 183))
    assert len(set(stuff)) == 91
    assert things[CAT - 1] == "cat"
    assert stuff[GRASS - 92] == "grass"
    assert things[-1] == "hair brush"
    # the 80 annotated things are the 91 less the 11 COCO never annotated, with the same ids and names
    ids80, names80 = read_class_list("coco-things")
    assert dict(zip(ids80, names80, strict=True)).items() <= dict(zip(things_ids, things, strict=True)).items()
    assert sorted(set(things_ids) - set(ids80)) == [12, 26, 29, 30, 45, 66, 68, 69, 71, 83, 91]
    tv = pytest.importorskip("torchvision")
    categories = tv.models.detection.FasterRCNN_ResNet50_FPN_Weights.COCO_V1.meta["categories"]
    assert [i for i, c in enumerate(categories) if c == "N/A"] == [12, 26, 29, 30, 45, 66, 68, 69, 71, 83]


def test_channel_columns_maps_ids_to_channels_and_rejects_out_of_range():
    col = channel_columns([1, 3], 2, 5, first_id=1)
    assert col.tolist() == [0, -1, 1, -1, -1]
    assert channel_columns(None, 3, 4).tolist() == [0, 1, 2, -1]
    with pytest.raises(QRProbeInputError, match="outside the model's 4 output channels"):
        channel_columns([1, 5], 2, 4, first_id=0)
    with pytest.raises(QRProbeInputError, match="3 classes but the model has 2"):
        channel_columns(None, 3, 2)


# ------------------------------------------------------------------------------------------ segmenters
def _cocostuff_onnx(path: Path, channels: int = 182) -> str:
    """A "COCO-Stuff segmenter": channel CAT-1 scores the (BGR) red value, GRASS-1 its negative, the rest -1e4,
    so red pixels are cat and dark pixels grass, at any input size."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    w = np.zeros(channels, np.float32)
    w[CAT - 1], w[GRASS - 1] = 1.0, -1.0
    b = np.full(channels, -1e4, np.float32)
    b[CAT - 1] = b[GRASS - 1] = 0.0
    nodes = [helper.make_node("Slice", ["images", "start", "end", "axis"], ["red"]),  # BGR input: channel 2 is red
             helper.make_node("Mul", ["red", "w"], ["scaled"]), helper.make_node("Add", ["scaled", "b"], ["scores"])]
    inits = [helper.make_tensor("start", TensorProto.INT64, [1], [2]), helper.make_tensor("end", TensorProto.INT64,
                                                                                          [1], [3]),
             helper.make_tensor("axis", TensorProto.INT64, [1], [1]),
             helper.make_tensor("w", TensorProto.FLOAT, [1, channels, 1, 1], w.tolist()),
             helper.make_tensor("b", TensorProto.FLOAT, [1, channels, 1, 1], b.tolist())]
    graph = helper.make_graph(nodes, "cocostuff",
                              [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["n", 3, "h", "w"])],
                              [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["n", channels, "h", "w"])],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, path)
    return str(path)


def _example_experts() -> list[dict]:
    return yaml.safe_load((ROOT / "examples" / "paper-imagenet.yaml").read_text())["experts"]


# an ONNX export of kazuto1011/deeplab-pytorch's cocostuff164k DeepLab-v2 read twice (BGR, mean subtraction)
_ONNX_INPUT = {"use_ids": True, "first_id": 1, "size": 513, "bgr": True, "scale": 1.0,
               "mean": "104.008,116.669,122.675", "std": "1"}
_ONNX_SEGMENTERS = {
    "coco-things": {"kind": "onnx-segmenter", "group": "Objects", "options": {"classes": "coco-things-91",
                                                                             **_ONNX_INPUT}},
    "coco-stuff": {"kind": "onnx-segmenter", "group": "Material", "options": {"classes": "coco-stuff",
                                                                             **_ONNX_INPUT}}}


def test_onnx_cocostuff_segmenter_gives_things_and_stuff_with_the_export_options(tmp_path):
    path = _cocostuff_onnx(tmp_path / "cocostuff.onnx")
    configured = _ONNX_SEGMENTERS
    experts = {}
    for name in ("coco-things", "coco-stuff"):
        spec = configured[name]
        options = {**spec["options"], "size": 64, "weights": path, "group": spec["group"]}  # 64: a quick run
        experts[name] = build_expert(name, options, kind=spec["kind"])
    image = _half_red_image()
    assert _present(experts["coco-things"], image) == {"cat"}
    assert _present(experts["coco-stuff"], image) == {"grass"}
    assert len(experts["coco-things"].concepts) == 91
    assert len(experts["coco-stuff"].concepts) == 91
    fractions = experts["coco-things"].predict([image]).scores[0]
    assert fractions[CAT - 1] == pytest.approx(0.5)
    # the id offset matters: with first_id 0, channel 16 is read as id 16 ("bird") and grass as no thing
    shifted = build_expert("s", {**configured["coco-things"]["options"], "size": 64, "weights": path,
                                 "first_id": 0}, kind="onnx-segmenter")
    assert _present(shifted, image) == {"bird"}
    # and a list that overruns the model's channels is an error, not a silent miss
    overrun = build_expert("o", {**configured["coco-stuff"]["options"], "size": 64, "weights": path,
                                 "first_id": 0}, kind="onnx-segmenter")
    with pytest.raises(QRProbeInputError, match="outside the model's 182 output channels"):
        overrun.predict([image])


@pytest.mark.slow
def test_torchvision_cocostuff_segmenter_through_coco_seg(tmp_path):
    tv = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    model = tv.models.get_model("lraspp_mobilenet_v3_large", weights=None, weights_backbone=None, num_classes=182)
    with torch.no_grad():
        for conv in (model.classifier.low_classifier, model.classifier.high_classifier):
            conv.weight.zero_()
            conv.bias.fill_(-10.0)
            conv.bias[GRASS - 1] = 10.0  # channel 123 = id 124 with first_id 1
    torch.save(model.state_dict(), tmp_path / "seg.pth")
    options = {"arch": "lraspp_mobilenet_v3_large", "weights": str(tmp_path / "seg.pth"), "resize": "96",
               "first_id": "1", "num_classes": "182"}
    stuff = build_expert("stuff", {**options, "classes": "coco-stuff", "group": "Material"}, kind="coco-seg")
    things = build_expert("things", {**options, "classes": "coco-things-91"}, kind="coco-seg")
    from skimage import data

    assert _present(stuff, data.chelsea()) == {"grass"}
    assert len(stuff.concepts) == 91
    assert _present(things, data.chelsea()) == set()
    assert len(things.concepts) == 91
    assert stuff.config()["classes"] == "coco-stuff"
    assert stuff.group == "Material"


def test_coco_seg_needs_weights_for_the_cocostuff_lists_and_ids_in_range():
    with pytest.raises(QRProbeInputError, match="VOC categories only"):
        build_expert("coco-seg", {"classes": "coco-stuff", "first_id": "1", "num_classes": "182"})
    with pytest.raises(QRProbeInputError, match="outside the model's 21 output channels"):
        build_expert("coco-seg", {"classes": "coco-stuff", "num_classes": "21", "weights": __file__})
    default = build_expert("coco-seg")
    assert len(default.concepts) == 20
    assert default.num_classes == 21
    assert "classes" not in default.config()


# ------------------------------------------------------------------------------------------ differences
def _paper_battery_experts(tmp_path: Path, *, example: bool) -> list:
    """The experts of the example study (``example``) or of the paper's exact battery, built with stand-in files."""
    seg = _cocostuff_onnx(tmp_path / "checkpoints" / "deeplabv2_cocostuff164k.onnx")
    built = []
    specs = _example_experts()
    if not example:
        classes = tmp_path / "openimages.txt"
        classes.write_text("".join(f"class {i}\n" for i in range(600)))
        specs = [s for s in specs if s["name"] != "coco"] + [
            {"name": "open-images", "kind": "onnx-detector", "group": "Objects", "weights": "open-images.onnx",
             "options": {"classes": str(classes), "layout": "boxes-scores-classes", "threshold": 0.5}}]
        specs = [{**s, "options": {"score": "cosine"}} if s["name"] == "clip-style" else s for s in specs]
    for spec in specs:
        options = {**spec.get("options", {})}
        if spec.get("group"):
            options["group"] = spec["group"]
        if spec.get("weights"):
            path = tmp_path / spec["weights"]
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(b"stand-in")
            options["weights"] = seg if spec.get("kind") == "onnx-segmenter" else str(path)
        expert = build_expert(spec["name"], options, kind=spec.get("kind"))
        if spec["name"] == "labels":
            expert.prepare(image_ids=[str(i) for i in range(1000)], labels=[f"n{i:08d}" for i in range(1000)])
        built.append(expert)
    return built


def test_example_battery_differs_only_where_the_docs_say(tmp_path):
    entries = [_entry(e) for e in _paper_battery_experts(tmp_path, example=True)]
    messages = battery_differences(entries)
    assert len(messages) == 5, messages
    expected = ["Objects: coco: COCO detection (fasterrcnn_resnet50_fpn_v2, 80 classes) stands in for the paper's "
                "Open Images detector", "Material: minc: Deep TEN ResNet-50 (PyTorch-Encoding, MINC-2500) stands in "
                "for the paper's DEP", "Texture: dtd: a resnet50 classifier stands in",
                "Texture: color: colour naming by CIELAB prototypes",
                "Other: clip-style: rule softmax(100·cos) >= 0.5, not the paper's cos >= 0.5"]
    for start, message in zip(expected, messages, strict=True):
        assert message.startswith(start), (start, message)
    assert battery_note(entries) == "concept battery differs from the paper: " + "; ".join(messages)


def test_the_papers_battery_differs_only_by_the_unreleased_and_replaced_models(tmp_path):
    entries = [_entry(e) for e in _paper_battery_experts(tmp_path, example=False)]
    roles = [r for e in entries for r in paper_roles(e)]
    assert sorted(roles) == sorted(p.key for p in PAPER_BATTERY)  # coco-stuff stands for things and stuff
    messages = battery_differences(entries)
    assert [m.split(":")[1].strip() for m in messages] == ["minc", "dtd", "color"], messages
    ppocr = [{**e, "config": {**e["config"], "detector": "ppocr"}} if e["expert"] == "text" else e for e in entries]
    assert any("PP-OCRv4 text detection stands in for the paper's CRAFT" in m for m in battery_differences(ppocr))


def test_missing_groups_substitutes_rules_groups_and_extras_are_each_reported():
    demo_like = [
        {"name": "labels", "expert": "labels", "group": "Labels", "n_concepts": 14, "config": {}},
        {"name": "imagenet", "expert": "imagenet", "group": "Objects", "n_concepts": 1000, "config": {}},
        {"name": "color", "expert": "color", "group": "Texture", "n_concepts": 11, "config": {"min_fraction": 0.05}},
        {"name": "coco-seg", "expert": "coco-seg", "group": "Objects", "n_concepts": 20,
         "config": {"arch": "deeplabv3_resnet50", "min_fraction": 0.1}},
        {"name": "scenes", "expert": "places365", "group": "Objects", "n_concepts": 365,
         "config": {"arch": "resnet50", "rule": "topk"}, "rule": "top-5"},
        {"name": "det", "expert": "onnx-detector", "group": "Objects", "n_concepts": 80, "config": {"threshold": 0.3}},
        {"name": "style", "expert": "clip-style", "group": "Other", "n_concepts": 9,
         "config": {"score": "cosine", "threshold": 0.3, "pretrained": "laion2b_s34b_b79k"}},
    ]
    messages = battery_differences(demo_like)
    text = "\n".join(messages)
    for part in ("IN-1k: labels has 14 classes, not the 1000 ImageNet-1k labels",
                 "COCO segmentation with the 20 VOC categories (deeplabv3_resnet50)",
                 "a class counts above 0.1 of the pixels",
                 "Scene: scenes (places365): rule top-5, not the paper's top-1",
                 "scenes (places365) is in group Objects; the paper's Places-365 expert is in Scene",
                 "a detector with 80 classes, not the Open Images detector's 600",
                 "detection score > 0.3, not the paper's > 0.5",
                 "style (clip-style): cos >= 0.3, not the paper's cos >= 0.5",
                 "CLIP weights 'laion2b_s34b_b79k', not OpenAI's",
                 "Material: no COCO-Stuff stuff expert (paper: DeepLab-v2 (ResNet-101) trained on COCO-Stuff)",
                 "Scene: no SUN attributes expert", "Material: no MINC expert", "Texture: no DTD expert",
                 "Other: no text detection expert (paper: CRAFT", "Other: no sentiment (T4SA) expert",
                 "experts the paper did not use: imagenet (Objects)"):
        assert part in text, part
    assert "no Places-365" not in text
    assert "no MS-COCO things" not in text
    assert battery_note([]).count("; ") == len(PAPER_BATTERY) - 1


# ------------------------------------------------------------------------------------------ docs and paper
def test_protocol_docs_table_is_the_generated_one():
    text = (ROOT / "docs" / "protocol.md").read_text()
    assert "## 10. Expert battery: paper vs qrprobe" in text
    assert battery_markdown() in text, "run `python scripts/update_paper_tables.py`"


@pytest.mark.skipif(not REFERENCE.is_file(), reason="the paper's transcription is not on this machine")
def test_battery_matches_the_papers_expert_table():
    section = REFERENCE.read_text().split("## Experts", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1:-1] for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    counts = sorted(int(re.match(r"\s*(\d+)", r[2]).group(1)) + ("background" in r[2]) for r in rows[1:])
    assert counts == sorted(p.classes for p in PAPER_BATTERY)
    groups = sorted({r[0].strip() for r in rows[1:]} | {"IN-1k"})
    assert groups == sorted({p.group for p in PAPER_BATTERY})
