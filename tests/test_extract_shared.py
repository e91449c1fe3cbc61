"""Several models extracted together (qrprobe.features.extract_shared): each store exactly the store of the
model extracted alone, each image read and decoded once. (Slow: real extractions; the decoding part's exactness
is tested fast in test_decode_reduced.py.)"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from qrprobe.features import run_extraction
from qrprobe.features.config import ExtractConfig
from qrprobe.features.extract_shared import extract_together

MODELS = ("pixels", "efficientnet-lite0")


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[str]:
    """Twelve JPEGs, some large enough for reduced decoding, one corrupt file."""
    folder = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    paths = []
    for i in range(11):
        w, h = (1100, 1030) if i % 3 == 0 else (96, 72)
        base = rng.integers(0, 255, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
        img = Image.fromarray(base).resize((w, h), Image.Resampling.BICUBIC)
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=90)
        path = folder / f"{i:02d}.jpg"
        path.write_bytes(buf.getvalue())
        paths.append(str(path))
    bad = folder / "99.jpg"
    bad.write_bytes(b"\xff\xd8 not really")
    paths.append(str(bad))
    return paths


def _config(**extra) -> ExtractConfig:
    return ExtractConfig(**{"pretrained": False, "device": "cpu", "workers": 0, "chunk_size": 5, "batch_size": 3,
                            "progress": False, **extra})


@pytest.mark.slow
def test_stores_equal_those_extracted_alone(images, tmp_path):
    alone = [run_extraction(m, images, tmp_path / f"alone-{i}", _config()) for i, m in enumerate(MODELS)]
    together = extract_together([(m, tmp_path / f"together-{i}", _config()) for i, m in enumerate(MODELS)], images)
    for (a, _), (t, stats) in zip(alone, together, strict=True):
        assert t.manifest["config_hash"] == a.manifest["config_hash"]
        assert t.manifest["content_hash"] == a.manifest["content_hash"]
        np.testing.assert_array_equal(t.load(), a.load())
        assert [s["path"] for s in t.manifest["skipped"]] == [images[-1]]
        assert stats.n_encoded_now == 11
    # a second call reuses every store
    again = extract_together([(m, tmp_path / f"together-{i}", _config()) for i, m in enumerate(MODELS)], images)
    assert all(stats.reused for _, stats in again)


@pytest.mark.slow
def test_a_lone_configuration_runs_on_its_own(images, tmp_path):
    """Extractions that cannot share a pass (another chunk size) are run one by one, same stores."""
    out = extract_together([(MODELS[0], tmp_path / "a", _config()),
                            (MODELS[0], tmp_path / "b", _config(chunk_size=4))], images)
    np.testing.assert_array_equal(out[0][0].load(), out[1][0].load())


@pytest.mark.slow
def test_resumes_each_store_on_its_own(images, tmp_path, monkeypatch):
    """One store complete, one interrupted after its first chunk: the shared pass computes only what is missing
    and both end equal to stores extracted alone."""
    run_extraction(MODELS[0], images, tmp_path / "p0", _config())
    alone = run_extraction(MODELS[1], images, tmp_path / "alone", _config())[0]
    from qrprobe.features import store as store_module

    real_commit = store_module.FeatureStoreWriter.commit_chunk
    calls = {"n": 0}

    def failing_commit(self, chunk, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_commit(self, chunk, *args, **kwargs)

    monkeypatch.setattr(store_module.FeatureStoreWriter, "commit_chunk", failing_commit)
    with pytest.raises(KeyboardInterrupt):
        run_extraction(MODELS[1], images, tmp_path / "p1", _config())
    monkeypatch.setattr(store_module.FeatureStoreWriter, "commit_chunk", real_commit)
    out = extract_together([(m, tmp_path / f"p{i}", _config()) for i, m in enumerate(MODELS)], images)
    assert out[0][1].reused
    assert out[1][1].resumed_chunks == 1
    np.testing.assert_array_equal(out[1][0].load(), alone.load())
