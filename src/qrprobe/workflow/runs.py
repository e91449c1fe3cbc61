"""The run function of each analysis of the registry (:mod:`qrprobe.workflow.analyses`): its inputs and
options → the library analysis (:mod:`qrprobe.analysis`) → a report section or a Result.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from ..engine.config import ProtocolConfig
from ..errors import QRProbeInputError
from ..report.section import Section
from . import specs
from .analysis_io import AnalysisInputs, AnalysisOutput, required_input


def compare(inputs: AnalysisInputs, spec: specs.CompareSpec, protocol: ProtocolConfig,
             progress: bool) -> AnalysisOutput:
    from ..analysis.compare import read_external
    from ..report.build import display_names
    from .comparison import comparison

    results = inputs.results
    keys = inputs.result_keys or [r.name for r in results]
    names = display_names(results, keys)
    ids = [r.name or key for r, key in zip(results, keys, strict=True)]
    external = read_external(spec.external, spec.external_columns) if spec.external else inputs.external
    section = comparison(results, names, ids, external=external, external_columns=spec.external_columns,
                         sort_by=spec.sort_by, raw=spec.raw)
    return AnalysisOutput(section, printed_tables=len(section.tables()))


def breakdown(inputs: AnalysisInputs, spec: specs.BreakdownSpec, protocol: ProtocolConfig,
               progress: bool) -> AnalysisOutput:
    from ..analysis.breakdown import group_breakdown
    from ..report.sections import breakdown_section

    concepts = required_input(inputs.concepts, "concepts")
    result = group_breakdown(inputs.features, concepts, order=spec.order, label_group=spec.label_group,
                             config=protocol, without_labels=spec.without_labels, name=inputs.name,
                             progress=progress)
    return AnalysisOutput(_titled(breakdown_section(result, metric=spec.metric), inputs.name))


def explain(inputs: AnalysisInputs, spec: specs.ExplainSpec, protocol: ProtocolConfig,
             progress: bool) -> AnalysisOutput:
    from ..analysis.explain import explain_result, explain_results
    from ..report.sections import explanation_section

    kwargs = {"clustering": spec.clustering, "top_pairs": spec.pairs,
              "top_concepts_per_pair": spec.concepts_per_pair, "n_examples": spec.examples,
              "min_support": spec.min_support}
    added = required_input(inputs.result, "a result")
    if inputs.versus is not None:
        expl = explain_results(inputs.versus, added, groups=spec.explain_groups, **kwargs)
    else:
        expl = explain_result(added, **kwargs)
        expl.base_label = inputs.name or added.name
    return AnalysisOutput(_titled(explanation_section(expl), inputs.name))


def explain_groups(inputs: AnalysisInputs, spec: specs.ExplainGroupsSpec, protocol: ProtocolConfig,
                    progress: bool) -> AnalysisOutput:
    from ..analysis.explain import explain_groups
    from ..report.sections import explanation_section

    expl = explain_groups(inputs.features, inputs.concepts, spec.base, spec.added, config=protocol,
                          clustering=spec.clustering, only_added=not spec.all_concepts, top_pairs=spec.pairs,
                          top_concepts_per_pair=spec.concepts_per_pair, n_examples=spec.examples,
                          min_support=spec.min_support, progress=progress)
    # the heading says the purpose (what the added groups explain beyond the base) and the model
    return AnalysisOutput(_titled(explanation_section(expl), inputs.name))


def ksweep(inputs: AnalysisInputs, spec: specs.KSweepSpec, protocol: ProtocolConfig,
            progress: bool) -> AnalysisOutput:
    from ..analysis.ksweep import k_sweep
    from ..report.sections import ksweep_section

    if spec.clusterings is not None:
        protocol = replace(protocol, clusterings=spec.clusterings)
    concepts = required_input(inputs.concepts, "concepts")
    sweep = k_sweep(inputs.features, concepts, spec.k, config=protocol, name=inputs.name, progress=progress)

    def save_results(tmp: Path) -> None:
        for res in sweep.results:
            res.save(tmp / "results" / f"k-{res.config['k']}")

    return AnalysisOutput(_titled(ksweep_section(sweep.table), inputs.name), extra=save_results)


def transfer(inputs: AnalysisInputs, spec: specs.TransferSpec, protocol: ProtocolConfig,
              progress: bool) -> AnalysisOutput:
    from ..analysis.transfer import transfer
    from ..report.sections import transfer_section

    source = required_input(inputs.result, "a result")
    target_concepts = required_input(inputs.target_concepts, "target concepts")
    tr = transfer(source, inputs.target_features, target_concepts, drop_groups=spec.drop_groups or (),
                  source_concepts=inputs.source_concepts, device=protocol.device)
    section = transfer_section(tr, None if spec.drop_groups else source.summary)

    def save_arrays(tmp: Path) -> None:
        np.save(tmp / "clusterings.npy", tr.clusterings)
        np.save(tmp / "predictions.npy", tr.predictions)

    return AnalysisOutput(_titled(section, inputs.name), extra=save_arrays)


def forward_probe(inputs: AnalysisInputs, spec: specs.ForwardProbeSpec, protocol: ProtocolConfig,
                   progress: bool) -> AnalysisOutput:
    from ..analysis.forward_probe import forward_probe
    from ..report.sections import forward_probe_section

    reverse = inputs.result
    clusterings = None
    if reverse is not None:
        if reverse.clusterings is None:
            raise QRProbeInputError("the result was saved without its clusterings")
        clusterings = np.asarray(reverse.clusterings)
        ids = inputs.features.image_ids if inputs.features is not None else None
        if reverse.image_ids is not None and ids is not None:
            order = pd.Index([str(i) for i in reverse.image_ids]).get_indexer([str(i) for i in ids])
            if (order < 0).any():
                raise QRProbeInputError("the result does not cover the images of FEATURES")
            clusterings = clusterings[:, order]
    concepts = required_input(inputs.concepts, "concepts")
    fp = forward_probe(inputs.features, concepts, clusterings=clusterings, max_concepts=spec.max_concepts,
                       min_positives=spec.min_positives, test_fraction=spec.test_fraction, seed=spec.seed, c=spec.c)
    return AnalysisOutput(_titled(forward_probe_section(fp, reverse), inputs.name))


def self_labels(inputs: AnalysisInputs, spec: specs.SelfLabelsSpec, protocol: ProtocolConfig,
                 progress: bool) -> AnalysisOutput:
    from ..analysis.self_labels import read_labels, self_labels

    if spec.labels is None:
        raise QRProbeInputError("self-labels needs the labels file")
    bank = required_input(inputs.concepts, "concepts")
    labels = read_labels(spec.labels, bank.image_ids, column=spec.label_column)
    result = self_labels(labels, bank, repeats=protocol.clusterings, seed=protocol.seed, probe=protocol.probe,
                         test_fraction=protocol.test_fraction, val_fraction=protocol.val_fraction,
                         device=protocol.device, name=inputs.name or Path(spec.labels).stem, source=str(spec.labels),
                         progress=progress)
    return AnalysisOutput(result=result)


def concepts_to_labels(inputs: AnalysisInputs, spec: specs.ConceptsToLabelsSpec, protocol: ProtocolConfig,
                        progress: bool) -> AnalysisOutput:
    from ..analysis.concepts_to_labels import concepts_to_labels
    from ..analysis.self_labels import read_labels

    if (spec.labels is None) == (spec.label_group is None):
        raise QRProbeInputError("give exactly one of labels (a file) and label_group (a concept group)")
    bank = required_input(inputs.concepts, "concepts")
    labels = read_labels(spec.labels, bank.image_ids, column=spec.label_column) if spec.labels else None
    result = concepts_to_labels(bank, labels, label_group=spec.label_group, exclude_groups=spec.drop_groups or (),
                                repeats=protocol.clusterings, seed=protocol.seed, probe=protocol.probe,
                                test_fraction=protocol.test_fraction, val_fraction=protocol.val_fraction,
                                device=protocol.device, name=inputs.name or "concepts → labels", progress=progress)
    return AnalysisOutput(result=result)


def _titled(section: Section, name: str) -> Section:
    """Add the representation's name to a section's title (once)."""
    if name and name not in section.title:
        section.title = f"{section.title} — {name}"
    return section
