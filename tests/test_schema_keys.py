"""The cache keys come from the schema: the fields marked ``key`` in ExtractConfig / LabelConfig make the feature
store's configuration hash, the concept bank's run key and the study's stage keys; their values are the ones
earlier releases computed (a study re-run after an upgrade reuses its caches); and a parameter added to
ExtractConfig reaches the CLI, the study reference and the keys with no other edit."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from qrprobe.experts.label_config import LabelConfig
from qrprobe.experts.label_setup import resolve_experts, run_config_key
from qrprobe.features.config import ExtractConfig
from qrprobe.features.extract import config_hash, store_config
from qrprobe.features.store import FORMAT
from qrprobe.images import open_images
from qrprobe.schema import config_fields
from qrprobe.study.config import ExpertSpec, LabellingSpec, ModelSpec
from qrprobe.study.stages import ImageSet, expert_key, extract_key

SRC = Path(__file__).resolve().parents[1] / "src"
IMAGES_KEY = "0123456789abcdef"


@pytest.fixture(scope="module")
def source():
    """Three in-memory images: their listing's hash depends on their pixels only."""
    rng = np.random.default_rng(0)
    return open_images([rng.integers(0, 255, (8, 6, 3), dtype=np.uint8) for _ in range(3)], ["a", "b", "c"])


# The values below were computed by qrprobe 0.1.0 at commit aa8eb2b, before the keys came from the schema.
def test_a_feature_stores_hash_keeps_its_value(source):
    assert source.inputs_hash() == "ced1570c4affd397"
    assert config_hash(store_config("pixels-4", ExtractConfig(), source)) == "7a25e46c988a8b47"
    stated = ExtractConfig(layer="blocks.6", image_size=64, mean=[0.5, 0.5, 0.5], std=(0.25, 0.25, 0.25),
                           dtype="float16", chunk_size=5, preprocess="imagenet-bicubic", batch_size=3, workers=1)
    assert config_hash(store_config("efficientnet-lite0", stated, source)) == "f9e72005aae17863"


def test_the_studys_stage_keys_keep_their_values():
    assert extract_key(ModelSpec(name="px", model="pixels-4"), IMAGES_KEY) == "d50fd2a557b3"
    stated = ModelSpec(name="lite0", model="efficientnet-lite0", layer="blocks.6", pretrained=False, dtype="float16",
                       image_size=64, preprocess="imagenet-bicubic", batch_size=2, strict_weights=True)
    assert extract_key(stated, IMAGES_KEY) == "4b67309a9971"
    color = ExpertSpec(name="color", options={"min_fraction": 0.1})
    assert expert_key(color, ImageSet(None, IMAGES_KEY), LabellingSpec(batch_size=8, workers=1)) == "4dbf5f1f3635"


def test_a_concept_banks_run_key_is_the_one_of_earlier_releases(source):
    from qrprobe import __version__

    experts = resolve_experts(["color", "image-stats"])
    earlier = {"source": source.inputs_hash(), "experts": [e.config() for e in experts], "chunk_size": 100,
               "max_side": 64, "qrprobe": __version__}  # the payload before the schema (it holds the version)
    digest = hashlib.sha256(json.dumps(earlier, sort_keys=True, default=str).encode()).hexdigest()[:16]
    assert run_config_key(source, experts, LabelConfig(chunk_size=100, max_side=64, batch_size=3)) == digest


CHANGES = {"layer": "blocks.6", "weights": "w.pt", "pretrained": False, "image_size": 64, "dtype": "float16",
           "preprocess": "imagenet", "mean": (0.5, 0.5, 0.5), "std": (0.2, 0.2, 0.2), "chunk_size": 7,
           "strict_weights": True, "batch_size": 3, "device": "cpu", "workers": 1, "threads": 1, "limit": 2,
           "backend": "ray", "overwrite": True, "progress": False, "decode_margin": 0}


def test_exactly_the_key_fields_change_the_keys(source, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("w.pt").write_bytes(b"weights")
    assert set(CHANGES) == {f.name for f in config_fields(ExtractConfig)} - {"ray"}
    base_store = config_hash(store_config("efficientnet-lite0", ExtractConfig(), source))
    base_stage = extract_key(ModelSpec(name="m", model="efficientnet-lite0"), IMAGES_KEY)
    stated = {f.name for f in dataclasses.fields(ModelSpec)}
    for f in config_fields(ExtractConfig):
        if f.name not in CHANGES:
            continue
        keyed = bool(f.metadata["key"])
        config = ExtractConfig(**{f.name: CHANGES[f.name]})
        assert (config_hash(store_config("efficientnet-lite0", config, source)) != base_store) == keyed, f.name
        if f.name in stated:
            spec = ModelSpec(name="m", model="efficientnet-lite0", **{f.name: CHANGES[f.name]})
            assert (extract_key(spec, IMAGES_KEY) != base_stage) == keyed, f.name
    experts = resolve_experts(["color"])
    base_bank = run_config_key(source, experts, LabelConfig())
    for name, value in {"chunk_size": 5, "max_side": 9, "batch_size": 5, "workers": 1, "save_scores": True}.items():
        keyed = bool(next(f for f in config_fields(LabelConfig) if f.name == name).metadata["key"])
        assert (run_config_key(source, experts, LabelConfig(**{name: value})) != base_bank) == keyed, name


def test_a_representations_store_hash_leaves_out_the_fields_that_build_a_model(source):
    from qrprobe.models.registry import create_representation

    rep = create_representation("pixels-4")
    config = store_config(rep, ExtractConfig(layer="x", image_size=9), source)
    assert set(config) == {"format", "representation", "dtype", "chunk_size", "inputs", "n_inputs"}
    assert config["format"] == FORMAT


# ------------------------------------------------------------------------------------------------ done when
NEW_FIELD = '''\
    colour_jitter: float = param(0.0, "jitter the colours by this much before encoding (a test's parameter)",
                                 key=True, group=RUN)
'''

PROBE = '''\
import inspect, json
from pathlib import Path

import numpy as np
from qrprobe.features.config import ExtractConfig
from qrprobe.features.extract import config_hash, extract, store_config
from qrprobe.images import open_images
from qrprobe.study.load import study_from_dict
from qrprobe.study.reference import reference_markdown
from qrprobe.study.stages import extract_key

source = open_images([np.zeros((4, 4, 3), np.uint8)], ["a"])
models = [{"name": "a", "model": "pixels-4"}, {"name": "b", "model": "pixels-4", "colour_jitter": 0.5}]
study = study_from_dict({"name": "s", "images": {"source": "."}, "experts": [{"name": "color"}], "models": models},
                        {}, Path("."))
print(json.dumps({
    "reference": reference_markdown(),
    "store": store_config("pixels-4", ExtractConfig(colour_jitter=0.5), source),
    "hashes": [config_hash(store_config("pixels-4", ExtractConfig(colour_jitter=v), source)) for v in (0.0, 0.5)],
    "stage": [extract_key(m, "k") for m in study.models],
    "extraction": study.models[1].extraction().colour_jitter,
    "signature": str(inspect.signature(extract).parameters["colour_jitter"]),
}))
'''


def test_a_parameter_added_to_extract_config_reaches_the_flag_the_study_reference_and_the_keys(tmp_path):
    """The issue's test: one field added to ExtractConfig, in a copy of the package, and nothing else edited."""
    copy = tmp_path / "src" / "qrprobe"
    shutil.copytree(SRC / "qrprobe", copy, ignore=shutil.ignore_patterns("__pycache__", "*.tar"))
    config = copy / "features" / "config.py"
    text = config.read_text()
    anchor = "    backend: str = backend_param()\n"
    assert anchor in text
    config.write_text(text.replace(anchor, NEW_FIELD + anchor))
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "src"), "COLUMNS": "120"}

    helped = subprocess.run([sys.executable, "-m", "qrprobe", "extract", "--help"], env=env, capture_output=True,
                            text=True, timeout=120)
    assert helped.returncode == 0, helped.stderr
    assert "--colour-jitter COLOUR_JITTER" in helped.stdout
    assert "jitter the colours by this much before encoding" in " ".join(helped.stdout.split())
    assert "[default: 0.0]" in helped.stdout

    probed = subprocess.run([sys.executable, "-c", textwrap.dedent(PROBE)], env=env, capture_output=True, text=True,
                            timeout=120, cwd=tmp_path)
    assert probed.returncode == 0, probed.stderr
    got = json.loads(probed.stdout)
    assert ("| `colour_jitter` | number | 0.0 | jitter the colours by this much before encoding (a test's parameter) |"
            in got["reference"])
    assert got["store"]["colour_jitter"] == 0.5
    assert got["hashes"][0] != got["hashes"][1]  # the feature store's identity
    assert got["stage"][0] != got["stage"][1]  # the study's extract stage
    assert got["extraction"] == 0.5  # the study hands it to the extraction
    assert got["signature"] == "colour_jitter: float = 0.0"
