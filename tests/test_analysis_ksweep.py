"""K sweep: the mutual-information estimate grows with K (paper Fig. 6)."""

from __future__ import annotations

import numpy as np
import pytest

from qrprobe.analysis.ksweep import k_sweep, k_sweep_table, parse_ks
from qrprobe.errors import QRProbeInputError
from qrprobe.synthetic import make_object_scene


def test_mi_grows_with_k(fast_config) -> None:
    data = make_object_scene(n=1500)
    sweep = k_sweep(data.features, data.bank, "24,3,6,12", config=fast_config(n_clusterings=1), name="synth")
    table = sweep.table
    assert table["k"].tolist() == [3, 6, 12, 24]
    mi = table["mi_bits_mean"].to_numpy()
    assert np.all(np.diff(mi) > 0), mi
    # each MI is a lower bound of the clustering's entropy
    assert np.all(mi <= table["cluster_entropy_bits_mean"].to_numpy() + 1e-9)
    assert [r.config["k"] for r in sweep.results] == [3, 6, 12, 24]
    assert set(table["model"]) == {"synth"}


def test_table_from_existing_results(evaluated) -> None:
    _, r12 = evaluated("full")
    _, r6 = evaluated("k6")
    table = k_sweep_table([r12, r6])
    assert table["k"].tolist() == [6, 12]
    assert table.loc[1, "nmi_mean"] == pytest.approx(r12.summary["nmi"]["mean"])


def test_parse_ks(fast_config) -> None:
    assert parse_ks("32, 8,16,8") == [8, 16, 32]
    for bad in ("8,x", "1,4", ""):
        with pytest.raises(QRProbeInputError, match="--k"):
            parse_ks(bad)
    data = make_object_scene(n=100)
    with pytest.raises(QRProbeInputError, match="exceeds"):
        k_sweep(data.features, data.bank, [4, 500], config=fast_config())
