"""The 'Add an expert' recipe of docs/CONTRIBUTING.md, followed from outside the package: an expert class
defined here, registered by name, then used by the labelling loop exactly as a built-in one."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from qrprobe.errors import QRProbeInputError
from qrprobe.experts import Expert, ExpertInfo, ExpertOutput, build_expert, label_images, register_expert
from qrprobe.experts.rules import threshold_multilabel


class AspectExpert(Expert):
    """Two concepts from the image's shape: ``wide`` (width/height ≥ ratio) and ``tall`` (height/width ≥ ratio)."""

    registry_name = "aspect-test"
    default_group = "Other"

    def __init__(self, *, ratio: float = 1.5, name: str | None = None, group: str | None = None) -> None:
        super().__init__(name=name, group=group)
        if not float(ratio) >= 1.0:
            raise QRProbeInputError(f"aspect-test.ratio must be >= 1, got {ratio}")
        self.ratio = float(ratio)
        self.rule = f"side ratio >= {self.ratio:g}"

    @property
    def concepts(self) -> list[str]:
        return ["wide", "tall"]

    def thresholds(self) -> list[float]:
        return [self.ratio, self.ratio]

    def _predict(self, images, image_ids) -> ExpertOutput:
        ratios = np.array([[im.shape[1] / im.shape[0], im.shape[0] / im.shape[1]] for im in images], np.float32)
        return ExpertOutput(threshold_multilabel(ratios, self.ratio), ratios)

    def config(self) -> dict:
        return {**super().config(), "ratio": self.ratio}


@pytest.fixture(scope="module")
def registered() -> ExpertInfo:
    return register_expert(ExpertInfo(
        "aspect-test", f"{__name__}:AspectExpert", "Other", 2, "image shape", "side ratio >= ratio", None,
        "none (exact rule)", "wide or tall images", defaults={"ratio": 1.5}), replace=True)


def test_a_registered_expert_is_built_by_name_with_coerced_options(registered):
    expert = build_expert("aspect-test", {"ratio": "2"})  # a string from the command line
    assert isinstance(expert, AspectExpert)
    assert expert.ratio == 2.0
    with pytest.raises(QRProbeInputError, match="no option 'size'"):
        build_expert("aspect-test", {"size": "3"})


def test_the_labelling_loop_runs_a_registered_expert_beside_a_built_in(registered, tmp_path):
    shapes = {"wide": (90, 30), "tall": (30, 90), "square": (50, 50)}  # (width, height)
    for name, size in shapes.items():
        Image.new("RGB", size, (200, 30, 30)).save(tmp_path / f"{name}.png")
    bank = label_images(tmp_path, ["aspect-test", "color"])
    names = bank.display_names()
    assert "[Other/aspect-test] wide" in names
    assert "[Texture/color] red" in names
    matrix = bank.matrix.toarray().astype(bool)
    by_image = {img: {n for n, on in zip(names, row, strict=True) if on}
                for img, row in zip(bank.image_ids, matrix, strict=True)}
    assert {k.split("/")[-1].split(".")[0]: v - {"[Texture/color] red"} for k, v in by_image.items()} == {
        "wide": {"[Other/aspect-test] wide"}, "tall": {"[Other/aspect-test] tall"}, "square": set()}
