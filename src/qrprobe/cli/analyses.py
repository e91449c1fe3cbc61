"""The analysis sub-commands, one per entry of the analysis registry (``qrprobe.workflow.analyses``).

Each sub-command's positional inputs follow the entry's ``needs``, its options are generated from the entry's
options dataclass, and the protocol flags are added where the protocol applies. All of them write an analysis
directory (``section.json`` with tables in CSV/JSON/Markdown/LaTeX and figures in PNG/PDF, for
``qrprobe report``) or, for ``self-labels`` and ``concepts-to-labels``, a result directory.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..workflow.analyses import ANALYSES, AnalysisInputs, AnalysisKind, run_analysis
from .evaluate import load_inputs
from .options import (
    add_concept_arguments,
    add_config_arguments,
    add_deprecated_flag,
    add_device,
    add_output,
    add_protocol_arguments,
    add_quiet,
    check_output,
    config_from_args,
    protocol_from_args,
)

_POSITIONAL_SPEC = {"labels"}  # spec fields given as a positional argument (self-labels' LABELS)
# every argument that names an input file or directory, and how messages call it
_INPUT_ARGS = {"results": "RESULT", "result": "RESULT", "labels": "LABELS", "features": "FEATURES",
               "concepts": "CONCEPTS", "concept_names": "--concept-names", "versus": "--versus",
               "source_concepts": "--source-concepts", "external": "--external"}


def _add_inputs(parser: argparse.ArgumentParser, kind: AnalysisKind) -> None:
    needs = kind.needs
    if "results" in needs:
        parser.add_argument("results", nargs="+", metavar="RESULT", help="result directories (qrprobe evaluate)")
    if "result" in needs:
        parser.add_argument("result", metavar="RESULT", help="result directory (with its arrays)")
    if "labels" in needs:
        parser.add_argument("labels", metavar="LABELS", help=".npy (N,) or a table with a label column")
    if "features" in needs or "target" in needs:
        what = "target " if "target" in needs else ""
        parser.add_argument("features", metavar="FEATURES", help=f"{what}features: .npy (N x D) or feature store")
    if "concepts" in needs or "target" in needs:
        parser.add_argument("concepts", metavar="CONCEPTS",
                            help="concept-bank directory, long table (.csv/.tsv/.parquet) or dense .npy")
        if "target" in needs or kind.name == "concepts-to-labels":
            parser.add_argument("--concept-names", metavar="FILE",
                                help="names of a dense .npy concept matrix: one 'group<TAB>name' a line")
        else:
            add_concept_arguments(parser)
    if "features" in needs:
        parser.add_argument("--name", default="", help="name of the representation in tables [default: the model]")
    elif kind.writes_result:
        parser.add_argument("--name", default="", help="name in tables [default: the labels' file name]")


def add_analysis_parser(subparsers, kind: AnalysisKind) -> argparse.ArgumentParser:
    """Register the sub-command of one registry entry."""
    parser = subparsers.add_parser(kind.name, help=kind.help, description=f"{kind.help}.\n\n{kind.description}",
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_inputs(parser, kind)
    add_output(parser, "result directory" if kind.writes_result else "analysis directory")
    options = parser.add_argument_group(f"{kind.name} options")
    skip = _POSITIONAL_SPEC if "labels" in kind.needs else set()
    add_config_arguments(options, kind.spec, skip=skip)
    if kind.protocol == "kmeans":
        add_protocol_arguments(parser, skip=kind.protocol_skip)
    elif kind.protocol == "probe":
        add_protocol_arguments(parser, quantization=False)
        add_deprecated_flag(parser, "--repeats", "--clusterings", "clusterings", type=int)
    else:
        add_device(parser)
    add_quiet(parser)
    parser.set_defaults(func=lambda args: run(kind, args))
    return parser


def _inputs_from_args(kind: AnalysisKind, args: argparse.Namespace) -> AnalysisInputs:
    from ..results import Result

    inputs = AnalysisInputs(name=getattr(args, "name", "") or "")
    if "results" in kind.needs:
        inputs.results = [Result.load(p) for p in args.results]
        inputs.result_keys = [Path(p).name for p in args.results]
    if "result" in kind.needs:
        inputs.result = Result.load(args.result)
        inputs.name = inputs.name or inputs.result.name or Path(args.result).name
        if getattr(args, "versus", None):
            inputs.versus = Result.load(args.versus)
        if getattr(args, "source_concepts", None):
            from ..engine.inputs import load_concepts

            inputs.source_concepts = load_concepts(args.source_concepts)
    if "features" in kind.needs:
        inputs.features, inputs.concepts = load_inputs(args)
        if getattr(args, "result", None) and kind.name == "forward-probe":
            inputs.result = Result.load(args.result)
    elif "target" in kind.needs:
        from ..engine.inputs import load_concepts, load_features

        inputs.target_features = load_features(args.features)
        inputs.target_concepts = load_concepts(args.concepts, concept_names=args.concept_names,
                                               image_ids=inputs.target_features.image_ids,
                                               n_images=inputs.target_features.array.shape[0])
    elif "concepts" in kind.needs:
        from ..engine.inputs import load_concepts
        from .evaluate import select_groups_from_args

        bank = load_concepts(args.concepts, concept_names=getattr(args, "concept_names", None))
        inputs.concepts = select_groups_from_args(bank, args) if hasattr(args, "groups") else bank
    return inputs


def run(kind: AnalysisKind, args: argparse.Namespace) -> int:
    """Check every argument, read the inputs, run the analysis and write its directory."""
    kinds = "qrprobe.result" if kind.writes_result else "qrprobe.report-section"
    out = check_output(args, kind=kinds, inputs={label: getattr(args, attr) for attr, label in _INPUT_ARGS.items()
                                                 if getattr(args, attr, None) is not None})
    fixed = {"labels": args.labels} if "labels" in kind.needs else {}
    spec = config_from_args(kind.spec, args, **fixed)
    protocol = protocol_from_args(args, skip=kind.protocol_skip)
    inputs = _inputs_from_args(kind, args)
    output = run_analysis(kind, inputs, spec, protocol, progress=not args.quiet)
    output.save(out, overwrite=args.overwrite)
    if not args.quiet:  # --quiet: nothing printed on success (warnings and errors still are)
        print(output.markdown())
        print(f"written: {out}", file=sys.stderr)
    return 0


def add_parser(subparsers) -> None:
    """Register every analysis sub-command of the registry."""
    for kind in ANALYSES.values():
        add_analysis_parser(subparsers, kind)
