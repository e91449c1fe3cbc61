"""The T4SA image-sentiment VGG-19 (Vadicamo et al., ICCV-W 2017) in its published PyTorch layout.

The published file (``vgg19_finetuned_all.pth`` of fabiocarrara/visual-sentiment-analysis, an MMdnn conversion
of the Caffe model) is a NumPy pickle of ``{layer: {"weights": array, "bias": array}}`` with the Caffe layer
names ``conv1_1`` ... ``conv5_4``, ``fc6_1``, ``fc7_1``, ``fc8-retrain_1`` and the arrays already in PyTorch
layout (conv ``(out, in, 3, 3)``, linear ``(out, in)``). :func:`load_t4sa_weights` reads it with the restricted
unpickler (no code runs), checks every layer's name and shape and fills :class:`T4saVgg19`.

Input: 224 x 224 (resized without keeping the aspect ratio), BGR, 0-255, minus the per-channel mean of the
training set ``(116.8007, 121.2751, 130.4602)`` (BGR), as the publisher's ``predict.py``. Output: logits of
negative, neutral, positive (the publisher applies a softmax). The converted graph pads each max-pool input by one
pixel of -inf on the right and bottom; for the even sizes of a 224 input that changes nothing, so plain 2 x 2
pools are used.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..errors import QRProbeInputError
from ._torch import torch_module
from .safe_pickle import load_numpy_pickle, text_keys

#: (caffe layer name, module attribute, shape of its weight) of the published file, in forward order.
CONV_LAYERS = tuple((f"conv{b}_{i}", c_in if i == 1 else c_out, c_out)
                    for b, n, c_in, c_out in ((1, 2, 3, 64), (2, 2, 64, 128), (3, 4, 128, 256), (4, 4, 256, 512),
                                              (5, 4, 512, 512)) for i in range(1, n + 1))
FC_LAYERS = (("fc6_1", "fc6_1", 25088, 4096), ("fc7_1", "fc7_1", 4096, 4096),
             ("fc8-retrain_1", "fc8_retrain_1", 4096, 3))
MEAN_BGR = (116.8007, 121.2751, 130.4602)


def published_shapes() -> dict[str, dict[str, tuple[int, ...]]]:
    """The published file's layout: ``{caffe layer: {"weights": shape, "bias": shape}}``."""
    out: dict[str, dict[str, tuple[int, ...]]] = {}
    for name, c_in, c_out in CONV_LAYERS:
        out[name] = {"weights": (c_out, c_in, 3, 3), "bias": (c_out,)}
    for name, _, f_in, f_out in FC_LAYERS:
        out[name] = {"weights": (f_out, f_in), "bias": (f_out,)}
    return out


def T4saVgg19():
    """A randomly initialised T4SA VGG-19 (attributes named after the published layers)."""
    torch = torch_module()
    nn: Any = torch.nn

    class _T4saVgg19(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            for name, c_in, c_out in CONV_LAYERS:
                setattr(self, name, nn.Conv2d(c_in, c_out, 3, padding=1))
            for _, attr, f_in, f_out in FC_LAYERS:
                setattr(self, attr, nn.Linear(f_in, f_out))
            self.pool = nn.MaxPool2d(2, 2)

        def forward(self, x):
            block = 1
            for name, _, _ in CONV_LAYERS:
                b = int(name[4])
                if b != block:
                    x, block = self.pool(x), b
                x = torch.relu(getattr(self, name)(x))
            x = torch.flatten(self.pool(x), 1)
            x = torch.relu(self.fc6_1(x))
            x = torch.relu(self.fc7_1(x))
            return self.fc8_retrain_1(x)

    return _T4saVgg19()


def load_t4sa_weights(model, path: str | os.PathLike, expert: str = "sentiment") -> dict:
    """Fill ``model`` from the published NumPy-pickle file; every layer must be present with its shape.

    Returns a load report (path, layers loaded) for the bank's manifest.
    """
    torch = torch_module()
    weights = text_keys(load_numpy_pickle(path))
    if not isinstance(weights, dict):
        raise QRProbeInputError(f"expert {expert!r}: {str(path)!r} holds a {type(weights).__name__}, expected the "
                                "T4SA dict of layers (conv1_1 ... fc8-retrain_1)")
    expected = published_shapes()
    missing = [k for k in expected if k not in weights]
    unexpected = [k for k in weights if k not in expected]
    if missing or unexpected:
        raise QRProbeInputError(f"expert {expert!r}: {str(path)!r} is not the T4SA VGG-19 layout: missing layers "
                                f"{missing[:5]}, unexpected {unexpected[:5]}")
    attrs = {name: name for name, _, _ in CONV_LAYERS} | {name: attr for name, attr, _, _ in FC_LAYERS}
    state = {}
    for name, parts in expected.items():
        for part, shape in parts.items():
            array = np.asarray(weights[name].get(part) if isinstance(weights[name], dict) else None)
            if array.shape != shape:
                raise QRProbeInputError(f"expert {expert!r}: {str(path)!r} layer {name} {part} has shape "
                                        f"{array.shape}, expected {shape}")
            state[f"{attrs[name]}.{'weight' if part == 'weights' else 'bias'}"] = torch.from_numpy(
                np.ascontiguousarray(array, dtype=np.float32))
    model.load_state_dict(state, strict=True)
    return {"path": str(path), "format": "numpy pickle (MMdnn)", "n_loaded": len(state), "missing": [],
            "unexpected": []}


def t4sa_preprocess(image) -> object:
    """A PIL RGB image -> the (3, 224, 224) BGR mean-subtracted tensor of the publisher's ``predict.py``."""
    torch = torch_module()
    from PIL import Image

    x = np.asarray(image.convert("RGB").resize((224, 224), Image.Resampling.BILINEAR), dtype=np.float32)
    x = x[:, :, ::-1] - np.asarray(MEAN_BGR, dtype=np.float32)
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))
