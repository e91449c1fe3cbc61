"""Experts that are exact rules: colours, image statistics, ground-truth labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageFilter
from skimage import data

from qrprobe.errors import QRProbeInputError
from qrprobe.experts import build_expert
from qrprobe.experts.color import COLOR_TERMS, color_names, srgb_to_lab
from qrprobe.experts.image_stats import IMAGE_STAT_CONCEPTS


def _present(expert, image) -> set[str]:
    out = expert.predict([image])
    return {c for c, b in zip(expert.concepts, out.binary[0], strict=True) if b}


def test_pure_red_image_is_red_and_no_other_colour():
    red = np.zeros((40, 60, 3), np.uint8)
    red[..., 0] = 255
    assert _present(build_expert("color"), red) == {"red"}


@pytest.mark.parametrize(("rgb", "term"), [((0, 0, 0), "black"), ((255, 255, 255), "white"),
                                           ((128, 128, 128), "grey"), ((0, 0, 255), "blue"),
                                           ((0, 160, 0), "green"), ((255, 255, 0), "yellow"),
                                           ((255, 140, 0), "orange"), ((255, 105, 180), "pink"),
                                           ((128, 0, 128), "purple"), ((139, 69, 19), "brown")])
def test_flat_colours_are_named_correctly(rgb, term):
    assert COLOR_TERMS[color_names(np.array([[rgb]], np.uint8))[0, 0]] == term


def test_colour_fractions_and_minimum_share():
    img = np.zeros((10, 10, 3), np.uint8)
    img[:, :3] = (0, 0, 255)  # 30 % blue, 70 % black
    expert = build_expert("color", {"min_fraction": 0.5})
    out = expert.predict([img])
    assert _present(expert, img) == {"black"}
    assert out.scores[0, COLOR_TERMS.index("blue")] == pytest.approx(0.3)
    assert out.scores[0].sum() == pytest.approx(1.0)


def test_lab_conversion_matches_scikit_image():
    from skimage.color import rgb2lab

    rgb = np.random.default_rng(0).integers(0, 256, (200, 3)).astype(np.uint8)
    assert np.abs(srgb_to_lab(rgb) - rgb2lab(rgb[None])[0]).max() < 0.01


def test_greyscale_photo_is_greyscale_and_colour_photo_is_not():
    expert = build_expert("image-stats")
    assert "greyscale" in _present(expert, data.camera())
    assert "greyscale" not in _present(expert, data.astronaut())
    assert expert.concepts == list(IMAGE_STAT_CONCEPTS)


def test_blurred_photo_is_blurry_and_sharp_one_is_not():
    expert = build_expert("image-stats")
    sharp = data.astronaut()
    blurred = np.asarray(Image.fromarray(sharp).filter(ImageFilter.GaussianBlur(4)))
    assert "blurry" not in _present(expert, sharp)
    assert "blurry" in _present(expert, blurred)


def test_dark_bright_and_saturation():
    expert = build_expert("image-stats")
    assert "dark" in _present(expert, np.full((16, 16, 3), 20, np.uint8))
    assert "bright" in _present(expert, np.full((16, 16, 3), 240, np.uint8))
    assert "high saturation" in _present(expert, np.tile(np.array([255, 0, 0], np.uint8), (16, 16, 1)))


def test_labels_from_the_source():
    expert = build_expert("labels")
    expert.prepare(["a.jpg", "b.jpg", "c.jpg"], ["cat", "dog", ""])
    out = expert.predict([np.zeros((2, 2, 3), np.uint8)] * 3, ["a.jpg", "b.jpg", "c.jpg"])
    assert expert.concepts == ["cat", "dog"]
    assert out.binary.tolist() == [[True, False], [False, True], [False, False]]


def test_labels_without_source_labels_is_a_clear_error():
    with pytest.raises(QRProbeInputError, match="no ground-truth labels"):
        build_expert("labels").prepare(["a"], None)


def test_labels_from_a_user_table_with_groups(tmp_path):
    table = tmp_path / "gt.csv"
    pd.DataFrame({"image_id": ["a", "a", "b"], "concept": ["cat", "indoor", "dog"],
                  "group": ["Objects", "Scene", "Objects"]}).to_csv(table, index=False)
    expert = build_expert("labels", {"table": str(table)})
    expert.prepare(["a", "b", "c"], None)
    out = expert.predict([np.zeros((2, 2, 3), np.uint8)] * 3, ["a", "b", "c"])
    t = expert.concept_table().set_index("name")
    assert t.loc["indoor", "group"] == "Scene"
    assert t.loc["cat", "group"] == "Objects"
    assert out.binary[:, expert.concepts.index("cat")].tolist() == [True, False, False]
    assert out.binary[2].sum() == 0
    with pytest.raises(QRProbeInputError, match="none of its image ids matches"):
        build_expert("labels", {"table": str(table)}).prepare(["x", "y"], None)
    bad = tmp_path / "bad.csv"
    bad.write_text("id,label\na,cat\n")
    with pytest.raises(QRProbeInputError, match="missing column 'image_id'"):
        build_expert("labels", {"table": str(bad)}).prepare(["a"], None)
