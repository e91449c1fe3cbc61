"""``python:MODULE:FACTORY``: any ``nn.Module`` a user's function builds.

MODULE is an importable module (``mypkg.models``) or a ``.py`` file; FACTORY is called without arguments
and returns the module, or ``(module, preprocess)`` where preprocess maps a PIL image to a tensor. The model's
output is the feature ((B, C, H, W) average-pooled, (B, T, C) first token); ``--layer`` taps a sub-module.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys

from torch import nn

from ...errors import QRProbeInputError
from ..base import Representation, freeze, probe_dim
from ..layers import PooledOutput
from ..preprocess import ImagePreprocess
from .common import maybe_load_weights, tap_or_default


def _import(module_name: str):
    if module_name.endswith(".py"):
        if not os.path.isfile(module_name):
            raise QRProbeInputError(f"MODEL python:{module_name}: file not found")
        mod_id = "qrprobe_user_" + os.path.splitext(os.path.basename(module_name))[0]
        spec = importlib.util.spec_from_file_location(mod_id, module_name)
        if spec is None or spec.loader is None:
            raise QRProbeInputError(f"MODEL python:{module_name}: not an importable Python file")
        module = importlib.util.module_from_spec(spec)
        sys.modules[mod_id] = module
        spec.loader.exec_module(module)
        return module
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise QRProbeInputError(f"MODEL python:{module_name}: cannot import the module ({exc})") from exc


def build(name: str, *, layer: str | None = None, pretrained: bool = True, weights: str | None = None,
          strict_weights: bool = False) -> Representation:
    module_name, sep, factory_name = name.rpartition(":")
    if not sep or not module_name or not factory_name:
        raise QRProbeInputError(f"MODEL python:{name}: expected python:MODULE:FACTORY (e.g. python:mypkg.nets:build)")
    factory = getattr(_import(module_name), factory_name, None)
    if not callable(factory):
        raise QRProbeInputError(f"MODEL python:{name}: {module_name} has no callable {factory_name!r}")
    made = factory()
    model, preprocess = (made if isinstance(made, tuple) else (made, None))[:2]
    if not isinstance(model, nn.Module):
        raise QRProbeInputError(f"MODEL python:{name}: the factory returned {type(model).__name__}, "
                                "expected a torch.nn.Module (or (module, preprocess))")
    freeze(model)
    info = {"adapter": "python", "factory": name, "weights": "as built by the factory"}
    maybe_load_weights(info, model, weights, strict_weights)
    preprocess = preprocess or ImagePreprocess()
    encoder, layer_name = tap_or_default(model, layer, model, PooledOutput(model), "output")
    return Representation(f"python:{name}", encoder, preprocess, layer_name, probe_dim(encoder, preprocess),
                          model=model, info=info)
