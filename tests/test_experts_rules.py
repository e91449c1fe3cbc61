"""The paper's conversion rules and the expert registry."""

from __future__ import annotations

import numpy as np
import pytest

from qrprobe.errors import QRProbeInputError
from qrprobe.experts import available_experts, build_expert, expert_info, parse_expert_list
from qrprobe.experts.base import Expert, ExpertOutput, as_rgb_array
from qrprobe.experts.rules import (
    area_fractions_to_presence,
    detections_to_presence,
    segmentation_to_presence,
    softmax,
    threshold_multilabel,
    top1_onehot,
    topk_multilabel,
    zero_shot_with_background,
)


def test_top1_is_one_hot_of_the_argmax():
    scores = np.array([[0.1, 0.7, 0.2], [3.0, -1.0, 3.0]])
    out = top1_onehot(scores)
    assert out.tolist() == [[False, True, False], [True, False, False]]  # ties: lowest index


def test_threshold_and_topk():
    scores = np.array([[0.9, 0.5, 0.49, 0.1]])
    assert threshold_multilabel(scores, 0.5).tolist() == [[True, True, False, False]]
    assert threshold_multilabel(scores, np.array([0.95, 0.4, 0.4, 0.0])).tolist() == [[False, True, True, True]]
    assert topk_multilabel(scores, 2).tolist() == [[True, True, False, False]]
    with pytest.raises(QRProbeInputError):
        topk_multilabel(scores, 0)


def test_detection_rule_keeps_classes_scored_above_threshold():
    classes = [np.array([0, 2, 2, 7]), np.array([], dtype=int)]
    scores = [np.array([0.5, 0.4, 0.9, 0.99]), np.array([])]
    binary, best = detections_to_presence(classes, scores, n_classes=3, threshold=0.5)
    assert binary.tolist() == [[False, False, True], [False, False, False]]  # 0.5 is not > 0.5; class 7 dropped
    assert best[0].tolist() == pytest.approx([0.5, 0.0, 0.9])


def test_segmentation_rule_with_minimum_area():
    lm = np.zeros((10, 10), int)
    lm[:2, :] = 1   # 20 %
    lm[9, 9] = 2    # 1 %
    lm[0, 0] = -1   # ignored label
    binary, frac = segmentation_to_presence([lm], n_classes=3)
    assert binary.tolist() == [[True, True, True]]
    binary, frac = segmentation_to_presence([lm], n_classes=3, min_fraction=0.05, ignore=[0])
    assert binary.tolist() == [[False, True, False]]
    assert frac[0, 1] == pytest.approx(0.19)


def test_zero_shot_rule_falls_back_to_background():
    scores = np.array([[0.2, 0.7, 0.1], [0.4, 0.3, 0.3]])
    out = zero_shot_with_background(scores, threshold=0.5)
    assert out.tolist() == [[False, True, False, False], [False, False, False, True]]


def test_area_fraction_rule_and_softmax():
    assert area_fractions_to_presence(np.array([[0.05, 0.049]]), 0.05).tolist() == [[True, False]]
    p = softmax(np.array([[1000.0, 1000.0]]))
    assert p.tolist() == [[0.5, 0.5]]


def test_registry_lists_every_paper_family_with_groups():
    infos = {i.name: i for i in available_experts()}
    for name in ("labels", "color", "text", "faces", "person", "imagenet", "image-stats", "clip", "clip-style",
                 "places365", "sun-attributes", "minc", "dtd", "sentiment", "coco", "coco-seg", "onnx-detector"):
        assert name in infos
    assert infos["color"].group == "Texture"
    assert infos["color"].n_concepts == 11
    assert infos["places365"].n_concepts == 365
    assert infos["sun-attributes"].n_concepts == 102
    assert infos["minc"].n_concepts == 23
    assert infos["dtd"].n_concepts == 47
    assert "weights" in infos["minc"].needs


def test_unknown_expert_and_bad_options_are_input_errors():
    with pytest.raises(QRProbeInputError, match=r"unknown expert 'colour'.*available experts"):
        expert_info("colour")
    with pytest.raises(QRProbeInputError, match=r"has no option 'fraction'.*min_fraction"):
        build_expert("color", {"fraction": "0.1"})
    with pytest.raises(QRProbeInputError, match="expected a float"):
        build_expert("color", {"min_fraction": "lots"})
    with pytest.raises(QRProbeInputError, match="listed twice"):
        parse_expert_list("color,color")
    assert build_expert("color", {"min_fraction": "0.2"}).min_fraction == 0.2
    assert build_expert("text", {"verify": "false"}).verify is False


def test_group_override_and_concept_table_records_threshold():
    e = build_expert("color", {"group": "Other", "min_fraction": "0.1"})
    table = e.concept_table()
    assert set(table["group"]) == {"Other"}
    assert table["threshold"].tolist() == [0.1] * 11
    assert list(table.columns[:3]) == ["name", "group", "expert"]


def test_as_rgb_array_conversions():
    grey = np.zeros((4, 5), np.uint8)
    assert as_rgb_array(grey).shape == (4, 5, 3)
    assert as_rgb_array(np.zeros((4, 5, 4), np.uint8)).shape == (4, 5, 3)
    with pytest.raises(QRProbeInputError, match="uint8"):
        as_rgb_array(np.zeros((4, 5, 3), np.float32))


def test_a_buggy_expert_output_is_caught():
    class Buggy(Expert):
        registry_name = "buggy"

        @property
        def concepts(self):
            return ["a", "b"]

        def _predict(self, images, image_ids):
            return ExpertOutput(np.zeros((len(images), 3), bool))

    with pytest.raises(RuntimeError, match="3\\) matrix for 1 images x 2 concepts"):
        Buggy().predict([np.zeros((2, 2, 3), np.uint8)])
