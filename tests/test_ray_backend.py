"""The Ray backend of `extract` and `label` writes what the local backend writes, byte for byte.

A local Ray runtime with 2 CPUs and a 1 GiB object store serves the module (the library joins it and leaves
it running). The kill-and-rerun test (a real `qrprobe extract --backend ray` subprocess, killed with its own
runtime mid-run, then run again) is in test_ray_backend_kill.py.
"""

from __future__ import annotations

import filecmp
import json
import logging
from pathlib import Path

import numpy as np
import pytest

from _kill import interrupt_after
from qrprobe.cli.main import main
from qrprobe.errors import ParameterError, QRProbeInputError
from qrprobe.experts.label import run_labelling
from qrprobe.features import FeatureStore, FeatureStoreWriter
from qrprobe.features.extract import run_extraction
from qrprobe.raycluster import RayOptions, column, resolve_pool
from qrprobe.synthetic import write_image_folder

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "src" / "qrprobe" / "data" / "demo"
IMAGES = str(DEMO / "openclipart-demo.tar")
LABELS = {"labels": {"table": str(DEMO / "labels.csv")}}
#: Fields of a concept bank's manifest that time the run (they differ between any two runs, local or Ray).
TIMINGS = ("seconds", "images_per_second", "images_this_run", "resumed_images", "reused")

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


@pytest.fixture(scope="module", autouse=True)
def ray_runtime():
    """One local Ray runtime for the module: 2 CPUs, 1 GiB object store, no dashboard; shut down after."""
    ray.init(num_cpus=2, object_store_memory=2**30, include_dashboard=False, logging_level=logging.WARNING)
    yield
    ray.shutdown()


def same_files(a: Path, b: Path, skip: tuple[str, ...] = ()) -> None:
    """Every file of ``a`` is in ``b`` with the same bytes, and no other file is (``skip``: names to leave out);
    sub-folders alike."""
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    for name in names:
        if (a / name).is_dir():
            same_files(a / name, b / name)
        elif name not in skip:
            assert filecmp.cmp(a / name, b / name, shallow=False), f"{name} differs"


def bank_manifest_without_timings(path: Path) -> dict:
    manifest = json.loads((path / "manifest.json").read_text())
    for key in TIMINGS:
        manifest["info"]["labelling"].pop(key)
    return manifest


def same_bank(a: Path, b: Path) -> None:
    same_files(a, b, skip=("manifest.json",))
    assert bank_manifest_without_timings(a) == bank_manifest_without_timings(b)


def test_extraction_over_the_demo_images_is_byte_identical(tmp_path):
    common = {"chunk_size": 256, "progress": False, "device": "cpu"}
    local, _ = run_extraction("pixels", IMAGES, tmp_path / "local", workers=1, **common)
    store, stats = run_extraction("pixels", IMAGES, tmp_path / "ray", backend="ray", **common)
    assert local.n == 1484
    assert store.n == 1484
    assert stats.n_encoded_now == 1484
    same_files(local.path, store.path)
    assert stats.device == "ray: 1 actor(s) on cpu"


def test_a_network_over_demo_images_is_byte_identical(tmp_path):
    """A real CNN (random weights, batch 4, one thread): the same batches give the same bits."""
    common = {"chunk_size": 16, "limit": 56, "progress": False, "device": "auto", "batch_size": 4}
    local, _ = run_extraction("efficientnet-lite0-random", IMAGES, tmp_path / "local", workers=1, **common)
    store, _ = run_extraction("efficientnet-lite0-random", IMAGES, tmp_path / "ray", backend="ray",
                              ray=RayOptions(actors=1), **common)
    assert store.n == 56
    assert len(store.manifest["shards"]) == 4
    same_files(local.path, store.path)
    assert float(np.abs(store.load()).mean()) > 0


def test_unreadable_files_are_skipped_the_same_way(tmp_path):
    root = write_image_folder(tmp_path / "imgs", {"cat": 5, "dog": 4}, corrupt=True)
    local, _ = run_extraction("color-histogram", root, tmp_path / "local", chunk_size=4, batch_size=3,
                              workers=0, progress=False, device="cpu")
    store, _ = run_extraction("color-histogram", root, tmp_path / "ray", chunk_size=4, batch_size=3,
                              backend="ray", progress=False, device="cpu")
    assert {s["image_id"] for s in store.manifest["skipped"]} == {"notes.txt", "cat/broken.jpg"}
    same_files(local.path, store.path)
    local_bank = run_labelling(root, ["labels", "color"], output=tmp_path / "bank-local", chunk_size=4,
                               batch_size=3, progress=False)
    ray_bank = run_labelling(root, ["labels", "color"], output=tmp_path / "bank-ray", chunk_size=4, batch_size=3,
                             progress=False, backend="ray")
    assert ray_bank.report.skipped == local_bank.report.skipped
    assert len(ray_bank.report.skipped) == 1
    same_bank(tmp_path / "bank-local", tmp_path / "bank-ray")


def test_labelling_the_demo_images_is_byte_identical(tmp_path):
    experts = ["labels", "color", "image-stats"]
    local = run_labelling(IMAGES, experts, output=tmp_path / "local", options=LABELS, chunk_size=512,
                          save_scores=True, progress=False)
    result = run_labelling(IMAGES, experts, output=tmp_path / "ray", options=LABELS, chunk_size=512,
                           save_scores=True, progress=False, backend="ray")
    assert result.bank.n_images == 1484
    assert result.report.images_this_run == 1484
    assert result.bank.content_hash() == local.bank.content_hash()
    same_bank(tmp_path / "local", tmp_path / "ray")  # scores/ included
    assert set(result.report.seconds) == {"decode", *experts}


def test_a_network_expert_gives_the_same_concepts(tmp_path):
    """The ImageNet expert (EfficientNet-Lite0, real weights) in a Ray actor: the same bank as in-process."""
    options = {"imagenet": {"device": "cpu"}}
    local = run_labelling(IMAGES, ["imagenet", "color"], output=tmp_path / "local", options=options, limit=40,
                          chunk_size=16, batch_size=8, save_scores=True, progress=False)
    run_labelling(IMAGES, ["imagenet", "color"], output=tmp_path / "ray", options=options, limit=40, chunk_size=16,
                  batch_size=8, save_scores=True, progress=False, backend="ray", ray=RayOptions(num_gpus_per_actor=0))
    assert local.bank.matrix.nnz > 40  # top-1 ImageNet class + colours: at least one concept per image
    same_bank(tmp_path / "local", tmp_path / "ray")  # scores/ included


def test_a_run_interrupted_locally_resumes_on_ray(tmp_path, monkeypatch):
    """The chunks a local run committed before it was interrupted are kept by a Ray run (same configuration)."""
    common = {"chunk_size": 64, "progress": False, "device": "cpu", "limit": 320}
    reference, _ = run_extraction("pixels-4", IMAGES, tmp_path / "ref", **common)
    restore = interrupt_after(monkeypatch, FeatureStoreWriter, "commit_chunk", 2)  # after two of five chunks
    with pytest.raises(KeyboardInterrupt):
        run_extraction("pixels-4", IMAGES, tmp_path / "out", **common)
    restore()
    store, stats = run_extraction("pixels-4", IMAGES, tmp_path / "out", backend="ray", **common)
    assert stats.resumed_chunks == 2
    assert stats.n_encoded_now == 320 - 128
    same_files(reference.path, store.path)


@pytest.fixture(scope="module")
def six_images(tmp_path_factory) -> Path:
    return write_image_folder(tmp_path_factory.mktemp("imgs"), {"a": 3, "b": 3})


def test_cli_extract_with_the_ray_backend(six_images, tmp_path, capsys):
    assert main(["extract", "pixels-4", str(six_images), "-o", str(tmp_path / "f"), "--backend", "ray", "--quiet",
                 "--device", "cpu"]) == 0
    assert "on ray: 1 actor(s) on cpu" in capsys.readouterr().out
    assert FeatureStore.open(tmp_path / "f").n == 6


def test_cli_label_with_the_ray_backend(six_images, tmp_path, capsys):
    assert main(["label", str(six_images), "--experts", "labels,color", "-o", str(tmp_path / "bank"), "--backend",
                 "ray", "--quiet", "--actors", "1"]) == 0
    assert "6 images x" in capsys.readouterr().out


def test_cli_ray_backend_without_gpus(six_images, tmp_path, capsys):
    assert main(["extract", "pixels-4", str(six_images), "-o", str(tmp_path / "g"), "--backend", "ray",
                 "--device", "cuda"]) == 2
    assert "no GPUs" in capsys.readouterr().err


def test_cli_ray_backend_with_no_actors(six_images, tmp_path, capsys):
    assert main(["extract", "pixels-4", str(six_images), "-o", str(tmp_path / "g"), "--backend", "ray",
                 "--actors", "0"]) == 2
    assert "--actors: expected a positive number" in capsys.readouterr().err


def test_options_and_pool_resolution():
    with pytest.raises(ParameterError, match="actors"):
        RayOptions(actors=0)
    with pytest.raises(ParameterError, match="cpus_per_actor"):
        RayOptions(cpus_per_actor=0)

    class Cluster:
        def __init__(self, cpus, gpus):
            self.resources = {"CPU": cpus, "GPU": gpus} if gpus else {"CPU": cpus}

        def cluster_resources(self):
            return self.resources

    gpu = resolve_pool(Cluster(32, 4), RayOptions(), "auto")
    assert (gpu.size, gpu.num_gpus, gpu.device) == (4, 1.0, "cuda")
    half = resolve_pool(Cluster(32, 4), RayOptions(num_gpus_per_actor=0.5), "cuda")
    assert (half.size, half.device) == (8, "cuda")
    cpu = resolve_pool(Cluster(32, 4), RayOptions(cpus_per_actor=4), "cpu")
    assert (cpu.size, cpu.num_gpus, cpu.device, cpu.threads) == (4, 0.0, "cpu", 4)
    assert resolve_pool(Cluster(2, 0), RayOptions(), "auto").size == 1
    with pytest.raises(QRProbeInputError, match="no GPUs"):
        resolve_pool(Cluster(2, 0), RayOptions(), "cuda")
    with pytest.raises(QRProbeInputError, match="cannot start"):
        resolve_pool(Cluster(2, 1), RayOptions(num_gpus_per_actor=2), "auto")
    with pytest.raises(QRProbeInputError, match="auto, cpu or cuda"):
        resolve_pool(Cluster(2, 1), RayOptions(), "cuda:1")
    assert column([np.zeros(2), np.ones(2)]).shape == (2, 2)
    ragged = column([np.zeros(2), np.ones(3)])
    assert ragged.dtype == object
    assert [len(v) for v in ragged] == [2, 3]
