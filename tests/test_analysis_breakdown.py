"""Group breakdown on generated data whose clusters are object x scene combinations."""

from __future__ import annotations

import pytest

from qrprobe.analysis.breakdown import group_breakdown
from qrprobe.errors import QRProbeInputError
from qrprobe.synthetic import make_object_scene


@pytest.fixture(scope="module")
def breakdown(fast_config):
    data = make_object_scene(n=1500)
    return group_breakdown(data.features, data.bank, order=["Labels", "Scene", "Noise"], label_group="Labels",
                           config=fast_config(n_clusterings=2))


def test_gain_is_attributed_to_the_scene_group(breakdown) -> None:
    single = breakdown.single.set_index("group")
    assert list(single.index) == ["Labels", "+Scene", "+Noise"]
    # labels alone cannot tell the 3 scenes of an object apart; the scene group can
    assert single.loc["Labels", "top1_mean"] < 50
    assert single.loc["+Scene", "delta_nmi_mean"] > 20
    assert single.loc["+Scene", "delta_top1_mean"] > 40
    assert single.loc["+Scene", "delta_mi_bits_mean"] > 1.2  # ≈ log2(3) bits of scene information
    # pure-noise concepts carry no information: ≈ 0 bits (a little lost to over-fitting on the test split),
    # no top-1 gain; NMI of the argmax may even drop
    assert -0.15 < single.loc["+Noise", "delta_mi_bits_mean"] < 0.05
    assert single.loc["+Noise", "delta_top1_mean"] < 3
    assert single.loc["+Noise", "delta_nmi_mean"] < 1


def test_cumulative_steps(breakdown) -> None:
    cum = breakdown.cumulative
    with_labels = cum[cum["with_labels"]]
    assert with_labels["groups"].tolist() == ["Labels", "Labels + Scene", "Labels + Scene + Noise"]
    assert cum[~cum["with_labels"]]["groups"].tolist() == ["Scene", "Scene + Noise"]
    nmi = with_labels["nmi_mean"].tolist()
    assert nmi[1] > nmi[0] + 20
    assert nmi[2] > nmi[1] - 3
    assert with_labels["n_concepts"].tolist() == [4, 7, 11]


def test_all_groups_reproduce_evaluate(evaluated, breakdown) -> None:
    """Breakdown probes run on the clusterings ``evaluate`` makes: the full set gives evaluate's scores."""
    _, result = evaluated("full")
    last = breakdown.cumulative.iloc[2]
    for m in ("nmi", "ami", "top1", "map", "mi_bits"):
        assert last[f"{m}_mean"] == pytest.approx(result.summary[m]["mean"], abs=1e-6)


def test_bad_groups_are_input_errors(fast_config) -> None:
    data = make_object_scene(n=300)
    with pytest.raises(QRProbeInputError, match="--order"):
        group_breakdown(data.features, data.bank, order=["Labels", "Colour"], config=fast_config())
    with pytest.raises(QRProbeInputError, match="--label-group"):
        group_breakdown(data.features, data.bank, label_group="IN-1k", config=fast_config())
