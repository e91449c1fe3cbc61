"""Image preprocessing: PIL RGB image -> normalised float tensor, described by a JSON-able dict.

:class:`ImagePreprocess` reproduces the usual ImageNet evaluation transform (resize the shorter side, centre
crop, scale to [0, 1], normalise per channel) with PIL and numpy only, so classical representations and
exported models need no torchvision. Adapters whose library ships its own transform (timm, open_clip,
torchvision weights, HuggingFace processors) use that one; :class:`LibraryPreprocess` wraps it with a
description for the manifest.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from functools import cached_property

import numpy as np
import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "box", "lanczos")


def _pil_filter(name: str):
    from PIL import Image

    return {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
            "bicubic": Image.Resampling.BICUBIC, "box": Image.Resampling.BOX,
            "lanczos": Image.Resampling.LANCZOS}[name]


@dataclass(frozen=True)
class ImagePreprocess:
    """Resize, centre-crop, normalise.

    Parameters
    ----------
    resize : pixels of the shorter side after resizing (``resize_mode="shorter"``), or the square side
        (``"squash"``, aspect ratio not kept).
    crop : side of the square centre crop, pixels; 0 means no crop.
    interpolation : PIL resampling filter name.
    mean, std : per-channel normalisation of [0, 1] RGB values.
    resize_mode : ``"shorter"`` or ``"squash"``.

    Calling it on a PIL RGB image returns a float32 tensor of shape (3, crop, crop) (or (3, resize, resize)
    without a crop). The shorter-side size and the crop offsets follow torchvision's ``Resize`` and
    ``CenterCrop`` on PIL images, so the result equals torchvision's transform of the same parameters.
    """

    resize: int = 256
    crop: int = 224
    interpolation: str = "bilinear"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    resize_mode: str = "shorter"

    def __post_init__(self) -> None:
        if self.interpolation not in _INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {_INTERPOLATIONS}, got {self.interpolation!r}")
        if self.resize_mode not in ("shorter", "squash"):
            raise ValueError(f"resize_mode must be 'shorter' or 'squash', got {self.resize_mode!r}")

    @property
    def output_size(self) -> int:
        return self.crop or self.resize

    def resize_and_crop(self, image):
        """The geometric part only: PIL image -> PIL image of the output size."""
        w, h = image.size
        if self.resize_mode == "squash":
            size = (self.resize, self.resize)
        elif w <= h:
            size = (self.resize, int(self.resize * h / w))
        else:
            size = (int(self.resize * w / h), self.resize)
        if size != (w, h):
            image = image.resize(size, _pil_filter(self.interpolation))
        if self.crop:
            w, h = image.size
            if w < self.crop or h < self.crop:  # torchvision pads; a resize to >= crop makes this rare
                image = image.resize((max(w, self.crop), max(h, self.crop)), _pil_filter(self.interpolation))
                w, h = image.size
            top = round((h - self.crop) / 2.0)
            left = round((w - self.crop) / 2.0)
            image = image.crop((left, top, left + self.crop, top + self.crop))
        return image

    def __call__(self, image) -> torch.Tensor:
        image = self.resize_and_crop(image)
        hwc = torch.from_numpy(np.array(image, dtype=np.uint8, copy=True))
        mean, std = self._mean_std
        return hwc.permute(2, 0, 1).contiguous().to(torch.float32).div_(255.0).sub_(mean).div_(std)

    @cached_property
    def _mean_std(self) -> tuple[torch.Tensor, torch.Tensor]:
        return (torch.tensor(self.mean, dtype=torch.float32).view(3, 1, 1),
                torch.tensor(self.std, dtype=torch.float32).view(3, 1, 1))

    def describe(self) -> dict:
        out = asdict(self)
        out["mean"], out["std"] = list(self.mean), list(self.std)
        return {"kind": "qrprobe", **out}


class LibraryPreprocess:
    """A library's own transform (PIL image -> tensor) with a description for the manifest."""

    def __init__(self, transform: Callable, description: dict) -> None:
        self.transform = transform
        self.description = description

    def __call__(self, image) -> torch.Tensor:
        return self.transform(image)

    def describe(self) -> dict:
        return dict(self.description)


def describe_preprocess(preprocess: Callable) -> dict:
    """The manifest description of any preprocess callable (``repr`` when it has no ``describe``)."""
    if hasattr(preprocess, "describe"):
        return preprocess.describe()
    return {"kind": "callable", "repr": repr(preprocess)}


#: Named transforms a user can state instead of listing every field (``preprocess: imagenet-bicubic``).
#: ``imagenet``: the classic ImageNet evaluation (resize the shorter side to 256, centre crop 224, bilinear,
#: ImageNet mean/std), as torchvision's original ``IMAGENET1K_V1`` weights and the linear evaluations of MoCo
#: v1-v3, SwAV, DeepCluster-v2, PCL and VISSL use it; ``imagenet-bicubic``: the same with bicubic resizing
#: (DINO's and DeiT's evaluation).
PREPROCESS_PRESETS: dict[str, ImagePreprocess] = {
    "imagenet": ImagePreprocess(resize=256, crop=224, interpolation="bilinear"),
    "imagenet-bicubic": ImagePreprocess(resize=256, crop=224, interpolation="bicubic"),
}
_SPEC_KEYS = ("preset", "resize", "crop", "interpolation", "mean", "std", "resize_mode")


def parse_preprocess(spec: str | Mapping | ImagePreprocess) -> ImagePreprocess:
    """An explicit transform from a preset name, a mapping or an :class:`ImagePreprocess`.

    A mapping has any of ``preset`` (the starting point, default ``imagenet``), ``resize``, ``crop``
    (pixels), ``interpolation``, ``mean``, ``std`` (three numbers each) and ``resize_mode``; missing fields
    come from the preset. Raises :class:`~qrprobe.errors.ParameterError` (parameter ``preprocess``) naming
    the bad field.
    """
    from ..errors import ParameterError

    if isinstance(spec, ImagePreprocess):
        return spec
    if isinstance(spec, str):
        spec = {"preset": spec}
    if not isinstance(spec, Mapping):
        raise ParameterError("preprocess", f"expected a preset name {sorted(PREPROCESS_PRESETS)} or a mapping "
                                           f"with keys {list(_SPEC_KEYS)}, got {spec!r}")
    unknown = sorted(set(spec) - set(_SPEC_KEYS))
    if unknown:
        raise ParameterError("preprocess", f"unknown key(s) {unknown}; valid keys: {list(_SPEC_KEYS)}")
    preset = spec.get("preset", "imagenet")
    if preset not in PREPROCESS_PRESETS:
        raise ParameterError("preprocess", f"unknown preset {preset!r}; presets: {sorted(PREPROCESS_PRESETS)}")
    fields = asdict(PREPROCESS_PRESETS[preset])
    for key in ("resize", "crop"):
        if key in spec:
            value = spec[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < (1 if key == "resize" else 0):
                raise ParameterError("preprocess", f"{key}: expected a positive number of pixels, got {value!r}")
            fields[key] = value
    for key in ("mean", "std"):
        if key in spec:
            value = spec[key]
            ok = isinstance(value, (list, tuple)) and len(value) == 3 and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
            if not ok or (key == "std" and any(v <= 0 for v in value)):
                raise ParameterError("preprocess", f"{key}: expected three numbers"
                                                   f"{' > 0' if key == 'std' else ''}, got {value!r}")
            fields[key] = tuple(float(v) for v in value)
    for key, choices in (("interpolation", _INTERPOLATIONS), ("resize_mode", ("shorter", "squash"))):
        if key in spec:
            if spec[key] not in choices:
                raise ParameterError("preprocess", f"{key}: expected one of {list(choices)}, got {spec[key]!r}")
            fields[key] = spec[key]
    return ImagePreprocess(**fields)


def preprocess_check(spec) -> str | None:
    """A config check (``param(check=...)``): None when ``spec`` is None or valid, else what was expected."""
    from ..errors import ParameterError

    if spec is None:
        return None
    try:
        parse_preprocess(spec)
    except ParameterError as exc:
        return f"a preset {sorted(PREPROCESS_PRESETS)} or a mapping of {list(_SPEC_KEYS)} ({exc.message})"
    return None


def with_overrides(base: ImagePreprocess, *, image_size: int | None = None,
                   mean: tuple[float, ...] | None = None, std: tuple[float, ...] | None = None,
                   interpolation: str | None = None) -> ImagePreprocess:
    """A copy of ``base`` with user overrides; ``image_size`` sets the crop and a resize of size / 0.875."""
    fields = asdict(base)
    if image_size is not None:
        fields["crop"] = int(image_size)
        fields["resize"] = round(image_size / 0.875) if base.crop else int(image_size)
    if mean is not None:
        fields["mean"] = tuple(float(v) for v in mean)
    if std is not None:
        fields["std"] = tuple(float(v) for v in std)
    if interpolation is not None:
        fields["interpolation"] = interpolation
    return ImagePreprocess(**fields)
