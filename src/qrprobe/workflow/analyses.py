"""The analysis registry: each analysis of the paper as (name, options, inputs, run → output).

The CLI (``qrprobe <kind> …``, one sub-command per entry, flags generated from its options) and the study
runner (``analyses: <kind>: {…}``, keys generated from the same options) both dispatch through
:func:`run_analysis`; neither knows an analysis by name. An entry says which inputs it reads
(:class:`AnalysisInputs`), which part of the protocol applies (K-means and probe, probe only, or none), and
whether it writes a report section (an analysis directory) or a result directory (self-labels, concepts →
labels, which rank beside K-means results).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..concepts.bank import ConceptBank
from ..engine.config import ProtocolConfig
from ..engine.inputs import Features
from ..errors import QRProbeInputError
from ..progress import scope
from ..results import Result
from . import runs, specs
from .analysis_io import AnalysisInputs, AnalysisOutput, model_name, required_input

Run = Callable[[AnalysisInputs, Any, ProtocolConfig, bool], AnalysisOutput]


@dataclass(frozen=True)
class AnalysisKind:
    """One analysis: its CLI sub-command / study key, options, inputs and run function.

    ``needs``: the inputs, among ``features``, ``concepts`` (with group selection), ``result``, ``results``,
    ``target`` (features and concepts of other images) and ``labels`` (a labelling file, positional on the
    command line). ``protocol``: ``"kmeans"`` (the whole protocol applies), ``"probe"`` (repetitions, split
    and probe only) or ``None`` (only the device). ``per_model``: a study runs it once per model.
    """

    name: str
    help: str
    description: str
    spec: type
    needs: tuple[str, ...]
    protocol: str | None
    run: Run
    per_model: bool = True
    protocol_skip: tuple[str, ...] = ()  # protocol fields the analysis sets itself (a K sweep's K)

    @property
    def key(self) -> str:
        """The study-file key: the name with ``_`` for ``-``."""
        return self.name.replace("-", "_")

    @property
    def writes_result(self) -> bool:
        return self.spec in (specs.SelfLabelsSpec, specs.ConceptsToLabelsSpec)


# ------------------------------------------------------------------------------------------------ registry
ANALYSES: dict[str, AnalysisKind] = {k.name: k for k in (
    AnalysisKind("compare", "rank several results (paper Table 2) and correlate with an external score",
                 "Ranked table of mean ± std and 95% intervals of NMI, AMI, top-1, mAP and MI over several result\n"
                 "directories, with optional external columns (a CSV with a 'model' column) and the Fig. 3 scatter\n"
                 "of top-1 against the first external column; then, for each pair of neighbours in the ranking,\n"
                 "the paired difference with its interval and p-value (results on the same images and concepts),\n"
                 "Kendall's tau between the metrics' rankings, and each result's chance levels and baselines.",
                 specs.CompareSpec, ("results",), None, runs.compare, per_model=False),
    AnalysisKind("breakdown", "scores of cumulative and single concept groups (paper Fig. 4, Table 3)",
                 "Quantize FEATURES once, then train one probe per concept-group combination on the same\n"
                 "clusterings: the groups accumulated in --order (with the --label-group first, and without it),\n"
                 "and each group added alone on top of the label group (ΔNMI etc., paired over clusterings).",
                 specs.BreakdownSpec, ("features", "concepts"), "kmeans", runs.breakdown),
    AnalysisKind("explain", "explain confused cluster pairs of a result (paper Fig. 5, 8-11)",
                 "Pairs of clusters that a result's probe confuses most on the test split, the concepts whose\n"
                 "coefficients differ most between them (signed: which cluster each favours), word clouds,\n"
                 "thumbnails from both clusters (when the result records image paths) and per-cluster summaries.\n"
                 "With --versus BASE (a result on the same features, K and seeds, with fewer concept groups):\n"
                 "the pairs whose confusion drops most from BASE to RESULT, explained by the added groups.",
                 specs.ExplainSpec, ("result",), None, runs.explain),
    AnalysisKind("explain-groups", "which cluster pairs an added concept group disambiguates (paper Fig. 5)",
                 "Quantize FEATURES (one clustering), train a probe on the --base groups and one on base +\n"
                 "--added groups, and explain the cluster pairs whose test confusion drops most.",
                 specs.ExplainGroupsSpec, ("features", "concepts"), "kmeans", runs.explain_groups),
    AnalysisKind("ksweep", "scores and MI as the number of clusters K varies (paper Fig. 6, 7)",
                 "Run the protocol at every K of --k (e.g. 500,1000,2000) and tabulate/plot MI (bits), NMI, AMI\n"
                 "and top-1 against K. Each K's result directory is kept under OUT/results/k-K/.",
                 specs.KSweepSpec, ("features", "concepts"), "kmeans", runs.ksweep, protocol_skip=("k",)),
    AnalysisKind("transfer", "apply a result's quantizer and probe to other images (paper Tables 4, 7)",
                 "Standardize the target FEATURES with the result's statistics, assign them to its centroids,\n"
                 "predict their clusters from the target CONCEPTS with its probes (no retraining; concepts matched\n"
                 "by name, absent ones fed as 0) and score. --drop-groups G retrains the source probes without the\n"
                 "groups G (needs --source-concepts, the source concept bank).",
                 specs.TransferSpec, ("result", "target"), None, runs.transfer),
    AnalysisKind("forward-probe", "forward linear probes features → concept, beside the clusters (paper Fig. 2)",
                 "Train one linear classifier per concept from the standardized FEATURES (balanced accuracy, AP)\n"
                 "and, with --result (same images), read each concept out of that result's clusters: a concept\n"
                 "the clusters capture but a linear probe does not has a large positive gap.",
                 specs.ForwardProbeSpec, ("features", "concepts"), None, runs.forward_probe),
    AnalysisKind("self-labels", "reverse-probe a given labelling instead of K-means (paper Table 6)",
                 "Train and score the reverse probe on LABELS (e.g. a self-labelling model's pseudo-labels): a\n"
                 "1-D .npy, or a table with a label column (and image_id to match the concept rows). Writes a\n"
                 "result directory, comparable with K-means results in `qrprobe compare` / `qrprobe report`.",
                 specs.SelfLabelsSpec, ("labels", "concepts"), "probe", runs.self_labels, per_model=False),
    AnalysisKind("concepts-to-labels", "how well the concepts predict ground-truth labels (App. D.1)",
                 "Train the reverse probe to predict each image's ground-truth label from its concepts. Labels\n"
                 "come from --labels FILE or from a one-hot --label-group of CONCEPTS (then left out of the\n"
                 "inputs); --drop-groups G1,G2 leaves out further groups (e.g. objects overlapping the labels).",
                 specs.ConceptsToLabelsSpec, ("concepts",), "probe", runs.concepts_to_labels, per_model=False),
)}


def analysis_kind(name: str) -> AnalysisKind:
    """The registry entry of ``name`` (CLI spelling or study key)."""
    kind = ANALYSES.get(name) or ANALYSES.get(name.replace("_", "-"))
    if kind is None:
        raise QRProbeInputError(f"unknown analysis {name!r}; analyses are {', '.join(ANALYSES)}")
    return kind


def run_analysis(kind: str | AnalysisKind, inputs: AnalysisInputs, spec: Any = None,
                 protocol: ProtocolConfig | None = None, progress: bool = False) -> AnalysisOutput:
    """Run one analysis; ``spec`` defaults to the kind's default options, ``protocol`` to the paper's."""
    entry = kind if isinstance(kind, AnalysisKind) else analysis_kind(kind)
    spec = spec if spec is not None else entry.spec()
    if not isinstance(spec, entry.spec):
        raise TypeError(f"{entry.name}: expected {entry.spec.__name__} options, got {type(spec).__name__}")
    with scope(inputs.name):  # every progress line of the analysis names its representation
        return entry.run(inputs, spec, protocol or ProtocolConfig(), progress)


def analyze(kind: str, data: Any = None, /, *, features: Any = None, concepts: Any = None, result: Any = None,
            results: Any = None, target_features: Any = None, target_concepts: Any = None, name: str = "",
            config: ProtocolConfig | None = None, progress: bool = False, **params: Any) -> AnalysisOutput:
    """Run one analysis from Python, with paths or objects alike.

    ``features`` / ``target_features``: an array, a FeatureStore or a path; ``concepts`` / ``target_concepts``:
    a ConceptBank or a path; ``result``: a Result or a result directory; ``results``: a list of those (named
    by their ``name``, else their features' model, else their directory). ``data``, the one positional input,
    is the analysis' first input: ``analyze("compare", [r1, r2])``, ``analyze("explain", result)``.
    ``params``: the analysis' options (``qrprobe <kind> --help``) and, where the protocol applies, protocol
    parameters (``k=50, clusterings=3``) — or a whole ``config``.

    Examples
    --------
    >>> out = qrprobe.analyze("breakdown", features="feats/", concepts="concepts/", label_group="Labels",
    ...                       k=50, clusterings=3)                                   # doctest: +SKIP
    >>> out.section.tables()[0].data                                                # doctest: +SKIP
    """
    from ..engine.evaluate import protocol_config
    from ..engine.inputs import Features, load_concepts, load_features

    entry = analysis_kind(kind)
    if data is not None:
        first = entry.needs[0] if entry.needs else ""
        given = {"features": features, "concepts": concepts, "result": result, "results": results}
        if first not in given:
            raise TypeError(f"analyze({kind!r}, …): pass its inputs by name ({', '.join(entry.needs)})")
        if given[first] is not None:
            raise TypeError(f"analyze({kind!r}, …): {first} given twice (positionally and as {first}=)")
        features, concepts, result, results = ({**given, first: data}[k] for k in given)
    spec_names = {f.name for f in dataclasses.fields(entry.spec)}
    spec = entry.spec(**{k: v for k, v in params.items() if k in spec_names})
    protocol = protocol_config(config, {k: v for k, v in params.items() if k not in spec_names})

    def feats_of(value: Any) -> Features | None:
        return None if value is None or isinstance(value, Features) else load_features(value)

    def bank_of(value: Any, feats: Features | None) -> ConceptBank | None:
        if value is None or isinstance(value, ConceptBank):
            return value
        return load_concepts(value, image_ids=None if feats is None else feats.image_ids,
                             n_images=None if feats is None else feats.array.shape[0])

    def result_of(value: Any) -> Result | None:
        return value if value is None or isinstance(value, Result) else Result.load(value)

    inputs = AnalysisInputs(name=name)
    inputs.features = feats_of(features)
    inputs.concepts = bank_of(concepts, inputs.features)
    inputs.result = result_of(result)
    if results is not None:
        inputs.results = [required_input(result_of(r), "every entry of results to be a result") for r in results]
        inputs.result_keys = [Path(r).name if not isinstance(r, Result) else (model_name(r) or f"result {i + 1}")
                              for i, r in enumerate(results)]
    inputs.target_features = feats_of(target_features)
    inputs.target_concepts = bank_of(target_concepts, inputs.target_features)
    if "target" in entry.needs and inputs.result is not None and inputs.concepts is not None:
        inputs.source_concepts = inputs.concepts
    return run_analysis(entry, inputs, spec, protocol, progress)


__all__ = ["ANALYSES", "AnalysisInputs", "AnalysisKind", "AnalysisOutput", "analysis_kind", "analyze",
           "run_analysis"]
