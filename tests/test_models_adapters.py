"""Model adapters: timm, torchvision, open_clip, HuggingFace, TorchScript, ONNX and python:module:factory
give the paper's features with the right shapes (random weights; nothing is downloaded)."""

from __future__ import annotations

import sys
import textwrap

import pytest
import torch

from qrprobe.errors import QRProbeInputError
from qrprobe.models import create_representation, parse_model_spec
from qrprobe.synthetic import random_image


def _encode(rep, n: int = 1):
    x = torch.stack([rep.preprocess(random_image(i, (48, 40))) for i in range(n)])
    return rep.encode(x)


@pytest.mark.slow
@pytest.mark.parametrize(("spec", "dim", "layer"), [
    ("timm:resnet50", 2048, "pool"),
    ("timm:vit_base_patch16_224", 768, "cls"),
    ("torchvision:resnet50", 2048, "pool"),
    ("torchvision:vit_b_16", 768, "cls"),
    ("open_clip:RN50", 2048, "pool"),
    ("open_clip:ViT-B-16", 768, "cls"),
])
def test_paper_backbones_shapes(spec, dim, layer):
    pytest.importorskip(spec.split(":")[0])
    rep = create_representation(spec, pretrained=False)
    assert (rep.dim, rep.layer) == (dim, layer)
    out = _encode(rep, 2)
    assert out.shape == (2, dim)
    assert torch.isfinite(out).all()


def test_timm_small_model_layers_and_preprocess():
    pytest.importorskip("timm")
    rep = create_representation("timm:resnet18", pretrained=False)
    assert rep.dim == 512
    assert rep.preprocessing["kind"] == "timm"
    assert rep.preprocessing["input_size"] == [3, 224, 224]
    tap = create_representation("timm:resnet18", pretrained=False, layer="layer3")
    assert tap.dim == 256
    assert _encode(tap).shape == (1, 256)
    with pytest.raises(QRProbeInputError, match="close names"):
        create_representation("timm:resnet18", pretrained=False, layer="layer33")
    with pytest.raises(QRProbeInputError, match="unknown timm model"):
        create_representation("timm:resnet_does_not_exist", pretrained=False)


def test_open_clip_embedding_layer():
    pytest.importorskip("open_clip")
    rep = create_representation("open_clip:RN50", pretrained=False, layer="embed")
    assert rep.dim == 1024
    assert rep.layer == "embed"


def test_torchvision_small_model():
    pytest.importorskip("torchvision")
    rep = create_representation("torchvision:mobilenet_v3_small", pretrained=False)
    assert rep.dim == 1024
    assert rep.info["classifier_removed"] == "classifier.3"
    with pytest.raises(QRProbeInputError, match="unknown torchvision model"):
        create_representation("torchvision:resnet5000", pretrained=False)


def test_hf_local_folder_vit_and_resnet(tmp_path):
    tr = pytest.importorskip("transformers")
    vit = tr.ViTModel(tr.ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                   intermediate_size=64, image_size=32, patch_size=8))
    vit.save_pretrained(tmp_path / "vit")
    rep = create_representation(f"hf:{tmp_path / 'vit'}", pretrained=True)  # local folder: no download
    assert (rep.dim, rep.layer) == (32, "cls")
    assert _encode(rep, 2).shape == (2, 32)
    x = rep.preprocess(random_image(1))[None]
    with torch.inference_mode():
        expected = rep.model(pixel_values=x).last_hidden_state[:, 0]
    torch.testing.assert_close(rep.encode(x), expected)
    resnet = tr.ResNetModel(tr.ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1]))
    resnet.save_pretrained(tmp_path / "resnet")
    rep = create_representation(f"hf:{tmp_path / 'resnet'}", pretrained=False)
    assert (rep.dim, rep.layer) == (16, "pool")


class _Tiny(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 6, 3, stride=4)
        self.head = torch.nn.Linear(6, 4)

    def forward(self, x):
        return self.head(self.conv(x).mean(dim=(2, 3)))


def test_torchscript_file(tmp_path):
    path = tmp_path / "tiny.pt"
    torch.jit.script(_Tiny().eval()).save(str(path))
    family, _ = parse_model_spec(str(path))
    assert family == "torchscript"
    rep = create_representation(str(path))
    assert rep.dim == 4
    assert _encode(rep, 2).shape == (2, 4)
    torch.save(_Tiny().state_dict(), tmp_path / "state.pt")
    with pytest.raises(QRProbeInputError, match="not a TorchScript archive"):
        create_representation(str(tmp_path / "state.pt"))


def test_onnx_file(tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    path = tmp_path / "tiny.onnx"
    model = _Tiny().eval()
    x = torch.randn(1, 3, 64, 64)
    torch.onnx.export(model, (x,), str(path), dynamo=False, input_names=["images"], output_names=["out"],
                      dynamic_axes={"images": {0: "batch"}})
    rep = create_representation(f"onnx:{path}")
    assert rep.dim == 4
    assert rep.preprocessing["crop"] == 64
    batch = torch.stack([rep.preprocess(random_image(i)) for i in range(3)])
    with torch.inference_mode():
        expected = model(batch)
    torch.testing.assert_close(rep.encode(batch), expected, rtol=1e-4, atol=1e-5)
    with pytest.raises(QRProbeInputError, match="outputs"):
        create_representation(f"onnx:{path}", layer="nope")


def test_python_factory(tmp_path, monkeypatch):
    (tmp_path / "user_nets.py").write_text(textwrap.dedent("""
        import torch

        def build():
            return torch.nn.Sequential(torch.nn.Conv2d(3, 5, 3), torch.nn.ReLU(), torch.nn.Conv2d(5, 7, 3))

        def not_a_module():
            return 3
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    rep = create_representation("python:user_nets:build")
    assert rep.dim == 7  # (B, 7, H, W) average-pooled
    assert rep.layer == "output"
    assert create_representation("python:user_nets:build", layer="0").dim == 5
    rep_file = create_representation(f"python:{tmp_path / 'user_nets.py'}:build")
    assert rep_file.dim == 7
    with pytest.raises(QRProbeInputError, match=r"expected a torch\.nn\.Module"):
        create_representation("python:user_nets:not_a_module")
    with pytest.raises(QRProbeInputError, match="no callable"):
        create_representation("python:user_nets:missing")
    sys.modules.pop("user_nets", None)


def test_unknown_specs_are_input_errors():
    with pytest.raises(QRProbeInputError, match="unknown model"):
        parse_model_spec("resnet50")
    with pytest.raises(QRProbeInputError, match="missing the model name"):
        create_representation("timm:")
    with pytest.raises(QRProbeInputError, match="has no weights"):
        create_representation("pixels", weights="x.pth")
