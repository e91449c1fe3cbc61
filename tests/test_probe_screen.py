"""Concept screening (issue 19 item 3): adding concepts that carry nothing must not lower the MI estimate."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from qrprobe.engine.config import ProbeConfig, ProtocolConfig
from qrprobe.engine.probe.reverse_probe import ReverseProbe
from qrprobe.engine.probe.screen import concept_ranking, concept_scores, refine_size, screen_sizes, should_screen
from qrprobe.engine.probe.split import stratified_split
from qrprobe.errors import ParameterError
from qrprobe.metrics import score_predictions

K = 50


@pytest.fixture(autouse=True)
def _one_thread():
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


def generated(n: int = 1000, seed: int = 0) -> tuple[np.ndarray, dict[str, sp.csr_matrix]]:
    """As ``benchmarks/mi_added_concepts.py``: 12 informative concepts (a random half of the 50 clusters each,
    10% flips), + 200 junk (Bernoulli 0.2), + 200 redundant (noisy copies of the 12)."""
    rng = np.random.default_rng([seed, 19])
    labels = rng.permutation(np.arange(n) % K)
    sets = np.stack([rng.permutation(K) < K // 2 for _ in range(12)])

    def noisy(j: np.ndarray) -> np.ndarray:
        clean = sets[j][:, labels].T
        return clean ^ (rng.random(clean.shape) < 0.1)

    informative = noisy(np.arange(12))
    junk = rng.random((n, 200)) < 0.2
    redundant = noisy(np.arange(200) % 12)

    def as_csr(*blocks: np.ndarray) -> sp.csr_matrix:
        return sp.csr_matrix(np.hstack(blocks).astype(np.uint8))

    return labels, {"12": as_csr(informative), "junk": as_csr(informative, junk),
                    "redundant": as_csr(informative, redundant)}


def probe_mi(labels: np.ndarray, concepts: sp.csr_matrix, cfg: ProbeConfig,
             seed: int = 0) -> tuple[float, ReverseProbe]:
    split = stratified_split(labels, seed)
    probe = ReverseProbe(cfg, seed=seed, device="cpu")
    probe.fit(concepts[split.train], labels[split.train], concepts[split.val], labels[split.val], n_classes=K)
    return score_predictions(labels[split.test], probe.predict_log_proba(concepts[split.test]))["mi_bits"], probe


@pytest.fixture(scope="module")
def data():
    return generated()


def test_the_ranking_puts_the_informative_concepts_first(data):
    labels, sets = data
    scores = concept_scores(sets["junk"], labels, K)
    assert scores.shape == (212,)
    assert scores[:12].min() > 0.3 > 0.15 > scores[12:].max()  # ~0.5 bits each vs plug-in noise (~0.05)
    assert set(concept_ranking(sets["junk"], labels, K)[:12]) == set(range(12))


def test_screening_keeps_the_informative_concepts_and_drops_the_junk(data):
    labels, sets = data
    _, probe = probe_mi(labels, sets["junk"], ProbeConfig())
    assert probe.n_concepts_kept_ == 12
    np.testing.assert_array_equal(probe.concepts_kept_, np.arange(12))
    assert not probe.coef_[12:].any()  # the dropped concepts weigh nothing
    assert probe.coef_.shape == (212, K)
    assert probe.screen_path_[0]["n_concepts"] == 212
    assert min(p["val_loss"] for p in probe.screen_path_) == \
        next(p["val_loss"] for p in probe.screen_path_ if p["n_concepts"] == 12)


def _mi_changes(labels, sets, cfg: ProbeConfig) -> tuple[float, float]:
    base, _ = probe_mi(labels, sets["12"], cfg)
    return probe_mi(labels, sets["junk"], cfg)[0] - base, probe_mi(labels, sets["redundant"], cfg)[0] - base


def test_adding_junk_or_redundant_concepts_lowers_the_mi_by_at_most_005_bits(data):
    junk, redundant = _mi_changes(*data, ProbeConfig())  # the recommended default
    assert junk >= -0.05
    assert redundant >= -0.05


def test_the_paper_setting_loses_bits_to_junk(data):
    """The same check fails on the paper's schedule (every concept): −2.3 bits on this split."""
    junk, redundant = _mi_changes(*data, ProbeConfig.preset("paper"))
    assert junk < -1.0
    assert redundant > 0.5


def test_the_paper_setting_never_screens_and_equals_the_unscreened_fit(data):
    labels, sets = data
    paper = ProbeConfig.preset("paper")
    assert paper == ProbeConfig(concept_screen="off")
    assert {k: v for k, v in paper.to_dict().items() if k != "concept_screen"} == \
        {k: v for k, v in ProbeConfig().to_dict().items() if k != "concept_screen"}  # the same schedule
    _, probe = probe_mi(labels, sets["junk"], paper)
    assert probe.n_concepts_kept_ == 212
    assert probe.screen_path_ == []


def test_auto_does_not_screen_with_enough_rows_and_then_equals_the_paper():
    labels, sets = generated(10_000, seed=2)
    # the 12 informative concepts on 6,400 training rows: 12 × 50 / (2 · 6,400) ≤ 0.05 nats, auto leaves them alone
    mi_auto, auto = probe_mi(labels, sets["12"], ProbeConfig())
    mi_paper, paper = probe_mi(labels, sets["12"], ProbeConfig.preset("paper"))
    assert auto.screen_path_ == []
    np.testing.assert_array_equal(auto.coef_, paper.coef_)
    np.testing.assert_array_equal(auto.intercept_, paper.intercept_)
    assert mi_auto == mi_paper


def test_when_all_concepts_are_best_screening_is_a_no_op(data):
    labels, sets = data
    _, on = probe_mi(labels, sets["12"], ProbeConfig(concept_screen="on"))
    _, off = probe_mi(labels, sets["12"], ProbeConfig(concept_screen="off"))
    assert on.n_concepts_kept_ == 12
    assert [p["n_concepts"] for p in on.screen_path_] == [12, 8]  # all M still best after 8: two fits
    np.testing.assert_array_equal(on.coef_, off.coef_)
    assert on.best_epoch_ == off.best_epoch_
    assert [h["val_loss"] for h in on.history_] == [h["val_loss"] for h in off.history_]


def test_screening_works_with_lbfgs_too():
    labels, sets = generated(400, seed=1)
    cfg = ProbeConfig(solver="lbfgs", lbfgs_grid=2, lbfgs_iters=50, concept_screen="on")
    _, probe = probe_mi(labels, sets["junk"], cfg)
    assert probe.n_concepts_kept_ <= 24
    assert set(probe.concepts_kept_) <= set(range(24))


def test_no_validation_split_no_screening(data):
    labels, sets = data
    probe = ReverseProbe(ProbeConfig(concept_screen="on", epochs=2), device="cpu")
    probe.fit(sets["junk"], labels, n_classes=K)
    assert probe.n_concepts_kept_ == 212
    assert probe.screen_path_ == []


def test_the_rule_and_the_sizes():
    assert screen_sizes(212) == [212, 192, 128, 96, 64, 48, 32, 24, 16, 12, 8, 6, 4, 3, 2, 1]
    assert screen_sizes(1) == [1]
    assert screen_sizes(2) == [2, 1]
    assert screen_sizes(16) == [16, 12, 8, 6, 4, 3, 2, 1]
    assert should_screen("auto", 640, 212, 50, True)
    assert should_screen("auto", 640, 12, 50, True)  # 12 × 50 / 1280 = 0.47 nats
    assert should_screen("auto", 12_800, 212, 50, True)  # N = 20,000: 0.41 nats
    assert not should_screen("auto", 12_800, 12, 50, True)  # 0.023 nats
    assert not should_screen("auto", 6000, 12, 50, True)  # exactly 0.05 nats
    assert should_screen("on", 10**6, 12, 50, True)
    assert not should_screen("off", 10, 212, 50, True)
    assert not should_screen("on", 640, 212, 50, False)
    assert not should_screen("on", 640, 1, 50, True)


def test_config_field_presets_and_saved_form():
    assert ProbeConfig().concept_screen == "auto"
    with pytest.raises(ParameterError, match="concept_screen"):
        ProbeConfig(concept_screen="sometimes")
    with pytest.raises(ParameterError, match="preset"):
        ProbeConfig.preset("fast")
    assert ProbeConfig.preset("recommended") == ProbeConfig()
    for cfg in (ProbeConfig(), ProbeConfig(concept_screen="on"), ProbeConfig.preset("paper")):
        assert ProbeConfig.from_dict(cfg.to_dict()) == cfg
        assert ProtocolConfig.from_dict(ProtocolConfig(probe=cfg).to_dict()).probe == cfg  # a saved result
    # the paper's saved form is that of releases before screening, and such a result reads back as "off"
    saved = ProtocolConfig(probe=ProbeConfig.preset("paper")).to_dict()
    assert "concept_screen" not in saved["probe"]
    assert ProtocolConfig.from_dict(saved).probe.concept_screen == "off"
    assert ProbeConfig.from_saved({"lr": 1.0}).concept_screen == "off"
    assert ProtocolConfig().to_dict()["probe"]["concept_screen"] == "auto"
    assert ProtocolConfig.from_params(concept_screen="on").probe.concept_screen == "on"


def test_off_the_grid_the_bisection_comes_back_to_the_informative_concepts(data):
    labels, sets = data
    ten = sets["junk"][:, [*range(10), *range(12, 212)]]  # 10 informative concepts (not a grid size) + 200 junk
    _, probe = probe_mi(labels, ten, ProbeConfig())
    assert set(range(10)) <= set(probe.concepts_kept_)
    assert probe.n_concepts_kept_ <= 12
    sizes = [p["n_concepts"] for p in probe.screen_path_]
    assert sizes[:10] == [210, 192, 128, 96, 64, 48, 32, 24, 16, 12]
    assert 10 in sizes  # the bisection between 8 and 12


def test_refine_size():
    assert refine_size(8, 12) == 10
    assert refine_size(10, 12) == 11
    assert refine_size(11, 12) is None
    assert refine_size(128, 192) == 160
    assert refine_size(180, 192) is None  # within 192 / 16
