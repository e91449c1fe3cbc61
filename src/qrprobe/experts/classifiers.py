"""Image classifiers as experts: Places-365, SUN attributes, MINC, DTD, sentiment, or any user classifier.

The architectures are built in (torchvision, or timm with ``arch="timm:NAME"``, or a published layout); the
weights come from the user (``--weights EXPERT=PATH``) or, where the authors publish them, from a download cached
on disk and verified against :mod:`qrprobe.experts.published` before use:

==============  =====================================  ==========  =======================================
expert          architecture                           classes     weights
==============  =====================================  ==========  =======================================
places365       ResNet-50 (torchvision layout)         365 scenes  CSAIL ``resnet50_places365.pth.tar``
sun-attributes  CSAIL WideResNet-18 + attribute map    102         CSAIL ``wideresnet18_places365.pth.tar``
                                                                   + ``W_sceneattribute_wideresnet18.npy``
minc            Deep TEN ResNet-50 (:mod:`.deepten`)   23          PyTorch-Encoding ``deepten_resnet50_minc``
dtd             ResNet-50                              47          user (no public weights)
sentiment       T4SA VGG-19 (:mod:`.t4sa`)             3           fabiocarrara ``vgg19_finetuned_all.pth``
classifier      any (``arch``)                         ``classes`` user
==============  =====================================  ==========  =======================================

(decided) The paper's MINC and DTD experts are Deep Encoding Pooling networks trained by the authors and never
released; ``minc`` uses the published Deep TEN ResNet-50 trained on MINC-2500 instead (a substitute), and
``dtd`` is a plain ResNet-50 classifier (any torchvision/timm architecture via ``arch``, also for ``minc``) for
checkpoints users train themselves. Rules: single-label experts keep the top-1 class (one-hot); SUN
attributes keep the ``top_k`` best-scoring attributes (10, as the official unified demo reports them) or, with
``threshold``, every attribute scoring at least the threshold.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..device import resolve_device
from ..errors import QRProbeInputError, require
from ..models.preprocess import ImagePreprocess
from ._torch import load_weights_into, preprocess_batch, run_batched, torch_module
from .base import ClassListExpert, ExpertOutput
from .categories import places365_display_name, read_class_list
from .published import PublishedExpert, published
from .rules import softmax, threshold_multilabel, top1_onehot, topk_multilabel
from .weights import file_identity, resolve_weights

PLACES_URL = "http://places2.csail.mit.edu/models_places365/"
RULES = ("top1", "threshold", "topk")
ACTIVATIONS = ("softmax", "sigmoid", "none")


@dataclass(frozen=True)
class ClassifierPreset:
    """What a named classifier expert is built from."""

    arch: str
    classes: str
    group: str
    url: str | None
    squash: bool = False  # resize to 224x224 without keeping the aspect ratio (the Places365 demo's transform)
    published: str | None = None  # the entry of qrprobe.experts.published holding its verified files


PRESETS = {
    "places365": ClassifierPreset("resnet50", "places365", "Scene", PLACES_URL + "resnet50_places365.pth.tar",
                                  squash=True, published="places365"),
    "minc": ClassifierPreset("deepten-resnet50", "minc", "Material", None, published="minc"),
    "dtd": ClassifierPreset("resnet50", "dtd", "Texture", None),
    "sentiment": ClassifierPreset("t4sa-vgg19", "sentiment", "Other", None, squash=True, published="sentiment"),
}


def build_architecture(arch: str, num_classes: int):
    """A randomly initialised classifier with ``num_classes`` outputs.

    ``arch`` is a torchvision classification model name (``resnet50``, ``vgg19``...), ``timm:NAME``, or
    ``wideresnet18-places`` (CSAIL's ResNet-18 variant without the stem max-pool used by the Places365
    unified model; same parameter names as torchvision's ResNet-18), or ``t4sa-vgg19`` (the published T4SA
    sentiment network, 3 classes), or ``deepten-resnet50`` (PyTorch-Encoding's Deep TEN, :mod:`.deepten`).
    """
    torch = torch_module()
    if arch == "deepten-resnet50":
        from .deepten import build_deepten

        return build_deepten(num_classes)
    if arch == "t4sa-vgg19":
        from .t4sa import T4saVgg19

        if num_classes != 3:
            raise QRProbeInputError(f"the t4sa-vgg19 architecture has 3 classes, not {num_classes}")
        return T4saVgg19()
    if arch.startswith("timm:"):
        timm = require("timm", "vision", f"the classifier architecture {arch}")
        name = arch.split(":", 1)[1]
        if not timm.is_model(name):
            raise QRProbeInputError(f"unknown timm architecture {name!r}")
        return timm.create_model(name, pretrained=False, num_classes=num_classes)
    tv = require("torchvision", "vision", f"the classifier architecture {arch}")
    if arch == "wideresnet18-places":
        model = tv.models.resnet18(weights=None, num_classes=num_classes)
        model.maxpool = torch.nn.Identity()
        return model
    try:
        return tv.models.get_model(arch, weights=None, num_classes=num_classes)
    except ValueError:
        raise QRProbeInputError(f"unknown classifier architecture {arch!r} (a torchvision model name such as "
                                "resnet50, 'timm:NAME' or 'wideresnet18-places')") from None


class TorchClassifierExpert(ClassListExpert):
    """A torch image classifier whose predictions become concepts.

    Parameters
    ----------
    weights : local checkpoint (state dict, ``module.`` prefixes stripped); None = the preset's download
    arch : architecture (see :func:`build_architecture`); default from the preset
    classes : class list, a shipped list name or a text file (one name per line, in output order)
    rule : ``"top1"`` (one-hot, single-label), ``"threshold"`` (multi-label) or ``"topk"``
    threshold : probability threshold of the ``threshold`` rule
    top_k : classes kept by the ``topk`` rule
    activation : turns logits into scores: ``"softmax"`` (single-label models), ``"sigmoid"`` (multi-label
        models) or ``"none"``
    download : allow downloading published weights
    device : ``"cpu"``, ``"cuda"`` or ``"auto"``
    batch_size : images per forward pass
    """

    registry_name = "classifier"
    default_group = "Other"
    preset: ClassifierPreset | None = None

    def __init__(self, *, weights: str | None = None, arch: str | None = None, classes: str | None = None,
                 rule: str = "top1", threshold: float = 0.5, top_k: int = 5, activation: str = "softmax",
                 download: bool = True, device: str = "cpu", batch_size: int = 32, name: str | None = None,
                 group: str | None = None) -> None:
        preset = self.preset
        super().__init__(name=name, group=group or (preset.group if preset else None))
        if rule not in RULES:
            raise QRProbeInputError(f"{self.name}.rule must be one of {RULES}, got {rule!r}")
        if activation not in ACTIVATIONS:
            raise QRProbeInputError(f"{self.name}.activation must be one of {ACTIVATIONS}, got {activation!r}")
        chosen_arch = arch or (preset.arch if preset else None)
        classes = classes or (preset.classes if preset else None)
        if chosen_arch is None or classes is None:
            raise QRProbeInputError(f"expert {self.name!r}: give its architecture and class list "
                                    f"(--set {self.name}.arch=resnet50 --set {self.name}.classes=FILE)")
        self.arch: str = chosen_arch
        self.classes_spec = classes
        _, raw = read_class_list(classes)
        self.raw_classes = raw
        self._names = ([places365_display_name(c) for c in raw] if classes == "places365" else list(raw))
        self.weights = None if weights is None else os.fspath(weights)
        self.rule_name, self.threshold, self.top_k = rule, float(threshold), int(top_k)
        self.activation = activation
        self.download = bool(download)
        self.device = device
        self.batch_size = int(batch_size)
        self.rule = {"top1": "top-1 (one-hot)", "threshold": f"{activation} score >= {self.threshold:g}",
                     "topk": f"top-{self.top_k}"}[rule]
        self._model: Any = None  # loaded on first use
        self._preprocess: Any = None
        self.load_report: dict | None = None

    def _weights_url(self) -> str | None:
        return self.preset.url if self.preset else None

    def _published(self) -> PublishedExpert | None:
        """The verified published files of the preset (only with the preset's architecture)."""
        if self.preset is None or self.preset.published is None or self.arch != self.preset.arch:
            return None
        return published(self.preset.published)

    def _load(self, model, path) -> dict:
        if self.arch == "t4sa-vgg19":
            from .t4sa import load_t4sa_weights

            return load_t4sa_weights(model, path, self.name)
        return load_weights_into(model, path, self.name, f"{self.arch}, {len(self._names)} classes")

    def _make_preprocess(self):
        if self.arch == "t4sa-vgg19":
            from .t4sa import t4sa_preprocess

            return t4sa_preprocess
        squash = bool(self.preset and self.preset.squash)
        return (ImagePreprocess(resize=224, crop=0, resize_mode="squash") if squash
                else ImagePreprocess(resize=256, crop=224))

    def _build(self):
        return build_architecture(self.arch, len(self._names))

    def prepare(self, image_ids=None, labels=None) -> None:
        if self._model is None:
            entry = self._published()
            path = resolve_weights(self.name, self.weights, url=None if entry else self._weights_url(),
                                   download=self.download, what=f"{self.arch} weights", entry=entry)
            model = self._build()
            self.load_report = self._load(model, path)
            self.weights_file = path
            self.device = str(resolve_device(self.device))
            self._model = model.eval().to(self.device)
            self._preprocess = self._make_preprocess()
        self._prepared = True

    def _scores(self, images) -> np.ndarray:
        x = preprocess_batch(images, self._preprocess)
        logits = run_batched(self._model, x, self.batch_size, self.device).numpy()
        if logits.ndim != 2 or logits.shape[1] != len(self._names):
            raise QRProbeInputError(f"expert {self.name!r}: the model gives {logits.shape[1:]} outputs for "
                                    f"{len(self._names)} classes")
        if self.activation == "softmax":
            return softmax(logits)
        if self.activation == "sigmoid":
            return (1.0 / (1.0 + np.exp(-logits.astype(np.float64)))).astype(np.float32)
        return logits.astype(np.float32)

    def _apply_rule(self, scores: np.ndarray) -> np.ndarray:
        if self.rule_name == "top1":
            return top1_onehot(scores)
        if self.rule_name == "topk":
            return topk_multilabel(scores, self.top_k)
        return threshold_multilabel(scores, self.threshold)

    def _predict(self, images, image_ids) -> ExpertOutput:
        scores = self._scores(images)
        return ExpertOutput(self._apply_rule(scores), scores)

    def config(self) -> dict:
        return {**super().config(), "arch": self.arch, "classes": self.classes_spec, "rule": self.rule_name,
                "threshold": self.threshold, "top_k": self.top_k, "activation": self.activation,
                "weights": file_identity(getattr(self, "weights_file", None) or self.weights)
                if (getattr(self, "weights_file", None) or self.weights) else None}


class Places365Expert(TorchClassifierExpert):
    """Places-365 scene categories (ResNet-50, top-1)."""

    registry_name = "places365"
    preset = PRESETS["places365"]


class MincExpert(TorchClassifierExpert):
    """MINC-2500 material categories (the published Deep TEN ResNet-50 by default, top-1)."""

    registry_name = "minc"
    preset = PRESETS["minc"]


class DtdExpert(TorchClassifierExpert):
    """Describable-texture categories (ResNet-50 by default, top-1)."""

    registry_name = "dtd"
    preset = PRESETS["dtd"]


class SentimentExpert(TorchClassifierExpert):
    """Image sentiment, negative / neutral / positive (the published T4SA VGG-19 by default, top-1)."""

    registry_name = "sentiment"
    preset = PRESETS["sentiment"]


class SunAttributesExpert(TorchClassifierExpert):
    """SUN scene attributes from the Places365 unified model: WideResNet-18 features x attribute weights.

    Parameters
    ----------
    weights : the WideResNet-18 Places365 checkpoint (``wideresnet18_places365.pth.tar``)
    attributes : the attribute weights, a ``.npy`` array (102, 512) (``W_sceneattribute_wideresnet18.npy``)
    rule : ``"topk"`` (default, ``top_k`` = 10) or ``"threshold"`` on the raw attribute score
    """

    registry_name = "sun-attributes"
    default_group = "Scene"

    def __init__(self, *, weights: str | None = None, attributes: str | None = None, rule: str = "topk",
                 threshold: float = 0.0, top_k: int = 10, download: bool = True, device: str = "cpu",
                 batch_size: int = 32, name: str | None = None, group: str | None = None) -> None:
        if rule not in ("topk", "threshold"):
            raise QRProbeInputError(f"sun-attributes.rule must be 'topk' or 'threshold', got {rule!r}")
        super().__init__(weights=weights, arch="wideresnet18-places", classes="sun-attributes", rule=rule,
                         threshold=threshold, top_k=top_k, activation="none", download=download, device=device,
                         batch_size=batch_size, name=name, group=group or "Scene")
        self.attributes = None if attributes is None else os.fspath(attributes)
        self.rule = (f"top-{self.top_k} attribute scores" if rule == "topk"
                     else f"attribute score >= {self.threshold:g}")
        self._w: Any = None  # loaded on first use

    def _weights_url(self) -> str | None:
        return PLACES_URL + "wideresnet18_places365.pth.tar"

    def _published(self) -> PublishedExpert | None:
        return published("sun-attributes")

    def _build(self):
        return build_architecture("wideresnet18-places", 365)

    def prepare(self, image_ids=None, labels=None) -> None:
        if self._model is None:
            path = resolve_weights(self.name, self.attributes, download=self.download,
                                   what="attribute weights (102 x 512 .npy)", option="attributes",
                                   entry=published("sun-attributes"))
            try:
                w = np.load(path, allow_pickle=False)
            except (ValueError, OSError) as exc:
                raise QRProbeInputError(f"expert {self.name!r}: cannot read attribute weights {str(path)!r} as a "
                                        f".npy array ({exc})") from None
            if w.shape != (len(self._names), 512):
                raise QRProbeInputError(f"expert {self.name!r}: attribute weights {str(path)!r} have shape "
                                        f"{w.shape}, expected ({len(self._names)}, 512)")
            self._w = w.astype(np.float32)
            self.attributes_file = path
            super().prepare(image_ids, labels)
            torch = torch_module()
            model: Any = self._model  # built by super().prepare
            model.fc = torch.nn.Identity()  # the 512-d pooled features feed the attribute map
            self._preprocess = ImagePreprocess(resize=224, crop=0, resize_mode="squash")
        self._prepared = True

    def _scores(self, images) -> np.ndarray:
        x = preprocess_batch(images, self._preprocess)
        feats = run_batched(self._model, x, self.batch_size, self.device).numpy()
        return (feats @ self._w.T).astype(np.float32)

    def config(self) -> dict:
        path = getattr(self, "attributes_file", None) or self.attributes
        return {**super().config(), "attributes": file_identity(path) if path else None}
