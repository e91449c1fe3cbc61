"""CLIP zero-shot experts (open_clip): the paper's photographic-style prompts, or any user vocabulary.

Image and prompt embeddings are L2-normalised; the rule (paper, App. A) keeps the best prompt if its score
reaches ``threshold`` (0.5), else a ``background`` concept. (decided) ``score="softmax"`` (default) is the
probability of the best prompt among the prompts (softmax of the model's scaled cosine similarities), which
makes the 0.5 threshold mean "more likely than all others together"; ``score="cosine"`` applies the
threshold to the raw cosine similarity as the paper's text literally reads — with released CLIP models
image-text cosines rarely exceed 0.35, so nearly every image would be background.

A vocabulary file has one concept per line; a line ``concept<TAB>prompt`` gives the prompt explicitly,
otherwise the prompt is ``template.format(concept)``. Blank lines and ``#`` comments are ignored.

Weights: an open_clip pretrained tag (``pretrained="openai"``, downloaded by open_clip, needs internet), a
local checkpoint (``weights``), or ``pretrained="random"`` (random initialisation, for tests and demos only;
recorded in the manifest).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from .._network import hub_download_mode
from ..device import resolve_device
from ..errors import QRProbeInputError, require
from ._torch import preprocess_batch, torch_module
from .base import Expert, ExpertOutput
from .rules import softmax, zero_shot_with_background
from .weights import file_identity

#: The paper's photographic-style prompts (App. A), in its order.
STYLE_PROMPTS = (
    "a high quality photo",
    "a noisy, grainy image",
    "a blurry image of low quality",
    "macro photography",
    "a photo with out of focus background, bokeh effect",
    "an animated picture, a vector illustration",
    "a painting",
    "a portrait",
)
SCORES = ("softmax", "cosine")


def read_vocabulary(path: str | os.PathLike, template: str) -> tuple[list[str], list[str]]:
    """Concept names and prompts of a vocabulary file (see the module docstring)."""
    p = Path(path)
    if not p.is_file():
        raise QRProbeInputError(f"clip vocabulary {str(p)!r} not found (a text file, one concept per line)")
    names, prompts = [], []
    for line in p.read_text(encoding="utf-8-sig").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, tab, prompt = line.partition("\t")
        name = name.strip()
        names.append(name)
        prompts.append(prompt.strip() if tab and prompt.strip() else _fill(template, name))
    if not names:
        raise QRProbeInputError(f"clip vocabulary {str(p)!r} holds no concepts")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise QRProbeInputError(f"clip vocabulary {str(p)!r}: concepts listed twice: {dup[:5]}")
    return names, prompts


def _fill(template: str, name: str) -> str:
    if "{}" not in template:
        raise QRProbeInputError(f"clip template {template!r} must contain '{{}}' where the concept goes")
    return template.replace("{}", name)


class ClipExpert(Expert):
    """Zero-shot concepts from CLIP image-text similarity.

    Parameters
    ----------
    vocab : vocabulary file (required unless ``prompts`` is given from Python)
    prompts : list of prompts (Python API); concept names are the prompts
    template : prompt template for vocabulary lines without an explicit prompt
    arch : open_clip architecture name, or a path to an open_clip model-config JSON file
    pretrained : open_clip pretrained tag, or ``"random"`` for random weights
    weights : local open_clip checkpoint (overrides ``pretrained``)
    threshold, score : the rule (see the module docstring)
    background : name of the concept used when no prompt reaches the threshold
    device, batch_size : where and how many images per forward pass
    """

    registry_name = "clip"
    default_group = "Other"

    def __init__(self, *, vocab: str | None = None, prompts: list[str] | None = None,
                 template: str = "a photo of {}.", arch: str = "ViT-B-32", pretrained: str = "openai",
                 weights: str | None = None, threshold: float = 0.5, score: str = "softmax",
                 background: str = "background", device: str = "cpu", batch_size: int = 32,
                 name: str | None = None, group: str | None = None) -> None:
        super().__init__(name=name, group=group)
        if score not in SCORES:
            raise QRProbeInputError(f"{self.name}.score must be one of {SCORES}, got {score!r}")
        if prompts is not None:
            self.prompt_names, self.prompts = list(prompts), list(prompts)
        elif vocab is not None:
            self.prompt_names, self.prompts = read_vocabulary(vocab, template)
        else:
            raise QRProbeInputError(f"expert {self.name!r} needs a vocabulary: --vocab NAME=FILE, or "
                                    f"--set {self.name}.vocab=FILE (one concept per line)")
        if background in self.prompt_names:
            raise QRProbeInputError(f"expert {self.name!r}: the background concept {background!r} is also a prompt")
        self.vocab = None if vocab is None else os.fspath(vocab)
        self.template = template
        self.arch, self.pretrained = arch, pretrained
        self.weights = None if weights is None else os.fspath(weights)
        self.threshold, self.score = float(threshold), score
        self.background = background
        self.device, self.batch_size = device, int(batch_size)
        self.rule = f"best prompt if {score} >= {self.threshold:g}, else {background}"
        self._model: Any = None  # loaded on first use
        self._text: Any = None
        self._preprocess: Any = None
        self._logit_scale = 100.0

    @property
    def concepts(self) -> list[str]:
        return [*self.prompt_names, self.background]

    def thresholds(self) -> list[float]:
        return [self.threshold] * len(self.prompt_names) + [math.nan]

    def _model_name(self, open_clip) -> str:
        if self.arch.endswith(".json"):
            cfg = Path(self.arch)
            if not cfg.is_file():
                raise QRProbeInputError(f"{self.name}.arch: model config {self.arch!r} not found")
            open_clip.add_model_config(str(cfg))
            return cfg.stem
        if self.arch not in open_clip.list_models():
            raise QRProbeInputError(f"{self.name}.arch: unknown open_clip architecture {self.arch!r}")
        return self.arch

    def prepare(self, image_ids=None, labels=None) -> None:
        if self._model is None:
            open_clip = require("open_clip", "vision", f"the {self.name} expert (CLIP)")
            torch = torch_module()
            arch = self._model_name(open_clip)
            if self.weights is not None and not os.path.isfile(self.weights):
                raise QRProbeInputError(f"expert {self.name!r}: weights file {self.weights!r} not found")
            pretrained = self.weights or (None if self.pretrained == "random" else self.pretrained)
            offline = hub_download_mode() if pretrained and not self.weights else None
            try:
                model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=pretrained)
            except Exception as exc:
                why = (f"offline: {offline}, and not in the local cache" if offline else
                       f"{type(exc).__name__}: {(str(exc).splitlines() or [type(exc).__name__])[0][:300]}")
                source = f"the checkpoint {self.weights!r}" if self.weights else f"pretrained={self.pretrained!r}"
                raise QRProbeInputError(
                    f"expert {self.name!r}: cannot load CLIP {arch} with {source} ({why}); without internet pass "
                    "a local open_clip checkpoint with --weights "
                    f"{self.name}=PATH") from None
            self.device = str(resolve_device(self.device))
            model = model.eval().to(self.device)
            tokenizer = open_clip.get_tokenizer(arch)
            with torch.inference_mode():
                text = model.encode_text(tokenizer(self.prompts).to(self.device)).float()
                self._text = torch.nn.functional.normalize(text, dim=-1)
                scale = getattr(model, "logit_scale", None)
                self._logit_scale = float(scale.exp()) if scale is not None else 100.0
            self._model, self._preprocess = model, preprocess
        self._prepared = True

    def similarities(self, images) -> np.ndarray:
        """Cosine similarity of every image with every prompt, (B, P) float32."""
        torch = torch_module()
        x = preprocess_batch(images, self._preprocess)
        out = []
        with torch.inference_mode():
            for start in range(0, x.shape[0], self.batch_size):
                feats = self._model.encode_image(x[start:start + self.batch_size].to(self.device)).float()
                out.append((torch.nn.functional.normalize(feats, dim=-1) @ self._text.T).cpu())
        return torch.cat(out).numpy().astype(np.float32)

    def _predict(self, images, image_ids) -> ExpertOutput:
        sims = self.similarities(images)
        scores = softmax(self._logit_scale * sims) if self.score == "softmax" else sims
        binary = zero_shot_with_background(scores, self.threshold)
        best = scores.max(axis=1, keepdims=True)
        return ExpertOutput(binary, np.concatenate([scores, best], axis=1).astype(np.float32))

    def config(self) -> dict:
        return {**super().config(), "arch": self.arch, "pretrained": self.pretrained,
                "weights": file_identity(self.weights) if self.weights else None, "prompts": self.prompts,
                "threshold": self.threshold, "score": self.score, "background": self.background}


class ClipStyleExpert(ClipExpert):
    """The paper's 8 photographic-style prompts plus a background concept (group Other)."""

    registry_name = "clip-style"

    def __init__(self, *, arch: str = "ViT-B-32", pretrained: str = "openai", weights: str | None = None,
                 threshold: float = 0.5, score: str = "softmax", device: str = "cpu", batch_size: int = 32,
                 name: str | None = None, group: str | None = None) -> None:
        super().__init__(prompts=list(STYLE_PROMPTS), arch=arch, pretrained=pretrained, weights=weights,
                         threshold=threshold, score=score, background="no style", device=device,
                         batch_size=batch_size, name=name, group=group)
