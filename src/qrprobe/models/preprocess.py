"""Image preprocessing: PIL RGB image -> normalised float tensor, described by a JSON-able dict.

:class:`ImagePreprocess` reproduces the usual ImageNet evaluation transform (resize the shorter side, centre
crop, scale to [0, 1], normalise per channel) with PIL and numpy only, so classical representations and
exported models need no torchvision. Adapters whose library ships its own transform (timm, open_clip,
torchvision weights, HuggingFace processors) use that one; :class:`LibraryPreprocess` wraps it with a
description for the manifest.

Both say what their first step is: ``first_resize(width, height)`` is the size (and filter) they resize a
``width`` x ``height`` image to (None when unknown). :mod:`qrprobe.images.reduce` uses it to decode a large JPEG
at a reduced size and make that first resize itself (``docs/extraction.md``).
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


def resized_shorter(width: int, height: int, side: int) -> tuple[int, int]:
    """(width, height) of a ``width`` x ``height`` image whose shorter side is resized to ``side`` pixels, the
    longer one truncated as torchvision's ``Resize(int)`` does."""
    if width <= height:
        return side, int(side * height / width)
    return int(side * width / height), side


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

    def first_resize(self, width: int, height: int) -> tuple[tuple[int, int], str]:
        """``((width, height), interpolation)`` this transform first resizes a ``width`` x ``height`` image to
        (what :mod:`qrprobe.images.reduce` needs to decode a large JPEG at a reduced size)."""
        if self.resize_mode == "squash":
            return (self.resize, self.resize), self.interpolation
        return resized_shorter(width, height, self.resize), self.interpolation

    def resize_and_crop(self, image):
        """The geometric part only: PIL image -> PIL image of the output size."""
        w, h = image.size
        size, _ = self.first_resize(w, h)
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

    def first_resize(self, width: int, height: int) -> tuple[tuple[int, int], str] | None:
        """``((width, height), interpolation)`` the transform first resizes a ``width`` x ``height`` image to,
        when that step is a torchvision resize (a ``Compose`` starting with ``Resize``, or a torchvision
        weights' ``ImageClassification``); None otherwise."""
        return library_first_resize(self.transform, width, height)

    def describe(self) -> dict:
        return dict(self.description)


def library_first_resize(transform, width: int, height: int) -> tuple[tuple[int, int], str] | None:
    """``((width, height), interpolation)`` a torchvision transform first resizes a ``width`` x ``height`` PIL
    image to, or None when that is not known (another first step, a ``max_size`` cap, another library)."""
    if not type(transform).__module__.startswith("torchvision."):
        return None
    import importlib

    transforms = importlib.import_module("torchvision.transforms")  # loaded already: the transform is one
    presets = importlib.import_module("torchvision.transforms._presets")
    if isinstance(transform, presets.ImageClassification):
        size, mode = list(transform.resize_size), transform.interpolation
    elif (isinstance(transform, transforms.Compose) and transform.transforms
          and type(transform.transforms[0]) is transforms.Resize and transform.transforms[0].max_size is None):
        first = transform.transforms[0]
        size, mode = ([first.size] if isinstance(first.size, int) else list(first.size)), first.interpolation
    else:
        return None
    name = getattr(mode, "value", None)
    if name not in (*_INTERPOLATIONS, "hamming") or not size or len(size) > 2 \
            or not all(isinstance(v, int) and v > 0 for v in size):
        return None
    if len(size) == 2:  # (height, width): squashed
        return (size[1], size[0]), name
    return resized_shorter(width, height, size[0]), name


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
