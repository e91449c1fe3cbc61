"""The extraction loop: feature stores from folders, lists and shards; corrupt files skipped and reported;
interrupted runs resumed to an identical store; finished stores reused; the CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from _kill import committed_chunks, interrupt_after, wait_for_chunks
from qrprobe.cli.main import main
from qrprobe.errors import QRProbeInputError
from qrprobe.features import FeatureStore, FeatureStoreWriter, extract, run_extraction, write_feature_store
from qrprobe.features.store import partial_path
from qrprobe.synthetic import write_image_folder, write_webdataset_shards

REPO = Path(__file__).resolve().parents[1]
FAST = {"workers": 0, "progress": False, "device": "cpu"}
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _same_store(a: FeatureStore, b: FeatureStore) -> None:
    np.testing.assert_array_equal(a.load(np.float32), b.load(np.float32))
    pd.testing.assert_frame_equal(pd.read_parquet(a.path / "index.parquet"),
                                  pd.read_parquet(b.path / "index.parquet"))
    assert a.manifest == b.manifest


def test_folder_with_corrupt_and_non_image_files(tmp_path):
    root = write_image_folder(tmp_path / "imgs", {"cat": 3, "dog": 2}, corrupt=True)
    store, stats = run_extraction("pixels", root, tmp_path / "feats", batch_size=2, **FAST)
    assert store.n == 5
    assert store.dim == 768
    assert store.dtype == "float32"
    assert list(store.labels) == ["cat"] * 3 + ["dog"] * 2
    assert "cat/broken.jpg" not in set(store.image_ids)
    skipped = {s["image_id"]: s["reason"] for s in store.manifest["skipped"]}
    assert set(skipped) == {"notes.txt", "cat/broken.jpg"}
    assert store.manifest["n_skipped"] == 2
    assert "truncated" in skipped["cat/broken.jpg"]
    assert "not an image" in skipped["notes.txt"]
    assert stats.n_skipped == 2
    assert stats.n_extracted == 5
    m = store.manifest
    assert m["complete"]
    assert m["model"] == "pixels"
    assert m["layer"] == "features"
    assert m["preprocessing"]["kind"] == "pixels"
    assert "torch" in m["versions"]
    assert m["source"]["kind"] == "folder"
    assert m["source"]["n_images"] == 6
    # the content hash is the same as write_feature_store's for the same array
    again = write_feature_store(tmp_path / "copy", store.load(np.float32), dtype="float32")
    assert again.manifest["content_hash"] == m["content_hash"]


def test_features_match_the_model_in_order(tmp_path):
    root = write_image_folder(tmp_path / "imgs", {"a": 3, "b": 3})
    store = extract("color-histogram", root, tmp_path / "f", dtype="float32", batch_size=4, **FAST)
    from qrprobe.images import decode_image, folder_source
    from qrprobe.models import create_representation

    rep = create_representation("color-histogram")
    src = folder_source(root)
    expected = np.stack([rep.preprocess(decode_image(src.read_bytes(i))).numpy() for i in range(len(src))])
    np.testing.assert_allclose(store.load(), expected, rtol=1e-6)
    assert list(store.image_ids) == src.image_ids


def test_interrupted_extraction_resumes_to_an_identical_store(tmp_path, monkeypatch):
    root = write_image_folder(tmp_path / "imgs", {"a": 5, "b": 6}, corrupt=True)
    opts = dict(batch_size=3, chunk_size=4, **FAST)
    reference = extract("efficientnet-lite0-random", root, tmp_path / "ref", **opts)

    restore = interrupt_after(monkeypatch, FeatureStoreWriter, "commit_chunk", 2)  # after two of three chunks
    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        extract("efficientnet-lite0-random", root, out, **opts)
    assert not out.exists()
    assert partial_path(out).is_dir()
    with pytest.raises(QRProbeInputError, match="incomplete"):
        FeatureStore.open(partial_path(out))
    restore()
    store, stats = run_extraction("efficientnet-lite0-random", root, out, **opts)
    assert stats.resumed_chunks == 2
    assert stats.n_encoded_now == 4  # only the last chunk was computed
    assert not partial_path(out).exists()
    _same_store(store, reference)


def test_finished_store_is_reused_and_conflicts_are_errors(tmp_path, monkeypatch):
    root = write_image_folder(tmp_path / "imgs", {"a": 2})
    first = extract("pixels", root, tmp_path / "f", **FAST)

    def boom(*a, **k):
        raise AssertionError("the model must not be built again")

    monkeypatch.setattr("qrprobe.models.registry.create_representation", boom)
    store, stats = run_extraction("pixels", root, tmp_path / "f", **FAST)
    assert stats.reused
    assert store.manifest == first.manifest
    monkeypatch.undo()
    with pytest.raises(QRProbeInputError, match="another configuration"):
        extract("pixels", root, tmp_path / "f", dtype="float16", **FAST)
    store = extract("pixels", root, tmp_path / "f", dtype="float16", overwrite=True, **FAST)
    assert store.dtype == "float16"


def test_tar_shards_and_file_list(tmp_path):
    write_webdataset_shards(tmp_path / "wds", 2, 3)
    store = extract("pixels-4", str(tmp_path / "wds"), tmp_path / "f1", **FAST)
    assert store.n == 6
    assert store.dim == 48
    assert store.image_ids[0] == "s000_000"
    assert list(store.labels) == ["0", "1", "0", "0", "1", "0"]
    root = write_image_folder(tmp_path / "imgs", {"a": 2})
    lst = tmp_path / "list.csv"
    lst.write_text("image_id,path\nx,imgs/a/000.jpg\ny,imgs/a/missing.jpg\nz,imgs/a/001.jpg\n")
    store = extract("pixels-4", lst, tmp_path / "f2", **FAST)
    assert list(store.image_ids) == ["x", "z"]
    assert store.labels is None
    assert store.manifest["skipped"] == [{"image_id": "y", "path": str(root / "a" / "missing.jpg"),
                                          "reason": "file not found"}]


def test_workers_give_the_same_store(tmp_path):
    root = write_image_folder(tmp_path / "imgs", {"a": 4, "b": 3}, corrupt=True)
    a = extract("hog", root, tmp_path / "w0", **FAST)
    b = extract("hog", root, tmp_path / "w2", workers=2, progress=False, batch_size=2)
    np.testing.assert_array_equal(a.load(), b.load())
    assert a.manifest["content_hash"] == b.manifest["content_hash"]


@pytest.fixture(scope="module")
def damaged_folder(tmp_path_factory) -> Path:
    """Three images in two classes, a truncated JPEG and a text file (read only by the tests)."""
    return write_image_folder(tmp_path_factory.mktemp("imgs"), {"a": 2, "b": 1}, corrupt=True)


def test_cli_extract_writes_then_reuses_the_store(damaged_folder, tmp_path, capsys):
    # one sequence: the second command must find the store the first one wrote
    out = tmp_path / "feats"
    assert main(["extract", "pixels", str(damaged_folder), "-o", str(out), "--quiet", "--workers", "0"]) == 0
    captured = capsys.readouterr()
    assert "wrote 3 feature vectors (768-d, float32" in captured.out
    assert "images/s" in captured.out
    assert "skipped 2 file(s)" in captured.err
    assert "broken.jpg" in captured.err
    assert main(["extract", "pixels", str(damaged_folder), "-o", str(out), "--quiet"]) == 0
    assert "reused the complete feature store" in capsys.readouterr().out


def test_cli_extract_unknown_model(damaged_folder, tmp_path, capsys):
    assert main(["extract", "no-such-model", str(damaged_folder), "-o", str(tmp_path / "x")]) == 2
    assert "unknown model" in capsys.readouterr().err


def test_cli_extract_missing_images(tmp_path):
    assert main(["extract", "pixels", str(tmp_path / "nowhere"), "-o", str(tmp_path / "x")]) == 2


def test_cli_models_lists_the_model_strings(capsys):
    assert main(["models"]) == 0
    listing = capsys.readouterr().out
    assert "timm:NAME" in listing
    assert "efficientnet-lite0-random" in listing
    assert "EXTRA" in listing


def test_cli_models_lists_a_models_layers(capsys):
    assert main(["models", "--layers", "efficientnet-lite0-random"]) == 0
    assert "_blocks.15" in capsys.readouterr().out


@pytest.mark.slow
def test_killed_cli_run_resumes_to_an_identical_store(tmp_path):
    """A real SIGKILL in the middle of `qrprobe extract`, then the same command again (one sequence: the resumed
    run needs the killed run's work folder; the reference run is what it must equal)."""
    root = write_image_folder(tmp_path / "imgs", {"a": 12, "b": 12})
    cmd = [sys.executable, "-m", "qrprobe", "extract", "efficientnet-lite0-random", str(root), "--no-progress",
           "--workers", "0", "--batch-size", "2", "--chunk-size", "4", "--threads", "1"]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    out = tmp_path / "killed"
    proc = subprocess.Popen([*cmd, "-o", str(out)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    manifest = partial_path(out) / "manifest.json"
    wait_for_chunks(proc, manifest, 2, timeout=120)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    done = committed_chunks(manifest)
    assert 2 <= done < 6
    resumed = subprocess.run([*cmd, "-o", str(out)], env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed after {done} finished chunk(s)" in resumed.stdout
    # the reference: the same command in this process (the CLI's code; a third interpreter would only add its
    # start-up)
    assert main([*cmd[3:], "-o", str(tmp_path / "ref")]) == 0
    _same_store(FeatureStore.open(out), FeatureStore.open(tmp_path / "ref"))


@pytest.fixture(scope="module")
def five_images(tmp_path_factory) -> Path:
    return write_image_folder(tmp_path_factory.mktemp("imgs"), {"a": 3, "b": 2})


def test_extract_limit_takes_the_first_images(five_images, tmp_path):
    assert main(["extract", "pixels-4", str(five_images), "-o", str(tmp_path / "f"), "--limit", "2",
                 "--quiet"]) == 0
    store = FeatureStore.open(tmp_path / "f")
    assert store.n == 2
    assert list(store.image_ids) == ["a/000.jpg", "a/001.jpg"]


def test_extract_limit_zero_is_refused(five_images, tmp_path):
    assert main(["extract", "pixels-4", str(five_images), "-o", str(tmp_path / "g"), "--limit", "0"]) == 2
    assert not (tmp_path / "g").exists()
