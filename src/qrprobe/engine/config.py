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

The machinery (``param``, the checks, ``validate``) is :mod:`qrprobe.schema`, shared with the extraction's and
the labelling's configs. A bad value raises :class:`~qrprobe.errors.ParameterError` naming the field
(``lr: …``); the CLI rewrites the name as its flag (``--lr: …``) and the study loader as its location in the
file.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ParameterError
from ..schema import (  # the schema machinery, shared with the extraction's and labelling's configs
    config_fields,
    field_default,
    int_at_least,
    is_int,
    normalize_tuple,
    number_in,
    optional_int_at_least,
    param,
    resolve_aliases,
    validate,
)


def increasing_epochs(value: Any) -> str | None:
    ok = (isinstance(value, tuple) and all(is_int(v) and v >= 1 for v in value)
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
        normalize_tuple(self, "milestones")
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
def flat_defaults() -> dict[str, Any]:
    """Every protocol and probe parameter with its default, flat (``{"k": 1000, …, "lr": 3.5, …}``)."""
    return {f.name: field_default(f) for cls in (ProtocolConfig, ProbeConfig) for f in config_fields(cls)}


def flat_params(config: ProtocolConfig) -> dict[str, Any]:
    """The values of ``config`` as flat keyword parameters (inverse of :meth:`ProtocolConfig.from_params`)."""
    out = {f.name: getattr(config, f.name) for f in config_fields(ProtocolConfig)}
    out.update({f.name: getattr(config.probe, f.name) for f in config_fields(ProbeConfig)})
    return out


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


__all__ = ["ProbeConfig", "ProtocolConfig", "config_fields", "field_default", "flat_defaults", "flat_params", "param",
           "split_params", "validate"]
