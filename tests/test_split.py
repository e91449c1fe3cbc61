"""The stratified split: a partition, proportional per cluster, deterministic, tolerant of tiny clusters."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qrprobe.engine.probe.split import stratified_split
from qrprobe.errors import QRProbeInputError


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 9), min_size=5, max_size=400), st.integers(0, 2**31 - 1))
def test_split_is_a_partition_and_stratified(labels, seed):
    labels = np.array(labels)
    try:
        split = stratified_split(labels, seed)
    except QRProbeInputError:
        assert all(np.bincount(labels) < 3)  # only when no cluster can give a test image
        return
    everything = np.concatenate([split.train, split.val, split.test])
    assert sorted(everything.tolist()) == list(range(len(labels)))
    for c in np.unique(labels):
        n = int((labels == c).sum())
        n_test = int((labels[split.test] == c).sum())
        assert n_test == int(np.floor(0.2 * n + 0.5))
        n_val = int((labels[split.val] == c).sum())
        assert n_val == int(np.floor(0.2 * (n - n_test) + 0.5))
        if n_test == 0 or n_val == 0:
            assert c in split.small_clusters


def test_split_is_deterministic_given_the_seed():
    labels = np.random.default_rng(0).integers(0, 20, 5000)
    a, b, c = stratified_split(labels, 7), stratified_split(labels, 7), stratified_split(labels, 8)
    np.testing.assert_array_equal(a.test, b.test)
    np.testing.assert_array_equal(a.val, b.val)
    assert not np.array_equal(a.test, c.test)


def test_proportions_of_the_paper():
    labels = np.repeat(np.arange(10), 100)
    s = stratified_split(labels, 0)
    assert (len(s.train), len(s.val), len(s.test)) == (640, 160, 200)
    assert s.small_clusters == ()
    codes = s.as_codes(1000)
    assert np.bincount(codes).tolist() == [640, 160, 200]


def test_tiny_clusters_are_reported_not_fatal():
    labels = np.array([0] * 50 + [1] + [2, 2])
    s = stratified_split(labels, 0)
    assert set(s.small_clusters) == {1, 2}
    assert 50 in s.train  # the singleton trains


@pytest.mark.parametrize(("test_fraction", "val_fraction"), [(0.0, 0.2), (1.0, 0.2), (0.2, 1.0), (0.2, -0.1)])
def test_invalid_fractions(test_fraction, val_fraction):
    with pytest.raises(QRProbeInputError, match="fraction"):
        stratified_split(np.zeros(10, int), 0, test_fraction, val_fraction)
