"""The paper's Table 2 models: the example study, the docs table and the real resolution path agree.

Nothing is downloaded: representations are built with random weights through
:func:`qrprobe.models.create_representation` (the real adapters), timm's offline pretrained configurations
tell which tag and file a name resolves to, and the resolved transforms are applied to test images and
compared with torchvision's transforms built from the table's values.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from qrprobe.errors import ParameterError, QRProbeInputError
from qrprobe.models import create_representation
from qrprobe.models.paper import PAPER_MODELS, Transform, paper_model, paper_models_markdown
from qrprobe.models.preprocess import ImagePreprocess, parse_preprocess, preprocess_check

pytest.importorskip("timm")
tv = pytest.importorskip("torchvision")
ROOT = Path(__file__).resolve().parents[1]
REFERENCE = Path("/work/shared/paper/REFERENCE.md")
RESOLVABLE = [e for e in PAPER_MODELS if not e.model.startswith("python:")]


@functools.cache
def _resolved(model: str, preprocess: str | None):
    return create_representation(model, pretrained=False, preprocess=preprocess)


@pytest.fixture(scope="module", autouse=True)
def _free_models():
    yield
    _resolved.cache_clear()  # about 1.5 GB of random ResNet-50s and ViT-Bs


def _images():
    from PIL import Image

    rng = np.random.default_rng(0)
    # landscape, portrait, and one smaller than the crop (it is upsized)
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in
            ((240, 320), (300, 230), (150, 190))]


def _reference_transform(t: Transform):
    """torchvision's own Resize / CenterCrop / Normalize at the table's values (an independent implementation)."""
    from torchvision import transforms as T

    mode = {"bilinear": T.InterpolationMode.BILINEAR, "bicubic": T.InterpolationMode.BICUBIC}[t.interpolation]
    return T.Compose([T.Resize(t.resize, interpolation=mode), T.CenterCrop(t.crop), T.ToTensor(),
                      T.Normalize(t.mean, t.std)])


def _same_transform(preprocess, t: Transform) -> bool:
    reference = _reference_transform(t)
    return all(torch.allclose(preprocess(im), reference(im), atol=1e-5) for im in _images())


# ------------------------------------------------------------------------ the table, the study, the docs, the paper
def test_example_study_lists_exactly_the_table_rows():
    config = yaml.safe_load((ROOT / "examples" / "paper-imagenet.yaml").read_text())
    models = config["models"]
    assert [m["name"] for m in models] == [e.name for e in PAPER_MODELS]
    for m in models:
        e = paper_model(m["name"])
        assert m["model"] == e.model, e.name
        assert m.get("weights") == (f"checkpoints/{e.weights}" if e.weights else None), e.name
        assert m.get("preprocess") == e.preprocess, e.name
        assert m.get("external", {}).get("linear_top1") == e.linear_top1, e.name


def test_docs_table_is_the_generated_one():
    text = (ROOT / "docs" / "paper-models.md").read_text()
    assert paper_models_markdown() in text, "run `python scripts/update_paper_tables.py`"


@pytest.mark.skipif(not REFERENCE.is_file(), reason="the paper's transcription is not on this machine")
def test_linear_accuracies_are_table_2s():
    section = REFERENCE.read_text().split("## Table 2", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1:-1] for line in section.splitlines() if re.match(r"\| (R50|ViT-B/16) \|", line)]
    lin = [None if r[2].strip() == "—" else float(r[2]) for r in rows]
    models = [r[1].strip() for r in rows]
    assert lin == [e.linear_top1 for e in PAPER_MODELS]
    assert [m.split(" (")[0] for m in models] == [e.name.split(" (")[0] for e in PAPER_MODELS]
    assert [r[0].strip() for r in rows] == ["R50" if e.backbone == "ResNet-50" else e.backbone for e in PAPER_MODELS]


# ------------------------------------------------------------------------ resolution through the real code path
@pytest.mark.parametrize("entry", RESOLVABLE, ids=[e.name for e in RESOLVABLE])
def test_each_row_resolves_to_its_weights_and_transform(entry):
    rep = _resolved(entry.model, entry.preprocess)
    assert rep.info["preprocessing_source"] == "stated"
    assert _same_transform(rep.preprocess, entry.transform)
    desc = rep.preprocessing
    assert (desc["resize"], desc["crop"], desc["interpolation"]) == (entry.transform.resize, entry.transform.crop,
                                                                      entry.transform.interpolation)
    assert tuple(desc["mean"]) == entry.transform.mean
    assert tuple(desc["std"]) == entry.transform.std
    assert rep.dim == (2048 if entry.backbone == "ResNet-50" else 768)
    assert rep.layer == ("pool" if entry.backbone == "ResNet-50" else "cls")
    if entry.hub_tag:
        assert rep.info["hub_tag"] == entry.hub_tag
        assert rep.info["hub_url"].rsplit("/", 1)[-1] == entry.hub_file
    else:
        assert entry.weights
        assert entry.hub_file is None


@pytest.mark.slow
@pytest.mark.parametrize("entry", [e for e in PAPER_MODELS if e.hub_tag], ids=lambda e: e.name)
def test_hub_rows_would_download_the_tables_file(entry, monkeypatch):
    """pretrained=True, with timm's loader replaced by one that records what it was asked to load."""
    import timm.models._builder as builder

    asked = []
    monkeypatch.setattr(builder, "load_pretrained", lambda model, pretrained_cfg=None, **kw: asked.append(
        pretrained_cfg))
    rep = create_representation(entry.model, pretrained=True, preprocess=entry.preprocess)
    assert rep.info["weights"] == "pretrained (timm hub)"
    assert len(asked) == 1
    assert asked[0]["url"].rsplit("/", 1)[-1] == entry.hub_file
    assert f"{asked[0]['architecture']}.{asked[0]['tag']}" == entry.hub_tag


def test_supervised_resnet50_is_torchvisions_original_weights():
    from torchvision.models import ResNet50_Weights

    entry = paper_model("Supervised (R50)")
    v1 = ResNet50_Weights.IMAGENET1K_V1
    assert v1.url.rsplit("/", 1)[-1] == entry.hub_file
    assert v1.meta["_metrics"]["ImageNet-1K"]["acc@1"] == 76.13
    # what `torchvision:resnet50` resolves to is the 2021 retraining, with its resize-232 transform
    plain = _resolved("torchvision:resnet50", None)
    assert plain.info["hub_tag"] == "ResNet50_Weights.IMAGENET1K_V2"
    assert plain.preprocessing["resize"] == [232]
    # timm's own transform for the tag is already the table's
    assert _same_transform(_resolved(entry.model, None).preprocess, entry.transform)


def test_without_a_stated_transform_the_hub_configurations_differ():
    """Why every row states its transform: the families' own configurations are not the models' evaluation."""
    mocov3 = paper_model("MoCo-v3 (ViT-B/16)")
    plain = _resolved(mocov3.model, None)
    assert plain.preprocessing["mean"] == [0.5, 0.5, 0.5]  # the default tag's (ImageNet-21k) statistics
    assert plain.info["hub_tag"] == "vit_base_patch16_224.augreg2_in21k_ft_in1k"
    for name in ("DINO (ViT-B/16)", "Supervised (ViT-B/16)"):
        entry = paper_model(name)
        own = _resolved(entry.model, None)
        assert own.preprocessing["crop_pct"] == 0.9
        assert not _same_transform(own.preprocess, entry.transform)
    r50 = paper_model("MoCo-v2")
    assert not _same_transform(_resolved(r50.model, None).preprocess, r50.transform)


def test_a_checkpoint_without_a_stated_transform_is_flagged(tmp_path):
    model = tv.models.resnet18()
    torch.save(model.state_dict(), tmp_path / "r18.pth")
    rep = create_representation("torchvision:resnet18", weights=str(tmp_path / "r18.pth"))
    assert "not the checkpoint's" in rep.info["preprocessing_source"]


# ------------------------------------------------------------------------ checkpoint layouts of the releases
def _layouts(state: dict) -> dict[str, dict]:
    """The key layouts the table says load as released (with heads the model does not have)."""
    head = {"fc.0.weight": torch.zeros(4, 512), "fc.2.weight": torch.zeros(2, 4)}
    return {
        "moco-v1/v2, PCL": {"state_dict": {**{f"module.encoder_q.{k}": v for k, v in {**state, **head}.items()},
                                           **{f"module.encoder_k.{k}": v + 1 for k, v in state.items()}}},
        "moco-v3": {"state_dict": {**{f"module.base_encoder.{k}": v for k, v in {**state, **head}.items()},
                                   **{f"module.momentum_encoder.{k}": v + 1 for k, v in state.items()},
                                   "module.predictor.0.weight": torch.zeros(4, 4)}},
        "swav, deepcluster-v2": {**{f"module.{k}": v for k, v in state.items()},
                                 "module.projection_head.0.weight": torch.zeros(4, 512),
                                 "module.prototypes.weight": torch.zeros(3, 4)},
        "dino": {k: v for k, v in state.items() if not k.startswith("fc.")},
    }


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["moco-v1/v2, PCL", "moco-v3", "swav, deepcluster-v2", "dino"])
def test_release_layouts_load_every_weight(layout, tmp_path):
    """Prefix handling is independent of depth: a ResNet-18 stands in for the ResNet-50 to keep files small."""
    torch.manual_seed(0)
    source = tv.models.resnet18()
    with torch.no_grad():
        for p in source.parameters():
            p.normal_()
    path = tmp_path / "ckpt.pth"
    torch.save(_layouts(source.state_dict())[layout], path)
    rep = create_representation("torchvision:resnet18", weights=str(path), preprocess="imagenet", strict_weights=False)
    report = rep.info["checkpoint"]
    assert report["n_missing"] == 0, report["missing"]
    source.fc = torch.nn.Identity()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(rep.encode(x), source.eval()(x), atol=1e-4)


@pytest.mark.slow
def test_mocov3_vit_layout_loads_into_timms_vit(tmp_path):
    """MoCo-v3's ViT keys are timm's (a ViT-Tiny stands in for the ViT-B/16)."""
    timm = pytest.importorskip("timm")
    source = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0)
    head = {"head.0.weight": torch.zeros(4, 192)}
    state = {"state_dict": {**{f"module.base_encoder.{k}": v for k, v in {**source.state_dict(), **head}.items()},
                            **{f"module.momentum_encoder.{k}": v * 0 for k, v in source.state_dict().items()}}}
    path = tmp_path / "vit.pth.tar"
    torch.save(state, path)
    rep = create_representation("timm:vit_tiny_patch16_224", weights=str(path), preprocess="imagenet")
    assert rep.info["checkpoint"]["n_missing"] == 0
    assert rep.info["checkpoint"]["stripped_prefixes"] == [
        "module.", "base_encoder."]
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.allclose(rep.encode(x), source.eval()(x), atol=1e-4)


# ------------------------------------------------------------------------ stating a transform
def test_preprocess_specs_and_their_errors():
    assert parse_preprocess("imagenet") == ImagePreprocess(resize=256, crop=224, interpolation="bilinear")
    assert parse_preprocess({"preset": "imagenet-bicubic", "crop": 192}) == ImagePreprocess(
        resize=256, crop=192, interpolation="bicubic")
    assert parse_preprocess({"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}).mean == (0.5, 0.5, 0.5)
    for bad, message in (("imagenet21k", "unknown preset"), ({"size": 3}, "unknown key"),
                         ({"mean": [0.5, 0.5]}, "mean: expected three numbers"),
                         ({"std": [1, 0, 1]}, "std: expected three numbers > 0"),
                         ({"interpolation": "cubic"}, "interpolation: expected one of"),
                         ({"resize": 0}, "resize: expected a positive"), (7, "expected a preset name")):
        with pytest.raises(ParameterError, match=message) as err:
            parse_preprocess(bad)
        assert err.value.param == "preprocess"
    with pytest.raises(QRProbeInputError, match="not applicable"):
        create_representation("pixels-4", preprocess="imagenet")
    assert preprocess_check(None) is None
    assert preprocess_check({"crop": 192}) is None
    assert "(crop: expected a positive number of pixels" in preprocess_check({"crop": -1})


STUDY = """\
name: stated
images: {{source: {images}}}
output: {output}
device: cpu
models:
  - {{name: lite, model: efficientnet-lite0-random, preprocess: {preprocess}}}
experts:
  - {{name: labels}}
protocol: {{k: 2, clusterings: 1, iters: 5, restarts: 1, probe: {{epochs: 2}}}}
report: {{enabled: false}}
"""


@pytest.mark.slow
def test_study_states_the_transform_and_reports_a_bad_one_with_its_location(tmp_path):
    from PIL import Image

    from qrprobe.features.store import FeatureStore
    from qrprobe.study.load import load_study
    from qrprobe.study.runner import run_study

    for cls in ("a", "b"):
        (tmp_path / "images" / cls).mkdir(parents=True)
        for i in range(6):
            Image.new("RGB", (40, 30), (40 * i, 200 if cls == "a" else 20, 90)).save(
                tmp_path / "images" / cls / f"{i}.png")
    path = tmp_path / "study.yaml"
    path.write_text(STUDY.format(images=tmp_path / "images", output=tmp_path / "out",
                                 preprocess="{resize: 40, crop: 32, interpolation: bicubic}"))
    run_study(load_study(path), progress=False, echo=lambda _: None)
    store_dir = next((tmp_path / "out" / "features").iterdir())
    described = FeatureStore.open(store_dir).manifest["preprocessing"]
    assert (described["resize"], described["crop"], described["interpolation"]) == (40, 32, "bicubic")
    path.write_text(STUDY.format(images=tmp_path / "images", output=tmp_path / "out2", preprocess="{crop: -1}"))
    with pytest.raises(QRProbeInputError, match=r"study.yaml:6:\d+: models\[0\]\.preprocess: .*crop: expected"):
        load_study(path)
