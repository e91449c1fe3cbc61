"""What a labelling run is made of: the experts, the bank's concept table, the run's identity."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence

import pandas as pd

from ..errors import QRProbeInputError
from ..schema import identity
from .base import Expert
from .label_config import LabelConfig
from .registry import build_expert


def resolve_experts(experts: Sequence[str | Expert], options: Mapping | None = None,
                    groups: Mapping | None = None, weights: Mapping | None = None,
                    kinds: Mapping | None = None) -> list[Expert]:
    """Build the experts: names (with per-expert ``options``, ``groups`` and ``weights``) or instances.

    ``kinds`` maps a user-chosen expert name to its registry type (``{"styles": "clip"}``).
    """
    options, groups, weights, kinds = dict(options or {}), dict(groups or {}), dict(weights or {}), dict(kinds or {})
    if not experts:
        raise QRProbeInputError("--experts: no experts given")
    names = [e if isinstance(e, str) else e.name for e in experts]
    for what, mapping in (("options", options), ("--group", groups), ("--weights", weights)):
        unknown = sorted(set(mapping) - set(names))
        if unknown:
            raise QRProbeInputError(f"{what} names expert(s) {unknown} that are not among --experts {names}")
    built: list[Expert] = []
    for e in experts:
        if isinstance(e, Expert):
            built.append(e)
            continue
        opts = dict(options.get(e, {}))
        if e in groups:
            opts["group"] = groups[e]
        if e in weights:
            opts["weights"] = weights[e]
        built.append(build_expert(e, opts, kind=kinds.get(e)))
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise QRProbeInputError(f"--experts: expert(s) {dup} listed twice")
    return built


def concept_table(experts: Sequence[Expert]) -> pd.DataFrame:
    """The bank's concept table: every expert's concepts, names made unique across experts.

    A concept name used by more than one expert (``person`` from ``person`` and ``coco``) becomes
    ``"NAME (EXPERT)"`` in every expert that uses it; ``concept`` keeps the expert's own name.
    """
    table = unique_concept_names(pd.concat([e.concept_table() for e in experts], ignore_index=True))
    dup = table["name"][table["name"].duplicated()]
    if len(dup):
        raise QRProbeInputError(f"concept names are not unique within an expert: {sorted(set(dup))[:5]}")
    return table


def unique_concept_names(table: pd.DataFrame) -> pd.DataFrame:
    """The table with ``name`` remade from each expert's own ``concept`` names: a name that more than one
    expert uses becomes ``"NAME (EXPERT)"`` in each of them. The names depend only on the experts together,
    not on which of them were labelled in one run."""
    table = table.copy()
    experts_of = table.groupby("concept")["expert"].nunique()
    shared = set(experts_of[experts_of > 1].index)
    table["name"] = [f"{c} ({e})" if c in shared else c for c, e in zip(table["concept"], table["expert"],
                                                                        strict=True)]
    return table


def run_config_key(source, experts: Sequence[Expert], config: LabelConfig) -> str:
    """Hash of everything that determines the bank: the source listing, the experts' configurations, the
    labelling parameters marked ``key`` (:class:`~.label_config.LabelConfig`: chunk size, ``max_side``)."""
    from .. import __version__

    payload = {"source": source.inputs_hash(), "experts": [e.config() for e in experts], **identity(config),
               "qrprobe": __version__}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]
