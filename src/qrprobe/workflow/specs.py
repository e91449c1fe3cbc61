"""The options of each analysis: one frozen dataclass per kind, the source of its CLI flags and study keys.

A field ``name`` is the flag ``--name`` of ``qrprobe <kind>`` and the key ``name`` under ``analyses: <kind>:`` in
a study file, with the same default and help. Fields marked ``cli=False`` exist only in studies (e.g.
``models``, which models of the study to analyse); ``study=False`` only on the command line (e.g. a second
result directory, which a study supplies itself). Deprecated names of earlier releases are declared aliases.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..engine.config import int_at_least, number_in, param, validate
from ..results import HEADLINE


def _positive() -> Any:
    return int_at_least(1)


def _groups(value: Any) -> str | None:
    ok = isinstance(value, list) and value and all(isinstance(v, str) and v.strip() for v in value)
    return None if ok else "one or more concept group names"


def _ks(value: Any) -> str | None:
    ok = (isinstance(value, list) and value
          and all(isinstance(v, int) and not isinstance(v, bool) and v >= 2 for v in value))
    return None if ok else "one or more values of K, each an integer ≥ 2 (e.g. 8,16,32)"


@dataclass(frozen=True)
class Spec:
    """Base of the analysis options: checks every field when built."""

    def __post_init__(self) -> None:
        validate(self)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class PerModelSpec(Spec):
    """Options of an analysis run once per model of a study."""

    models: list[str] | None = param(None, "the study's models to analyse", cli=False, shown="all")


@dataclass(frozen=True)
class CompareSpec(Spec):
    """Options of `compare`: the ranked comparison of several results (Table 2, Fig. 3)."""

    external: str | None = param(None, "external scores: a CSV with a 'model' column and numeric columns "
                                 "(Fig. 3 plots top-1 against the first)", metavar="CSV", file=True, shown="none")
    external_columns: list[str] | None = param(None, "columns of the external table to add",
                                               metavar="NAME,...", shown="all")
    sort_by: str = param("nmi", "metric that ranks the rows (by its chance-corrected counterpart unless --raw)",
                         choices=HEADLINE)
    raw: bool = param(False, "rank, test and correlate by the paper's raw scores instead of the chance-corrected ones",
                      switch=True)


@dataclass(frozen=True)
class BreakdownSpec(PerModelSpec):
    """Options of `breakdown`: cumulative and single concept groups (Fig. 4, Table 3)."""

    order: list[str] | None = param(None, "concept groups in cumulative order",
                                    metavar="G1,G2,...", shown="the concept bank's order")
    label_group: str | None = param(None, "the ground-truth label group (e.g. IN-1k), first in the cumulative "
                                    "steps and the base of the single-group gains", metavar="G", shown="none")
    without_labels: bool = param(True, "also the cumulative steps without the label group")
    metric: str = param("nmi", "metric plotted (the tables list all)", choices=HEADLINE)


_PAIRS = "number of cluster pairs explained"
_PER_PAIR = "concepts listed per pair"
_EXAMPLES = "example images shown per cluster"
_MIN_SUPPORT = "leave out concepts carried by fewer images (0: keep all)"


@dataclass(frozen=True)
class ExplainSpec(PerModelSpec):
    """Options of `explain`: the cluster pairs a result's probe confuses, and why (Fig. 5, 8-11)."""

    versus: str | None = param(None, "result directory of a base concept set (same features, K and seeds): "
                               "explain the pairs whose confusion drops most from it", metavar="BASE",
                               study=False, shown="none")
    explain_groups: list[str] | None = param(None, "explain with these groups' concepts only", metavar="G1,G2",
                                             shown="all concepts; with --versus, the added groups")
    clustering: int = param(0, "which clustering (0 … R-1)", check=int_at_least(0))
    pairs: int = param(6, _PAIRS, check=_positive())
    concepts_per_pair: int = param(12, _PER_PAIR, check=_positive(), aliases=("concepts",))
    examples: int = param(6, _EXAMPLES, check=int_at_least(0))
    min_support: int = param(5, _MIN_SUPPORT, check=int_at_least(0))


@dataclass(frozen=True)
class ExplainGroupsSpec(PerModelSpec):
    """Options of `explain_groups`: the cluster pairs an added concept group disambiguates (Fig. 5)."""

    base: list[str] = param([], "the base concept groups (e.g. Labels)", metavar="G1,G2", check=_groups)
    added: list[str] = param([], "the added concept group(s) whose effect is explained", metavar="G",
                             aliases=("add",), check=_groups)
    all_concepts: bool = param(False, "explain with all concepts, not only the added groups' concepts")
    clustering: int = param(0, "which clustering (seed + clustering)", check=int_at_least(0))
    pairs: int = param(6, _PAIRS, check=_positive())
    concepts_per_pair: int = param(12, _PER_PAIR, check=_positive())
    examples: int = param(6, _EXAMPLES, check=int_at_least(0))
    min_support: int = param(5, _MIN_SUPPORT, check=int_at_least(0))


@dataclass(frozen=True)
class KSweepSpec(PerModelSpec):
    """Options of `ksweep`: the scores as K varies (Fig. 6, 7)."""

    k: list[int] = param([], "the values of K, e.g. 500,1000,2000", metavar="K1,K2,...", check=_ks)
    clusterings: int | None = param(None, "clusterings per K", cli=False, shown="the protocol's",
                                    check=lambda v: None if v is None or (isinstance(v, int) and v >= 1)
                                    else "an integer ≥ 1")


@dataclass(frozen=True)
class TransferSpec(PerModelSpec):
    """Options of `transfer`: a result's quantizer and probe applied to other images (Tables 4, 7)."""

    images: str | None = param(None, "the target images (folder, file list or tar shards); a study extracts and "
                               "labels them like its own images", cli=False, file=True, shown="none")
    labels: str | None = param(None, "ground-truth labels of the target images (for the labels expert)",
                               cli=False, file=True, shown="none")
    drop_groups: list[str] | None = param(None, "concept groups the probes must not use (they are retrained on "
                                          "the source images without them)", metavar="G1,G2",
                                          aliases=("without",), shown="none")
    source_concepts: str | None = param(None, "the source concept bank (needed by --drop-groups)", metavar="DIR",
                                        study=False, shown="none")


@dataclass(frozen=True)
class ForwardProbeSpec(PerModelSpec):
    """Options of `forward_probe`: linear probes features → concept beside the clusters (Fig. 2)."""

    result: str | None = param(None, "result directory on the same images: read each concept out of its "
                               "clusters too", metavar="DIR", study=False, shown="none")
    max_concepts: int = param(200, "probe at most this many (most frequent) concepts", check=_positive())
    min_positives: int = param(5, "skip concepts with fewer positives or negatives", check=_positive())
    test_fraction: float = param(0.2, "held-out share per concept",
                                 check=number_in(0, 1, low_open=True, high_open=True))
    seed: int = param(0, "seed of the held-out draws", check=int_at_least(0))
    c: float = param(1.0, "inverse L2 strength of the logistic regression", check=number_in(0, 1e12, low_open=True),
                     aliases=("C",))


@dataclass(frozen=True)
class SelfLabelsSpec(Spec):
    """Options of `self_labels`: the reverse probe on a given labelling (Table 6)."""

    labels: str | None = param(None, "the labelling: a .npy (N,) or a table with a label column (and image_id)",
                               metavar="FILE", file=True, shown="none")
    label_column: str = param("label", "column of the labels table holding the labels")


@dataclass(frozen=True)
class ConceptsToLabelsSpec(Spec):
    """Options of `concepts_to_labels`: concepts → ground-truth labels (App. D.1)."""

    labels: str | None = param(None, "ground-truth labels: a .npy (N,) or a table with a label column",
                               metavar="FILE", file=True, shown="none")
    label_column: str = param("label", "column of the labels table holding the labels")
    label_group: str | None = param(None, "take the labels from this one-hot concept group (left out of the "
                                    "inputs)", metavar="G", shown="none")
    drop_groups: list[str] | None = param(None, "concept groups left out of the inputs (e.g. objects overlapping "
                                          "the labels)", metavar="G1,G2", aliases=("exclude",), shown="none")


__all__ = ["BreakdownSpec", "CompareSpec", "ConceptsToLabelsSpec", "ExplainGroupsSpec", "ExplainSpec",
           "ForwardProbeSpec", "KSweepSpec", "PerModelSpec", "SelfLabelsSpec", "Spec", "TransferSpec"]
