"""The protocol's parameters: the one schema that the library, the CLI and the study YAML are generated from.

:class:`ProtocolConfig` (repetitions, split, statistics), with :class:`KMeansConfig` (the quantization's
K-means) and :class:`ProbeConfig` (the reverse probe's training schedule) nested in it, are frozen dataclasses.
Each field carries, in its metadata, its help text, its check, its choices and the deprecated names it still
accepts. From them:

- the CLI's flags (``qrprobe.cli.options.add_config_arguments``): ``--`` + the field name with ``-`` for ``_``;
- the study file's ``protocol:`` section (``qrprobe.study.schema``), with the same names (``probe:`` nested;
  the K-means keys flat, or nested under ``kmeans:``);
- the keyword parameters of :func:`qrprobe.evaluate` and of :class:`qrprobe.ReverseProbing`, and the
  parameters of :class:`qrprobe.KMeans` (the K-means fields).

The K-means fields keep their flat names everywhere, nested or not: ``ProtocolConfig(k=50)``,
``config.k`` and ``config.kmeans.k``, ``evaluate(k=50)``, ``--k 50``, ``protocol: {k: 50}`` all mean
``kmeans.k``; a saved result's ``config`` holds them flat, as it always has.

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
import functools
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, overload

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
    """Training schedule of the reverse probe (defaults: the paper's, App. C, plus concept screening where the
    training rows are few for the concepts × clusters weights; ``ProbeConfig.preset("paper")`` turns it off)."""

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
    concept_screen: str = param(
        "auto", "concept screening (issue 19): rank the concepts by their mutual information with the clusters on "
        "the training split, fit the probe on the top m for m = M, then 2^i and 3·2^(i−1) downwards (stopping after "
        "two sizes in a row that do not improve, at once if all M stay best, then bisecting), and keep the m with "
        "the lowest validation loss, so that concepts that carry nothing no longer lower the MI estimate; on, off "
        "(the paper: every concept), or auto (recommended: on where concepts × clusters / (2 × training rows) > 0.05)",
        choices=("auto", "on", "off"))

    def __post_init__(self) -> None:
        normalize_tuple(self, "milestones")
        validate(self)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def preset(cls, name: str) -> ProbeConfig:
        """A named setting: ``"paper"`` (the paper's SGD schedule on every concept, as in App. C; the numbers of
        releases before concept screening) or ``"recommended"`` (the defaults: the same schedule with
        ``concept_screen="auto"``)."""
        if name not in PROBE_PRESETS:
            raise ParameterError("probe", f"unknown preset {name!r}; choose one of {', '.join(PROBE_PRESETS)}")
        return cls(**PROBE_PRESETS[name])

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> ProbeConfig:
        """Build from a mapping (e.g. a study's ``probe:``); deprecated names are accepted; a missing key takes
        its default (for a saved result's ``config["probe"]`` use :meth:`from_saved`)."""
        return cls(**resolve_aliases(cls, dict(values or {}), warn=False))

    @classmethod
    def from_saved(cls, values: Mapping[str, Any] | None) -> ProbeConfig:
        """Build from a saved result's ``config["probe"]``: as :meth:`from_dict`, but a result saved without
        ``concept_screen`` (before screening existed, or with it off: :meth:`ProtocolConfig.to_dict` omits
        ``"off"``) was computed on every concept, so the missing key means ``"off"``."""
        return cls.from_dict({"concept_screen": "off", **dict(values or {})})


PROBE_PRESETS: dict[str, dict[str, Any]] = {"paper": {"concept_screen": "off"}, "recommended": {}}


@dataclass(frozen=True)
class KMeansConfig:
    """The quantization's K-means (defaults: the paper's, App. C): K, Lloyd iterations, restarts, the training
    sample, the implementation, the initialisation and the storage precision. ``qrprobe.KMeans`` takes these
    parameters, with these names."""

    k: int = param(1000, "number of clusters K (paper: 1000)", check=int_at_least(2))
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
    kmeans_precision: str = param(
        "auto", "storage of the standardized features for K-means: float32 (plain float32 Lloyd, as earlier "
        "releases), float16 or bfloat16 (half the memory; exact Lloyd on the 16-bit values, faster), or auto: "
        "float16 at every size (the fastest measured, the same clustering on every machine)",
        choices=("auto", "float32", "float16", "bfloat16"))
    kmeans_early_stop: float | None = param(
        None, "stop a restart once an iteration lowers the K-means objective by at most this fraction of it "
        "(faiss's early_stop_threshold; 0: once it no longer decreases); none: the paper's fixed iterations, "
        "stopping early only at an exact fixed point", check=lambda v: None if v is None else number_in(0, 1)(v),
        metavar="FRACTION", shown="none (off)")
    kmeans_restart_screen: int | None = param(
        None, "a cheaper schedule: every restart runs this many iterations, then only the one with the lowest "
        "inertia goes on to the iteration limit (its result is what it reaches uninterrupted, but a restart "
        "that would have overtaken it later is not seen; 16-bit storage only); none: every restart runs to the "
        "end, as the paper", check=optional_int_at_least(1), metavar="T",
        shown="none (off)")

    def __post_init__(self) -> None:
        validate(self)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> KMeansConfig:
        """Build from a mapping (e.g. ``kmeans:`` of a study file); deprecated names are accepted."""
        return cls(**resolve_aliases(cls, dict(values or {}), warn=False))


_T = TypeVar("_T")


class _KMeansField(Generic[_T]):
    """``ProtocolConfig.<name>``: the K-means field of that name, read from ``kmeans`` (``config.k`` is
    ``config.kmeans.k``)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> _KMeansField[_T]: ...

    @overload
    def __get__(self, obj: object, owner: type | None = None) -> _T: ...

    def __get__(self, obj: object, owner: type | None = None) -> Any:
        if obj is None:
            return self
        return getattr(obj.kmeans, self.name)  # type: ignore[attr-defined]


_C = TypeVar("_C", bound=type)


def _flat_kmeans(cls: _C) -> _C:
    """Let ``cls`` (:class:`ProtocolConfig`) take the K-means fields flat, by their names:
    ``ProtocolConfig(k=50)`` and ``dataclasses.replace(config, k=50)`` set ``kmeans.k``."""
    init = vars(cls)["__init__"]  # the one the dataclass wrote
    names = {f.name for f in dataclasses.fields(KMeansConfig)}

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        flat = {name: kwargs.pop(name) for name in [n for n in kwargs if n in names]}
        if flat:
            nested = kwargs.get("kmeans", KMeansConfig())
            if isinstance(nested, Mapping):
                nested = KMeansConfig.from_dict(nested)
            elif not isinstance(nested, KMeansConfig):
                raise ParameterError("kmeans", f"expected a KMeansConfig or a mapping, got {type(nested).__name__}")
            kwargs["kmeans"] = dataclasses.replace(nested, **flat)
        init(self, *args, **kwargs)

    cls.__init__ = __init__  # type: ignore[misc]
    return cls


@_flat_kmeans
@dataclass(frozen=True)
class ProtocolConfig:
    """Every parameter of quantized reverse probing; the defaults are the paper's (``docs/protocol.md``), except
    the probe's concept screening (``probe.concept_screen``, "auto"; "off" is the paper's protocol).

    ``kmeans`` holds the quantization's K-means (:class:`KMeansConfig`), ``probe`` the probe's schedule
    (:class:`ProbeConfig`); :meth:`from_params` takes the fields of all three as flat keyword parameters
    (``ProtocolConfig.from_params(k=50, epochs=20)``). The K-means fields are also taken and read flat:
    ``ProtocolConfig(k=50)``, ``dataclasses.replace(config, k=50)``, ``config.k`` (``config.kmeans.k``).
    """

    kmeans: KMeansConfig = field(default_factory=KMeansConfig,
                                 metadata={"help": "the quantization's K-means (its fields may also be given flat)",
                                           "flat": True})
    clusterings: int = param(5, "independent clusterings, one seed each; scores are mean ± std over them "
                             "(paper: 5)", check=int_at_least(1, 10_000), aliases=("n_clusterings",), metavar="R")
    seed: int = param(0, "first seed; clustering r uses seed + r", check=int_at_least(0, SEED_MAX - 10_000))
    test_fraction: float = param(0.2, "share of each cluster held out for test (paper: 0.2)",
                                 check=number_in(0, 1, low_open=True, high_open=True))
    val_fraction: float = param(0.2, "share of each cluster's training images held out for validation (paper: 0.2)",
                                check=number_in(0, 1, high_open=True))
    probe: ProbeConfig = field(default_factory=ProbeConfig, metadata={"help": "the reverse probe's schedule"})
    device: str = param("auto", "auto (a GPU when present), cpu, cuda or cuda:N", study=False)
    null_repeats: int = param(1, "probes per clustering on concepts shuffled across images, the chance level "
                              "of every score (0: none)", check=int_at_least(0, 1000), metavar="N")
    bootstrap: int = param(200, "bootstrap replicates over test images, for intervals and paired comparisons "
                           "(0: none)", check=int_at_least(0, 100_000), metavar="B")

    # the K-means fields read flat, by the names every front end gives them (``config.k`` is ``config.kmeans.k``)
    k = _KMeansField[int]()
    iters = _KMeansField[int]()
    restarts = _KMeansField[int]()
    max_train_points = _KMeansField["int | None"]()
    kmeans_backend = _KMeansField[str]()
    kmeans_init = _KMeansField[str]()
    kmeans_precision = _KMeansField[str]()
    kmeans_early_stop = _KMeansField["float | None"]()
    kmeans_restart_screen = _KMeansField["int | None"]()

    def __post_init__(self) -> None:
        for name, nested in (("kmeans", KMeansConfig), ("probe", ProbeConfig)):
            value = getattr(self, name)
            if isinstance(value, Mapping):
                object.__setattr__(self, name, nested.from_dict(value))
            elif not isinstance(value, nested):
                raise ParameterError(name, f"expected a {nested.__name__} or a mapping, got {type(value).__name__}")
        validate(self)

    def to_dict(self) -> dict:
        """The saved form (a result's ``config``, the study's cache keys): the K-means fields flat and the probe's
        nested under ``probe``, as results have always held them."""
        out = dataclasses.asdict(self)
        kmeans = out.pop("kmeans")
        for later in ("kmeans_early_stop", "kmeans_restart_screen"):  # added later: off, the saved form and
            if kmeans[later] is None:  # cache keys of before
                del kmeans[later]
        if out["probe"]["concept_screen"] == "off":  # added later, default auto: "off" (the paper) has the saved
            del out["probe"]["concept_screen"]  # form and cache keys of before (from_dict reads it back as "off")
        return {**kmeans, **out}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> ProtocolConfig:
        """Build from a mapping (e.g. a saved result's ``config``): the K-means fields flat (as :meth:`to_dict`
        writes them) or nested under ``kmeans``; deprecated names are accepted and keys that are not protocol
        fields (``labelling`` …) are ignored; a ``probe`` mapping without ``concept_screen`` means "off"
        (:meth:`ProbeConfig.from_saved`)."""
        values = resolve_aliases(KMeansConfig, resolve_aliases(cls, dict(values or {}), warn=False), warn=False)
        kmeans = dict(values.pop("kmeans", None) or {})
        for name in _KMEANS_NAMES & set(values):
            if name in kmeans:
                raise TypeError(f"{name!r} is given both flat and under 'kmeans'")
            kmeans[name] = values.pop(name)
        known = {f.name for f in dataclasses.fields(cls)}
        if isinstance(values.get("probe"), Mapping):  # a saved probe config without concept_screen: "off"
            values["probe"] = ProbeConfig.from_saved(values["probe"])
        return cls(**{k: v for k, v in values.items() if k in known}, kmeans=KMeansConfig.from_dict(kmeans))

    @classmethod
    def from_params(cls, base: ProtocolConfig | None = None, **params: Any) -> ProtocolConfig:
        """``base`` (default: the paper's protocol) with flat keyword overrides of protocol and probe fields.

        Unknown names raise ``TypeError`` with the closest valid name; deprecated names warn.
        """
        base = base or cls()
        top, kmeans, probe = split_params(params)
        new_kmeans = dataclasses.replace(base.kmeans, **kmeans) if kmeans else base.kmeans
        new_probe = dataclasses.replace(base.probe, **probe) if probe else base.probe
        return dataclasses.replace(base, **top, kmeans=new_kmeans, probe=new_probe)


_KMEANS_NAMES = frozenset(f.name for f in dataclasses.fields(KMeansConfig))


# ------------------------------------------------------------------------------------------------ helpers
def flat_defaults() -> dict[str, Any]:
    """Every protocol, K-means and probe parameter with its default, flat (``{"k": 1000, …, "lr": 3.5, …}``)."""
    return {f.name: field_default(f) for cls in (KMeansConfig, ProtocolConfig, ProbeConfig)
            for f in config_fields(cls)}


def flat_params(config: ProtocolConfig) -> dict[str, Any]:
    """The values of ``config`` as flat keyword parameters (inverse of :meth:`ProtocolConfig.from_params`)."""
    out = {f.name: getattr(config.kmeans, f.name) for f in config_fields(KMeansConfig)}
    out.update({f.name: getattr(config, f.name) for f in config_fields(ProtocolConfig)})
    out.update({f.name: getattr(config.probe, f.name) for f in config_fields(ProbeConfig)})
    return out


def split_params(params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Flat keyword parameters → (protocol fields, K-means fields, probe fields); unknown names raise
    ``TypeError``."""
    params = dict(params)
    for cls in (ProtocolConfig, KMeansConfig, ProbeConfig):
        params = resolve_aliases(cls, params)
    groups: list[tuple[set[str], dict[str, Any]]] = [
        ({f.name for f in config_fields(cls)}, {}) for cls in (ProtocolConfig, KMeansConfig, ProbeConfig)]
    for name, value in params.items():
        group = next((values for names, values in groups if name in names), None)
        if group is None:
            valid = sorted(set().union(*(names for names, _ in groups)))
            close = difflib.get_close_matches(name, valid, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise TypeError(f"unknown protocol parameter {name!r}{hint}")
        group[name] = value
    (_, top), (_, kmeans), (_, probe) = groups
    return top, kmeans, probe


__all__ = ["PROBE_PRESETS", "KMeansConfig", "ProbeConfig", "ProtocolConfig", "config_fields", "field_default",
           "flat_defaults", "flat_params", "param", "split_params", "validate"]
