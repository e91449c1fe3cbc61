"""``qrprobe evaluate FEATURES CONCEPTS``: score one representation by quantized reverse probing."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import QRProbeInputError
from ..results import markdown_table, statistics_lines
from .options import (
    add_concept_arguments,
    add_output,
    add_protocol_arguments,
    add_quiet,
    check_output,
    protocol_from_args,
)

HELP = "quantize features with K-means and score how well concepts predict the clusters"
DESCRIPTION = """\
Quantized reverse probing of one representation (Laina et al., ICLR 2022, Sec. 3):
standardize FEATURES, cluster them with K-means (K clusters, several seeds), split each clustering 80/20
(stratified; 20% of train for validation), train a linear probe from the binary CONCEPTS of an image to its
cluster, and score it on the test split: NMI, AMI, top-1, mAP (×100) and the mutual-information estimate
H(cluster) − CE in bits. Defaults are the paper's protocol. Each score comes with its 95% interval (bootstrap
over test images and clustering seeds), its chance level (the probe on concepts shuffled across images) and
a baseline that needs no probe; see docs/statistics.md.

FEATURES  a .npy array (N x D) or a feature-store directory (`qrprobe extract`).
CONCEPTS  a concept-bank directory (`qrprobe label`), a long table image_id,concept[,group] (.csv/.tsv/.parquet),
          or a dense 0/1 .npy (N x M) with --concept-names.
Rows are matched by image_id when both inputs have ids, else by position."""


def load_inputs(args: argparse.Namespace):
    """Read FEATURES and CONCEPTS (with group selection); every input error is raised before any work."""
    from ..engine.inputs import load_concepts, load_features

    feats = load_features(args.features)
    bank = load_concepts(args.concepts, concept_names=args.concept_names, image_ids=feats.image_ids,
                         n_images=feats.array.shape[0])
    return feats, select_groups_from_args(bank, args)


def select_groups_from_args(bank, args: argparse.Namespace):
    """Apply ``--groups`` and ``--drop-groups`` to a ConceptBank (unknown group names are an error)."""
    if args.groups:
        bank = bank.select_groups(args.groups)
    if args.drop_groups:
        bank = bank.drop_groups(args.drop_groups)
    return bank


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("evaluate", help=HELP, description=DESCRIPTION,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("features", metavar="FEATURES", help=".npy (N x D) or feature-store directory")
    parser.add_argument("concepts", metavar="CONCEPTS", help="concept-bank directory, long table or dense .npy")
    add_output(parser, "result directory: results.json, results.md and the arrays for later analyses")
    parser.add_argument("--name", default="", help="name of the representation in tables [default: the model]")
    add_quiet(parser)
    parser.add_argument("--compare-solver", choices=("sgd", "lbfgs"), default=None, metavar="SOLVER",
                        help="also probe the same clusterings with this solver (sgd, lbfgs) and show both side by "
                             "side; its result is saved in OUT/solver-SOLVER/ [default: off]")
    add_concept_arguments(parser)
    add_protocol_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..engine.evaluate import evaluate

    config = protocol_from_args(args)
    if args.compare_solver is not None and args.compare_solver == config.probe.solver:
        other = "lbfgs" if args.compare_solver == "sgd" else "sgd"
        raise QRProbeInputError(f"--compare-solver {args.compare_solver}: the protocol's solver is already "
                                f"{config.probe.solver}; compare with {other}, or pass --solver {other}")
    out = check_output(args, kind="qrprobe.result", inputs={
        "FEATURES": args.features, "CONCEPTS": args.concepts, "--concept-names": args.concept_names})
    feats, bank = load_inputs(args)
    others = []
    if args.compare_solver is None:
        result = evaluate(feats, bank, config, name=args.name, progress=not args.quiet)
    else:
        result, other = _with_other_solver(feats, bank, config, args.compare_solver, args.name, not args.quiet)
        others.append(other)
    table = markdown_table([result, *others], intervals=True)
    lines = statistics_lines(result)
    if lines:
        table += "\n\n" + "\n".join(f"- {line}" for line in lines)

    def add_markdown(tmp: Path) -> None:
        (tmp / "results.md").write_text(table + "\n", encoding="utf-8")
        for other in others:
            other.save(tmp / f"solver-{other.config['probe']['solver']}")

    result.save(out, overwrite=args.overwrite, extra=add_markdown)
    print(table)
    if not args.quiet:
        spent = ", ".join(f"{stage} {seconds:.1f} s" for stage, seconds in result.timings.items())
        print(f"\ntime: {spent}", file=sys.stderr)
    print(f"\nresults: {out / 'results.json'}", file=sys.stderr)
    return 0


def _with_other_solver(feats, bank, config, solver: str, name: str, progress: bool):
    """The result of ``config`` and that of the same clusterings probed with ``solver`` (one quantization)."""
    import time
    from dataclasses import replace

    from ..engine.evaluate import evaluate
    from ..engine.protocol import prepare_inputs, quantize

    start = time.perf_counter()
    quant = quantize(prepare_inputs(feats, bank).features, config, progress)
    seconds = time.perf_counter() - start
    result = evaluate(None, bank, quantization=quant, name=name, progress=progress)
    other_config = replace(config, probe=replace(config.probe, solver=solver))
    other = evaluate(None, bank, quantization=replace(quant, config=other_config),
                     name=f"{result.name} (solver {solver})", progress=progress)
    for res in (result, other):
        res.timings = {"quantize": round(seconds, 3), **res.timings,
                       "total": round(res.timings.get("total", 0.0) + seconds, 3)}
    return result, other
