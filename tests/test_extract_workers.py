"""The loader-worker default: small images are decoded in the extracting process (no worker), larger ones in
one worker per spare core (features/batches.py ``default_workers`` / ``small_images``)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from qrprobe.features import batches
from qrprobe.features.batches import SMALL_IMAGE_PIXELS, default_workers, small_images
from qrprobe.images.open import open_images


def _folder(tmp_path, size: tuple[int, int], n: int = 10, broken: int = 0):
    rng = np.random.default_rng(0)
    for i in range(n):
        path = tmp_path / f"img{i:02d}.jpg"
        if i < broken:
            path.write_bytes(b"not an image")
        else:
            Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return open_images(tmp_path)


@pytest.fixture
def four_cores(monkeypatch):
    monkeypatch.setattr(batches.os, "cpu_count", lambda: 4)


def test_small_images_are_decoded_in_process(tmp_path, four_cores):
    source = _folder(tmp_path, (96, 96))
    assert small_images(source)
    assert default_workers(source) == 0


def test_large_images_get_a_worker_per_spare_core(tmp_path, four_cores):
    source = _folder(tmp_path, (640, 480))
    assert SMALL_IMAGE_PIXELS < 640 * 480
    assert not small_images(source)
    assert default_workers(source) == 3
    assert default_workers() == 3  # no source: the old rule


def test_the_threshold_is_the_average_over_the_first_readable_files(tmp_path, four_cores):
    source = _folder(tmp_path, (256, 256), broken=3)  # exactly at the threshold; unreadable files are skipped
    assert small_images(source)


def test_a_collection_of_unreadable_files_keeps_the_workers(tmp_path, four_cores):
    source = _folder(tmp_path, (96, 96), n=4, broken=4)
    assert not small_images(source)
    assert default_workers(source) == 3
