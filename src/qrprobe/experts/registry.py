"""The expert registry: every built-in expert by name, with what it needs, built lazily.

Listing experts (``qrprobe experts``) imports nothing heavy: an entry names its class as
``"module:Class"`` and the class is imported only by :func:`build_expert`.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..errors import QRProbeInputError
from .base import Expert


@dataclass(frozen=True)
class ExpertInfo:
    """A registry entry.

    Attributes
    ----------
    name : the name users select the expert by
    target : ``"module:Class"`` of the expert class (a built-in's module relative to ``qrprobe.experts``;
        another package's in full, ``"mylab.experts:MyExpert"``)
    group : default concept group
    n_concepts : number of concepts, or None when it depends on the data or a vocabulary
    task : what the underlying model or rule does
    rule : how its output becomes binary concepts
    extra : the ``pip install 'qrprobe[EXTRA]'`` extra it needs (None: core dependencies only)
    weights : where its weights come from
    description : one line
    defaults : keyword arguments the class is built with before the user's options
    """

    name: str
    target: str
    group: str
    n_concepts: int | None
    task: str
    rule: str
    extra: str | None
    weights: str
    description: str
    defaults: Mapping = field(default_factory=dict)

    @property
    def needs(self) -> str:
        """What a user must install or supply, in words."""
        parts = []
        if self.extra:
            parts.append(f"extra [{self.extra}]")
        parts.append(f"weights: {self.weights}")
        return "; ".join(parts)


_REGISTRY: dict[str, ExpertInfo] = {}


def register_expert(info: ExpertInfo, *, replace: bool = False) -> ExpertInfo:
    """Add an expert to the registry (``replace=True`` to redefine an existing name)."""
    if info.name in _REGISTRY and not replace:
        raise ValueError(f"an expert named {info.name!r} is already registered")
    _REGISTRY[info.name] = info
    return info


def available_experts() -> list[ExpertInfo]:
    """All registered experts, in registration order."""
    return list(_REGISTRY.values())


def expert_info(name: str) -> ExpertInfo:
    """The registry entry of ``name``; an unknown name is an input error listing the known ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise QRProbeInputError(
            f"unknown expert {name!r}; available experts: {', '.join(_REGISTRY)} "
            "(`qrprobe experts` lists them)") from None


def expert_class(name: str) -> type[Expert]:
    """Import and return the class of a registered expert."""
    info = expert_info(name)
    module_name, _, cls_name = info.target.partition(":")
    module = importlib.import_module(_module_path(module_name))
    return getattr(module, cls_name)


def _module_path(module_name: str) -> str:
    """``"color"`` -> ``"qrprobe.experts.color"`` for a built-in; an expert registered from elsewhere names
    its module in full (``"mylab.experts"``)."""
    if "." not in module_name and importlib.util.find_spec(f"{__package__}.{module_name}") is not None:
        return f"{__package__}.{module_name}"
    return module_name


def parse_expert_list(text: str) -> list[str]:
    """Split ``"labels,color, text"`` into names; empty or repeated names are input errors."""
    names = [t.strip() for t in str(text).split(",")]
    if not names or any(not n for n in names):
        raise QRProbeInputError(f"--experts: expected a comma-separated list of expert names, got {text!r}")
    seen: set[str] = set()
    for n in names:
        if n in seen:
            raise QRProbeInputError(f"--experts: expert {n!r} is listed twice")
        seen.add(n)
    return names


def build_expert(name: str, options: Mapping | None = None, *, kind: str | None = None) -> Expert:
    """Instantiate an expert.

    Parameters
    ----------
    name : the expert's name in the bank; also its registry name unless ``kind`` is given
    options : keyword arguments of the expert class (strings from the command line are converted to the
        annotated type: ``"0.3"`` -> 0.3, ``"true"`` -> True, ``"none"`` -> None)
    kind : the registry name of the expert type when ``name`` is a user-chosen name (a CLIP vocabulary
        expert named ``styles`` is ``build_expert("styles", {...}, kind="clip")``)
    """
    info = expert_info(kind or name)
    cls = expert_class(info.name)
    kwargs = dict(info.defaults)
    kwargs.update(coerce_options(cls, dict(options or {}), info.name))
    if kind is not None and name != kind:
        kwargs["name"] = name
    return cls(**kwargs)


def expert_parameters(cls: type) -> dict[str, inspect.Parameter]:
    """The keyword parameters an expert class accepts (from its ``__init__`` signature)."""
    params = inspect.signature(cls).parameters
    return {k: p for k, p in params.items() if k != "self" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}


def coerce_options(cls: type, options: dict, expert: str) -> dict:
    """Check option names against the class signature and convert string values to the annotated type."""
    params = expert_parameters(cls)
    out = {}
    for key, value in options.items():
        if key not in params:
            raise QRProbeInputError(
                f"expert {expert!r} has no option {key!r}; its options are: {', '.join(sorted(params))}")
        out[key] = _coerce(value, str(params[key].annotation), f"{expert}.{key}") if isinstance(value, str) \
            else value
    return out


def _coerce(value: str, annotation: str, what: str):
    text = value.strip()
    allows_none = "None" in annotation or "Optional" in annotation
    if allows_none and text.lower() in ("none", "null", ""):
        return None
    base = annotation.replace("| None", "").replace("None |", "").strip()
    try:
        if base == "bool":
            low = text.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if base == "int":
            return int(text)
        if base == "float":
            return float(text)
    except ValueError:
        raise QRProbeInputError(f"option {what}: expected a {base}, got {value!r}") from None
    return value
