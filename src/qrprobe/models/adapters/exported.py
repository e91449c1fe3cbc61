"""Exported graphs: a TorchScript file (``torchscript:PATH`` or a ``.pt``/``.ts`` path) and an ONNX file
(``onnx:PATH`` or a ``.onnx`` path).

The graph's output is the feature: (B, D) as is, (B, C, H, W) average-pooled, (B, T, C) its first token.
For ONNX, ``--layer NAME`` picks another named output of the graph. Preprocessing is the ImageNet
transform at 224 pixels (at the ONNX input's fixed size when it has one) unless overridden.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from ..._network import disable_onnxruntime_telemetry
from ...errors import QRProbeInputError, require
from ..base import Representation, probe_dim
from ..checkpoint import file_sha256
from ..layers import PooledOutput, parse_layer, pool_features
from ..preprocess import ImagePreprocess


def build_torchscript(path: str, *, layer: str | None = None, pretrained: bool = True,
                      weights: str | None = None, strict_weights: bool = False) -> Representation:
    if layer:
        raise QRProbeInputError(f"--layer: not supported for TorchScript files ({path!r}); "
                                "export the graph so that its output is the layer you want")
    if weights:
        raise QRProbeInputError("--weights: a TorchScript file carries its own weights")
    if not os.path.isfile(path):
        raise QRProbeInputError(f"MODEL: TorchScript file {path!r} not found")
    try:
        module = torch.jit.load(path, map_location="cpu")
    except (RuntimeError, ValueError) as exc:
        raise QRProbeInputError(
            f"MODEL {path!r} is not a TorchScript archive ({str(exc).splitlines()[0] if str(exc) else exc}); "
            "a state dict needs its architecture: use e.g. `timm:NAME --weights PATH`") from None
    module.eval()
    encoder = PooledOutput(module)
    preprocess = ImagePreprocess()
    info = {"adapter": "torchscript", "path": os.path.abspath(path), "sha256": file_sha256(path)}
    return Representation(f"torchscript:{path}", encoder, preprocess, "output", probe_dim(encoder, preprocess),
                          model=module, info=info)


class OnnxEncoder:
    """Run an ONNX graph on a batch: (B, 3, H, W) tensor -> pooled (B, D) tensor (CPU, or CUDA when asked)."""

    def __init__(self, path: str, output: str | None = None, pooling: str = "auto") -> None:
        self.path = path
        self.output = output
        self.pooling = pooling
        self._session = None
        self._providers = ["CPUExecutionProvider"]

    def to(self, device) -> OnnxEncoder:
        if torch.device(device).type == "cuda":
            self._providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
            self._session = None
        return self

    @property
    def session(self):
        if self._session is None:
            ort = require("onnxruntime", "onnx", "ONNX models")
            disable_onnxruntime_telemetry(ort)
            self._session = ort.InferenceSession(self.path, providers=self._providers)
        return self._session

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        sess = self.session
        feed = {sess.get_inputs()[0].name: np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)}
        outputs = [self.output] if self.output else [sess.get_outputs()[0].name]
        result = sess.run(outputs, feed)[0]
        return pool_features(torch.from_numpy(np.asarray(result, dtype=np.float32)), self.pooling)


def build_onnx(path: str, *, layer: str | None = None, pretrained: bool = True, weights: str | None = None,
               strict_weights: bool = False) -> Representation:
    if weights:
        raise QRProbeInputError("--weights: an ONNX file carries its own weights")
    if not os.path.isfile(path):
        raise QRProbeInputError(f"MODEL: ONNX file {path!r} not found")
    output, pooling = parse_layer(layer) if layer else (None, "auto")
    encoder = OnnxEncoder(os.path.abspath(path), output, pooling)
    try:
        sess = encoder.session
    except Exception as exc:
        if type(exc).__name__ == "MissingExtraError":
            raise
        raise QRProbeInputError(f"MODEL {path!r}: onnxruntime cannot load it ({exc})") from None
    names = [o.name for o in sess.get_outputs()]
    if output and output not in names:
        raise QRProbeInputError(f"--layer {output!r}: the ONNX graph has outputs {names}")
    shape = sess.get_inputs()[0].shape
    size = shape[-1] if len(shape) == 4 and isinstance(shape[-1], int) else 224
    preprocess = ImagePreprocess(resize=round(size / 0.875), crop=size)
    info = {"adapter": "onnx", "path": os.path.abspath(path), "sha256": file_sha256(path)}
    return Representation(f"onnx:{path}", encoder, preprocess, layer or "output", probe_dim(encoder, preprocess),
                          info=info)
