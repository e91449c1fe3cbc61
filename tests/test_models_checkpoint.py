"""Loading local checkpoints: weights-only, nested dicts, wrapper prefixes, clear errors for wrong files."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from qrprobe.errors import QRProbeInputError
from qrprobe.models import create_representation, load_checkpoint

timm = pytest.importorskip("timm")


def _net(**kw) -> nn.Module:
    return timm.create_model("resnet18", pretrained=False, num_classes=0, **kw).eval()


def test_module_prefix_checkpoint_loads_values(tmp_path):
    source = _net()
    path = tmp_path / "ddp.pth"
    torch.save({"module." + k: v for k, v in source.state_dict().items()}, path)
    target = _net()
    report = load_checkpoint(target, path)
    assert report.stripped_prefixes == ["module."]
    assert report.missing == []
    assert report.unexpected == []
    for k, v in source.state_dict().items():
        torch.testing.assert_close(target.state_dict()[k], v)


def test_moco_style_nested_checkpoint(tmp_path):
    source = _net()
    state = {f"module.encoder_q.{k}": v for k, v in source.state_dict().items()}
    state.update({f"module.encoder_k.{k}": v for k, v in source.state_dict().items()})
    state["module.encoder_q.fc.0.weight"] = torch.zeros(8, 512)
    state["module.queue"] = torch.zeros(8, 16)
    path = tmp_path / "moco.pth.tar"
    torch.save({"epoch": 200, "arch": "resnet18", "state_dict": state, "optimizer": {"lr": 0.1}}, path)
    report = load_checkpoint(_net(), path)
    assert report.nested_key == "state_dict"
    assert report.stripped_prefixes == ["module.", "encoder_q."]
    assert report.unexpected == ["fc.0.weight"]
    assert report.missing == []


def test_extraction_model_with_module_prefixed_weights(tmp_path):
    source = timm.create_model("resnet18", pretrained=False)  # with its classifier
    path = tmp_path / "ckpt.pth"
    torch.save({"model": {"module." + k: v for k, v in source.state_dict().items()}}, path)
    rep = create_representation("timm:resnet18", weights=str(path))
    ck = rep.info["checkpoint"]
    assert ck["n_missing"] == 0
    assert sorted(ck["unexpected"]) == ["fc.bias", "fc.weight"]
    assert rep.info["weights"] == "checkpoint"
    assert len(ck["sha256"]) == 16
    torch.testing.assert_close(rep.model.conv1.weight, source.conv1.weight)


def test_wrong_architecture_names_the_mismatched_keys(tmp_path):
    path = tmp_path / "r34.pth"
    torch.save(timm.create_model("resnet50", pretrained=False).state_dict(), path)
    with pytest.raises(QRProbeInputError, match=r"shape mismatch.*layer1\.0\.conv1\.weight") as info:
        create_representation("timm:resnet18", weights=str(path))
    assert "checkpoint (64, 64, 1, 1), model (64, 64, 3, 3)" in str(info.value)


def test_unrelated_checkpoint_is_rejected(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"encoder.blocks.0.attn.qkv.weight": torch.zeros(3, 3)}, path)
    with pytest.raises(QRProbeInputError, match=r"no parameter name in common.*blocks\.0\.attn\.qkv\.weight"):
        load_checkpoint(_net(), path)


def test_missing_keys_warn_or_fail_when_strict(tmp_path):
    state = {k: v for k, v in _net().state_dict().items() if not k.startswith("layer4")}
    path = tmp_path / "partial.pth"
    torch.save(state, path)
    with pytest.warns(UserWarning, match="layer4"):
        report = load_checkpoint(_net(), path)
    assert any(k.startswith("layer4") for k in report.missing)
    with pytest.raises(QRProbeInputError, match="missing keys"):
        load_checkpoint(_net(), path, strict=True)


class _Custom:
    pass


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": _net().state_dict(), "extra": _Custom()}, path)
    with pytest.raises(QRProbeInputError, match="weights-only"):
        load_checkpoint(_net(), path)
    with pytest.raises(QRProbeInputError, match="not found"):
        load_checkpoint(_net(), tmp_path / "nope.pth")


def test_safetensors_checkpoint(tmp_path):
    st = pytest.importorskip("safetensors.torch")
    source = _net()
    path = tmp_path / "w.safetensors"
    st.save_file({"backbone." + k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    report = load_checkpoint(_net(), path)
    assert report.stripped_prefixes == ["backbone."]
    assert report.n_loaded == len(source.state_dict())
