"""The protocol's parameters: the one schema that the library, the CLI and the study YAML are generated from.

:class:`ProtocolConfig` (quantization, split, repetitions) and :class:`ProbeConfig` (the reverse probe's
training schedule) are frozen dataclasses. Each field carries, in its metadata, its help text, its check, its
choices and the deprecated names it still accepts. From them:

- the CLI's flags (``qrprobe.cli.options.add_config_arguments``): ``--`` + the field name with ``-`` for ``_``;
- the study file's ``protocol:`` section (``qrprobe.study.schema``), with the same names (``probe:`` nested);
- the keyword parameters of :func:`qrprobe.evaluate` and of :class:`qrprobe.ReverseProbing`.

One name per idea everywhere: ``k``, ``clusterings``, ``iters``, ``restarts``, ``lr_decay`` … The names of
earlier releases (``n_clusterings``, ``n_iter``, ``n_restarts``, ``gamma``) are declared aliases: still accepted,
with a :class:`FutureWarning`.

A bad value raises :class:`~qrprobe.errors.ParameterError` naming the field (``lr: …``); the CLI rewrites the
name as its flag (``--lr: …``) and the study loader as its location in the file.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ParameterError

Check = Callable[[Any], str | None]  # returns what was expected, or None when the value is fine


def param(default: Any, help: str, *, check: Check | None = None, choices: tuple[str, ...] | None = None,
          aliases: tuple[str, ...] = (), metavar: str | None = None, cli: bool = True, study: bool = True,
          file: bool = False, shown: str | None = None) -> Any:
    """A config field: its default and what the CLI, the study schema and the checks need to know.

    ``cli`` / ``study``: whether the CLI has a flag / the study file has a key for it. ``file``: the value is
    a path that must exist (the study schema resolves it against the study file's folder). ``aliases``:
    deprecated names still accepted. ``shown``: how help texts show the default when its value does not say
    it (e.g. ``None`` meaning "all points"). A list or dict default is copied for each instance.
    """
    meta = {"help": help, "check": check, "choices": choices, "aliases": aliases, "metavar": metavar,
            "cli": cli, "study": study, "file": file, "shown": shown}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


# ------------------------------------------------------------------------------------------------ checks
def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def int_at_least(low: int, high: int | None = None) -> Check:
    def check(value: Any) -> str | None:
        if _is_int(value) and value >= low and (high is None or value <= high):
            return None
        return f"an integer ≥ {low}" + (f" and ≤ {high}" if high is not None else "")
    return check


def optional_int_at_least(low: int) -> Check:
    inner = int_at_least(low)

    def check(value: Any) -> str | None:
        return None if value is None else inner(value)
    return check


def number_in(low: float, high: float, *, low_open: bool = False, high_open: bool = False) -> Check:
    def check(value: Any) -> str | None:
        if _is_number(value):
            above = value > low if low_open else value >= low
            below = value < high if high_open else value <= high
            if above and below:
                return None
        return f"a finite number in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    return check


def increasing_epochs(value: Any) -> str | None:
    ok = (isinstance(value, tuple) and all(_is_int(v) and v >= 1 for v in value)
          and all(a < b for a, b in itertools.pairwise(value)))
    return None if ok else "strictly increasing epoch numbers ≥ 1 (e.g. 60,80), or none"


SEED_MAX = 2**31 - 1  # faiss takes a 31-bit seed; numpy and torch take more


# ------------------------------------------------------------------------------------------------ schema
@dataclass(frozen=True)
class ProbeConfig:
    """Training schedule of the reverse probe (defaults: the paper's, App. C)."""

    lr: float = param(3.5, "initial learning rate (paper: 3.5)", check=number_in(0, 1e3, low_open=True))
    momentum: float = param(0.9, "SGD momentum (paper: 0.9)", check=number_in(0, 1, high_open=True))
    batch_size: int = param(512, "batch size (paper: 512)", check=int_at_least(1))
    epochs: int = param(100, "maximum epochs; the best validation epoch is kept (paper: 100)",
                        check=int_at_least(1, 100_000))
    milestones: tuple[int, ...] = param((60, 80), "epochs at which the learning rate is multiplied by lr_decay "
                                        "(paper: 60,80)", check=increasing_epochs, metavar="E1,E2")
    lr_decay: float = param(0.1, "learning-rate factor at each milestone (paper: 0.1)",
                            check=number_in(0, 1, low_open=True), aliases=("gamma",))
    weight_decay: float = param(3e-6, "L2 weight decay (paper: 3e-6)", check=number_in(0, 1))
    select: str = param("val_loss", "which epoch to keep: the best validation loss (the class prior, epoch 0, "
                        "included), or the last", choices=("val_loss", "last"))
    solver: str = param("sgd", "the probe's optimizer: the paper's SGD, or lbfgs (full-batch L-BFGS to the optimum "
                        "of the same objective, the weight decay chosen on validation)", choices=("sgd", "lbfgs"))
    lbfgs_grid: int = param(8, "solver lbfgs: weight decays tried, weight_decay × √10^j for j = 0 … n−1 (the one "
                            "with the lowest validation loss is kept)", check=int_at_least(1, 40), metavar="N")
    lbfgs_iters: int = param(500, "solver lbfgs: maximum L-BFGS iterations per weight decay",
                             check=int_at_least(1, 100_000))
    lbfgs_penalty: str = param("l2", "solver lbfgs: the penalty, l2 (SGD's weight decay: the same objective) or "
                               "l1 (λ·Σ|W|, the bias free: zero weights for concepts that carry nothing)",
                               choices=("l2", "l1"))

    def __post_init__(self) -> None:
        _normalize_tuple(self, "milestones")
        validate(self)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> ProbeConfig:
        """Build from a mapping (e.g. a saved result's ``config["probe"]``); deprecated names are accepted."""
        return cls(**resolve_aliases(cls, dict(values or {}), warn=False))


@dataclass(frozen=True)
class ProtocolConfig:
    """Every parameter of quantized reverse probing; the defaults are the paper's (``docs/protocol.md``).

    ``probe`` holds the probe's schedule (:class:`ProbeConfig`); :meth:`from_params` takes the fields of both
    as flat keyword parameters (``ProtocolConfig.from_params(k=50, epochs=20)``).
    """

    k: int = param(1000, "number of clusters K (paper: 1000)", check=int_at_least(2))
    clusterings: int = param(5, "independent clusterings, one seed each; scores are mean ± std over them "
                             "(paper: 5)", check=int_at_least(1, 10_000), aliases=("n_clusterings",), metavar="R")
    seed: int = param(0, "first seed; clustering r uses seed + r", check=int_at_least(0, SEED_MAX - 10_000))
    iters: int = param(100, "Lloyd iterations per restart (paper: 100)", check=int_at_least(1, 100_000),
                       aliases=("n_iter",))
    restarts: int = param(5, "K-means restarts per clustering, the lowest inertia kept (paper: 5)",
                          check=int_at_least(1, 1000), aliases=("n_restarts",))
    max_train_points: int | None = param(None, "train K-means on a random sample of this many points",
                                         check=optional_int_at_least(2), metavar="N", shown="all points")
    kmeans_backend: str = param("torch", "K-means implementation: torch (CPU/GPU) or faiss (needs qrprobe[faiss])",
                                choices=("torch", "faiss"))
    kmeans_init: str = param("random", "initial centroids: K random points (as faiss) or k-means++",
                             choices=("random", "k-means++"))
    test_fraction: float = param(0.2, "share of each cluster held out for test (paper: 0.2)",
                                 check=number_in(0, 1, low_open=True, high_open=True))
    val_fraction: float = param(0.2, "share of each cluster's training images held out for validation (paper: 0.2)",
                                check=number_in(0, 1, high_open=True))
    probe: ProbeConfig = field(default_factory=ProbeConfig, metadata={"help": "the reverse probe's schedule"})
    device: str = param("auto", "auto (a GPU when present), cpu, cuda or cuda:N", study=False)
    kmeans_precision: str = param(
        "auto", "storage of the standardized features for K-means: float32 (plain float32 Lloyd, as earlier "
        "releases), float16 or bfloat16 (half the memory; exact Lloyd on the 16-bit values, faster), or auto: "
        "float32 while that copy is at most 1 GiB, else float16", choices=("auto", "float32", "float16", "bfloat16"))
    null_repeats: int = param(1, "probes per clustering on concepts shuffled across images, the chance level "
                              "of every score (0: none)", check=int_at_least(0, 1000), metavar="N")
    bootstrap: int = param(200, "bootstrap replicates over test images, for intervals and paired comparisons "
                           "(0: none)", check=int_at_least(0, 100_000), metavar="B")

    def __post_init__(self) -> None:
        if isinstance(self.probe, Mapping):
            object.__setattr__(self, "probe", ProbeConfig.from_dict(self.probe))
        elif not isinstance(self.probe, ProbeConfig):
            raise ParameterError("probe", f"expected a ProbeConfig or a mapping, got {type(self.probe).__name__}")
        validate(self)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> ProtocolConfig:
        """Build from a nested mapping (e.g. a saved result's ``config``); deprecated names are accepted and
        keys that are not protocol fields (``labelling`` …) are ignored."""
        values = resolve_aliases(cls, dict(values or {}), warn=False)
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    @classmethod
    def from_params(cls, base: ProtocolConfig | None = None, **params: Any) -> ProtocolConfig:
        """``base`` (default: the paper's protocol) with flat keyword overrides of protocol and probe fields.

        Unknown names raise ``TypeError`` with the closest valid name; deprecated names warn.
        """
        base = base or cls()
        top, probe = split_params(params)
        new_probe = dataclasses.replace(base.probe, **probe) if probe else base.probe
        return dataclasses.replace(base, **top, probe=new_probe)


# ------------------------------------------------------------------------------------------------ helpers
def config_fields(cls: type) -> list[dataclasses.Field]:
    """The fields of a config dataclass that carry a value (not a nested config)."""
    return [f for f in dataclasses.fields(cls) if "help" in f.metadata and f.name != "probe"]


def field_default(f: dataclasses.Field) -> Any:
    """The default value of a dataclass field (calling its factory)."""
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def flat_defaults() -> dict[str, Any]:
    """Every protocol and probe parameter with its default, flat (``{"k": 1000, …, "lr": 3.5, …}``)."""
    return {f.name: field_default(f) for cls in (ProtocolConfig, ProbeConfig) for f in config_fields(cls)}


def flat_params(config: ProtocolConfig) -> dict[str, Any]:
    """The values of ``config`` as flat keyword parameters (inverse of :meth:`ProtocolConfig.from_params`)."""
    out = {f.name: getattr(config, f.name) for f in config_fields(ProtocolConfig)}
    out.update({f.name: getattr(config.probe, f.name) for f in config_fields(ProbeConfig)})
    return out


def resolve_aliases(cls: type, values: dict[str, Any], *, warn: bool = True) -> dict[str, Any]:
    """Rename deprecated field names of ``cls`` in ``values`` to the current ones (warning when ``warn``)."""
    for f in dataclasses.fields(cls):
        for alias in f.metadata.get("aliases", ()):
            if alias in values:
                if f.name in values:
                    raise TypeError(f"both {f.name!r} and its deprecated name {alias!r} were given")
                if warn:
                    warnings.warn(f"{alias!r} is deprecated; use {f.name!r}", FutureWarning, stacklevel=4)
                values[f.name] = values.pop(alias)
    return values


def split_params(params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Flat keyword parameters → (protocol fields, probe fields); unknown names raise ``TypeError``."""
    params = resolve_aliases(ProbeConfig, resolve_aliases(ProtocolConfig, dict(params)))
    top_names = {f.name for f in config_fields(ProtocolConfig)}
    probe_names = {f.name for f in config_fields(ProbeConfig)}
    top, probe = {}, {}
    for name, value in params.items():
        if name in top_names:
            top[name] = value
        elif name in probe_names:
            probe[name] = value
        else:
            close = difflib.get_close_matches(name, sorted(top_names | probe_names), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise TypeError(f"unknown protocol parameter {name!r}{hint}")
    return top, probe


def _normalize_tuple(config: Any, name: str) -> None:
    value = getattr(config, name)
    if isinstance(value, list):
        object.__setattr__(config, name, tuple(value))


def validate(config: Any) -> None:
    """Check every field of a config dataclass against its metadata; raise :class:`ParameterError`."""
    for f in config_fields(type(config)):
        value = getattr(config, f.name)
        choices = f.metadata.get("choices")
        if choices is not None and value not in choices:
            raise ParameterError(f.name, f"expected one of {', '.join(choices)}, got {value!r}")
        check = f.metadata.get("check")
        expected = check(value) if check is not None else None
        if expected is not None:
            raise ParameterError(f.name, f"expected {expected}, got {value!r}")


__all__ = ["ProbeConfig", "ProtocolConfig", "config_fields", "field_default", "flat_defaults", "flat_params", "param",
           "split_params", "validate"]
