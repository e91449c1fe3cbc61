"""The analysis commands: each runs one analysis of the paper and writes its output directory.

``compare``, ``breakdown``, ``explain``, ``explain-groups``, ``ksweep``, ``transfer`` and ``forward-probe``
write an analysis directory (``section.json`` with tables in CSV/JSON/Markdown/LaTeX and figures in PNG/PDF)
that ``qrprobe report`` can include; ``self-labels`` and ``concepts-to-labels`` write a result directory, like
``qrprobe evaluate``, so they can be compared with K-means results.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import QRProbeInputError
from .evaluate import add_concept_arguments, load_inputs, select_groups_from_args
from .options import add_protocol_arguments, protocol_from_args


def _names(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def _parser(subparsers, name: str, help_text: str, description: str, func) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(name, help=help_text, description=description,
                                   formatter_class=argparse.RawDescriptionHelpFormatter,
                                   conflict_handler="resolve")
    parser.set_defaults(func=func)
    return parser


def _add_output(parser: argparse.ArgumentParser, what: str = "analysis directory") -> None:
    parser.add_argument("-o", "--out", required=True, metavar="DIR", help=f"the {what} to write")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output directory")


def _add_inputs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("features", metavar="FEATURES", help=".npy (N x D) or feature-store directory")
    parser.add_argument("concepts", metavar="CONCEPTS", help="concept-bank directory, long table or dense .npy")
    add_concept_arguments(parser)


def _add_probe_arguments(parser: argparse.ArgumentParser) -> None:
    """Repetition, split and probe flags (for commands that probe a given labelling: no K-means)."""
    add_protocol_arguments(parser, quantization=False)
    parser.add_argument("--repeats", type=int, dest="clusterings", default=argparse.SUPPRESS,
                        help="deprecated spelling of --clusterings")


def _check_out(args: argparse.Namespace) -> Path:
    out = Path(args.out)
    if out.exists() and not args.overwrite and (not out.is_dir() or any(out.iterdir())):
        raise QRProbeInputError(f"--out {str(out)!r} already exists and is not empty (pass --overwrite)")
    return out


def _done(out: Path, markdown: str = "") -> int:
    if markdown:
        print(markdown)
    print(f"written: {out}", file=sys.stderr)
    return 0


def _load_results(paths):
    from ..results import Result

    return [Result.load(p) for p in paths]


# ---------------------------------------------------------------------- compare
def _run_compare(args: argparse.Namespace) -> int:
    from ..analysis.compare import compare_results, fit_line, read_external
    from ..report.build import display_names
    from ..report.sections import comparison_section

    out = _check_out(args)
    results = _load_results(args.results)
    names = display_names(results, [Path(p).name for p in args.results])
    keys = [r.name or Path(p).name for r, p in zip(results, args.results, strict=True)]
    external = read_external(args.external, args.external_columns) if args.external else None
    table = compare_results(results, names, external=external, external_columns=args.external_columns,
                            keys=keys, sort_by=args.sort_by)
    fit = x_column = None
    if external is not None:
        extra = [c for c in table.columns if c not in compare_results(results, names).columns]
        if extra:
            x_column = extra[0]
            fit = fit_line(table, x_column, "top1_mean")
    section = comparison_section(table, fit=fit, x_column=x_column)
    section.save(out, overwrite=args.overwrite)
    return _done(out, section.tables()[0].to_markdown())


def _add_compare(subparsers) -> None:
    p = _parser(subparsers, "compare", "rank several results (paper Table 2) and correlate with an external score",
                "Ranked table of mean ± std NMI, AMI, top-1, mAP and MI over several result directories, with\n"
                "optional external columns (--external CSV with a 'model' column) and the Fig. 3 scatter of\n"
                "top-1 against the first external column.", _run_compare)
    p.add_argument("results", nargs="+", metavar="RESULT", help="result directories (qrprobe evaluate)")
    p.add_argument("--external", metavar="CSV", help="external scores: a 'model' column and numeric columns")
    p.add_argument("--external-column", action="append", dest="external_columns", metavar="NAME",
                   help="column of --external to add (repeatable; default: all)")
    p.add_argument("--sort-by", default="nmi", help="metric that ranks the rows (default: nmi)")
    _add_output(p)


# ---------------------------------------------------------------------- breakdown
def _run_breakdown(args: argparse.Namespace) -> int:
    from ..analysis.breakdown import group_breakdown
    from ..report.sections import breakdown_section

    out = _check_out(args)
    config = protocol_from_args(args)
    feats, bank = load_inputs(args)
    result = group_breakdown(feats, bank, order=args.order, label_group=args.label_group, config=config,
                             without_labels=not args.no_without_labels, name=args.name, progress=not args.quiet)
    section = breakdown_section(result, metric=args.metric)
    section.save(out, overwrite=args.overwrite)
    return _done(out, "\n".join(t.to_markdown() for t in section.tables()))


def _add_breakdown(subparsers) -> None:
    p = _parser(subparsers, "breakdown", "scores of cumulative and single concept groups (paper Fig. 4, Table 3)",
                "Quantize FEATURES once, then train one probe per concept-group combination on the same\n"
                "clusterings: the groups accumulated in --order (with the --label-group first, and without it),\n"
                "and each group added alone on top of the label group (ΔNMI etc., paired over clusterings).",
                _run_breakdown)
    _add_inputs(p)
    p.add_argument("--order", type=_names, metavar="G1,G2,...",
                   help="groups in cumulative order (default: the order of the concept bank)")
    p.add_argument("--label-group", metavar="G", help="the ground-truth label group (e.g. IN-1k)")
    p.add_argument("--no-without-labels", action="store_true",
                   help="skip the cumulative steps without the label group")
    p.add_argument("--metric", default="nmi", choices=("nmi", "ami", "top1", "map", "mi_bits"),
                   help="metric plotted (tables list all)")
    p.add_argument("--name", default="", help="name of the representation")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_output(p)
    add_protocol_arguments(p)


# ---------------------------------------------------------------------- explain (from results)
def _run_explain(args: argparse.Namespace) -> int:
    from ..analysis.explain import explain_result, explain_results
    from ..report.sections import explanation_section
    from ..results import Result

    out = _check_out(args)
    added = Result.load(args.result)
    kwargs = {"clustering": args.clustering, "top_pairs": args.pairs, "top_concepts_per_pair": args.concepts,
              "n_examples": args.examples}
    if args.versus:
        expl = explain_results(Result.load(args.versus), added, groups=args.explain_groups, **kwargs)
    else:
        expl = explain_result(added, **kwargs)
        expl.base_label = added.name or Path(args.result).name
    section = explanation_section(expl)
    section.save(out, overwrite=args.overwrite)
    return _done(out, section.tables()[0].to_markdown())


def _add_explain(subparsers) -> None:
    p = _parser(subparsers, "explain", "explain confused cluster pairs of a result (paper Fig. 5, 8-11)",
                "Pairs of clusters that a result's probe confuses most on the test split, the concepts whose\n"
                "coefficients differ most between them (signed: which cluster each favours), word clouds,\n"
                "thumbnails from both clusters (when the result records image paths) and per-cluster summaries.\n"
                "With --versus BASE (a result on the same features, K and seed, with fewer concept groups): the\n"
                "pairs whose confusion drops most from BASE to RESULT, explained by the added groups.",
                _run_explain)
    p.add_argument("result", metavar="RESULT", help="result directory (with arrays)")
    p.add_argument("--versus", metavar="BASE", help="result directory of the base concept set")
    p.add_argument("--explain-groups", type=_names, metavar="G1,G2",
                   help="explain with these groups' concepts only (default with --versus: the added groups)")
    p.add_argument("--clustering", type=int, default=0, help="which clustering (0 … R-1)")
    p.add_argument("--pairs", type=int, default=6, help="number of cluster pairs")
    p.add_argument("--concepts", type=int, default=12, help="concepts listed per pair")
    p.add_argument("--examples", type=int, default=6, help="example images per cluster")
    _add_output(p)


# ---------------------------------------------------------------------- explain-groups (from inputs)
def _run_explain_groups(args: argparse.Namespace) -> int:
    from ..analysis.explain import explain_groups
    from ..report.sections import explanation_section

    out = _check_out(args)
    config = protocol_from_args(args)
    feats, bank = load_inputs(args)
    expl = explain_groups(feats, bank, args.base, args.add, config=config, clustering=args.clustering,
                          only_added=not args.all_concepts, top_pairs=args.pairs,
                          top_concepts_per_pair=args.concepts_per_pair, n_examples=args.examples,
                          progress=not args.quiet)
    section = explanation_section(expl)
    section.save(out, overwrite=args.overwrite)
    return _done(out, section.tables()[0].to_markdown())


def _add_explain_groups(subparsers) -> None:
    p = _parser(subparsers, "explain-groups", "which cluster pairs an added concept group disambiguates",
                "Quantize FEATURES (one clustering), train a probe on the --base groups and one on base +\n"
                "--add groups, and explain the cluster pairs whose test confusion drops most (paper Fig. 5).",
                _run_explain_groups)
    _add_inputs(p)
    p.add_argument("--base", type=_names, required=True, metavar="G1,G2", help="base concept groups")
    p.add_argument("--add", type=_names, required=True, metavar="G", help="the added concept group(s)")
    p.add_argument("--all-concepts", action="store_true",
                   help="explain with all concepts (default: the added groups' concepts only)")
    p.add_argument("--clustering", type=int, default=0, help="which clustering (seed + clustering)")
    p.add_argument("--pairs", type=int, default=6, help="number of cluster pairs")
    p.add_argument("--concepts-per-pair", type=int, default=12, help="concepts listed per pair")
    p.add_argument("--examples", type=int, default=6, help="example images per cluster")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_output(p)
    add_protocol_arguments(p)


# ---------------------------------------------------------------------- ksweep
def _run_ksweep(args: argparse.Namespace) -> int:
    from ..analysis.ksweep import k_sweep, parse_ks
    from ..report.sections import ksweep_section

    out = _check_out(args)
    ks = parse_ks(args.k)
    args.k = ks[0]
    config = protocol_from_args(args)
    feats, bank = load_inputs(args)
    sweep = k_sweep(feats, bank, ks, config=config, name=args.name, progress=not args.quiet)
    section = ksweep_section(sweep.table)

    def save_results(tmp: Path) -> None:
        for res in sweep.results:
            res.save(tmp / "results" / f"k-{res.config['k']}")

    section.save(out, overwrite=args.overwrite, extra=save_results)
    return _done(out, section.tables()[0].to_markdown())


def _add_ksweep(subparsers) -> None:
    p = _parser(subparsers, "ksweep", "scores and MI as the number of clusters K varies (paper Fig. 6, 7)",
                "Run the protocol at every K of --k (e.g. 500,1000,2000) and tabulate/plot MI (bits), NMI, AMI\n"
                "and top-1 against K. Each K's result directory is kept under OUT/results/k-K/ (give several\n"
                "models' result directories to `qrprobe report` to draw one curve per model).", _run_ksweep)
    _add_inputs(p)
    p.add_argument("--name", default="", help="name of the representation (the curve's label)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_output(p)
    add_protocol_arguments(p)
    p.add_argument("--k", required=True, metavar="K1,K2,...", help="the values of K, comma-separated")


# ---------------------------------------------------------------------- transfer
def _run_transfer(args: argparse.Namespace) -> int:
    import numpy as np

    from ..analysis.transfer import transfer
    from ..engine.inputs import load_concepts, load_features
    from ..report.sections import transfer_section
    from ..results import Result

    out = _check_out(args)
    result = Result.load(args.result)
    feats = load_features(args.features)
    bank = load_concepts(args.concepts, concept_names=args.concept_names, image_ids=feats.image_ids,
                         n_images=feats.array.shape[0])
    source = load_concepts(args.source_concepts) if args.source_concepts else None
    tr = transfer(result, feats, bank, drop_groups=args.without or (), source_concepts=source, device=args.device)
    section = transfer_section(tr, None if args.without else result.summary)

    def save_arrays(tmp: Path) -> None:
        np.save(tmp / "clusterings.npy", tr.clusterings)
        np.save(tmp / "predictions.npy", tr.predictions)

    section.save(out, overwrite=args.overwrite, extra=save_arrays)
    return _done(out, section.tables()[0].to_markdown())


def _add_transfer(subparsers) -> None:
    p = _parser(subparsers, "transfer", "apply a result's quantizer and probe to other images (paper Table 7)",
                "Standardize the target FEATURES with the result's statistics, assign them to its centroids,\n"
                "predict their clusters from the target CONCEPTS with its probes (no retraining; concepts matched\n"
                "by name, absent ones fed as 0) and score. --without G retrains the source probes without the\n"
                "groups G (needs --source-concepts, the source concept bank).", _run_transfer)
    p.add_argument("result", metavar="RESULT", help="source result directory (with arrays)")
    p.add_argument("features", metavar="FEATURES", help="target features: .npy or feature-store directory")
    p.add_argument("concepts", metavar="CONCEPTS", help="target concepts")
    p.add_argument("--concept-names", metavar="FILE", help="names of a dense .npy concept matrix")
    p.add_argument("--without", type=_names, metavar="G1,G2", help="concept groups the probes must not use")
    p.add_argument("--source-concepts", metavar="DIR", help="the source concept bank (needed by --without)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    _add_output(p)


# ---------------------------------------------------------------------- self-labels / concepts-to-labels
def _save_result(result, out: Path, overwrite: bool) -> int:
    from ..results import markdown_table

    table = markdown_table([result])
    result.save(out, overwrite=overwrite)
    (out / "results.md").write_text(table + "\n")
    return _done(out, table)


def _run_self_labels(args: argparse.Namespace) -> int:
    from ..analysis.self_labels import read_labels, self_labels
    from ..engine.inputs import load_concepts

    out = _check_out(args)
    bank = select_groups_from_args(load_concepts(args.concepts, concept_names=args.concept_names), args)
    labels = read_labels(args.labels, bank.image_ids, column=args.label_column)
    result = self_labels(labels, bank, repeats=args.clusterings, seed=args.seed, probe=protocol_from_args(args).probe,
                         test_fraction=args.test_fraction, val_fraction=args.val_fraction, device=args.device,
                         name=args.name or Path(args.labels).stem, source=str(args.labels))
    return _save_result(result, out, args.overwrite)


def _add_self_labels(subparsers) -> None:
    p = _parser(subparsers, "self-labels", "reverse-probe a given labelling instead of K-means (paper Table 6)",
                "Train and score the reverse probe on LABELS (e.g. a self-labelling model's pseudo-labels): a\n"
                "1-D .npy, or a table with a 'label' column (and 'image_id' to match the concept rows). Writes a\n"
                "result directory, comparable with K-means results in `qrprobe compare` / `qrprobe report`.",
                _run_self_labels)
    p.add_argument("labels", metavar="LABELS", help=".npy (N,) or table with a label column")
    p.add_argument("concepts", metavar="CONCEPTS", help="concept-bank directory, long table or dense .npy")
    p.add_argument("--label-column", default="label", help="column of LABELS holding the labels")
    p.add_argument("--name", default="", help="name in tables (default: the labels file's name)")
    add_concept_arguments(p)
    _add_output(p, "result directory")
    _add_probe_arguments(p)


def _run_concepts_to_labels(args: argparse.Namespace) -> int:
    from ..analysis.concepts_to_labels import concepts_to_labels
    from ..analysis.self_labels import read_labels
    from ..engine.inputs import load_concepts

    out = _check_out(args)
    if (args.labels is None) == (args.label_group is None):
        raise QRProbeInputError("give exactly one of --labels FILE and --label-group G")
    bank = load_concepts(args.concepts, concept_names=args.concept_names)
    labels = read_labels(args.labels, bank.image_ids, column=args.label_column) if args.labels else None
    result = concepts_to_labels(bank, labels, label_group=args.label_group, exclude_groups=args.exclude or (),
                                repeats=args.clusterings, seed=args.seed, probe=protocol_from_args(args).probe,
                                test_fraction=args.test_fraction, val_fraction=args.val_fraction,
                                device=args.device, name=args.name)
    return _save_result(result, out, args.overwrite)


def _add_concepts_to_labels(subparsers) -> None:
    p = _parser(subparsers, "concepts-to-labels", "how well the concepts predict ground-truth labels (App. D.1)",
                "Train the reverse probe to predict each image's ground-truth label from its concepts. Labels\n"
                "come from --labels FILE or from a one-hot --label-group of CONCEPTS (then left out of the\n"
                "inputs); --exclude G1,G2 leaves out further groups (e.g. objects overlapping the labels).",
                _run_concepts_to_labels)
    p.add_argument("concepts", metavar="CONCEPTS", help="concept-bank directory, long table or dense .npy")
    p.add_argument("--labels", metavar="FILE", help=".npy (N,) or table with a label column")
    p.add_argument("--label-column", default="label", help="column of --labels holding the labels")
    p.add_argument("--label-group", metavar="G", help="take the labels from this one-hot concept group")
    p.add_argument("--exclude", type=_names, metavar="G1,G2", help="concept groups left out of the inputs")
    p.add_argument("--concept-names", metavar="FILE", help="names of a dense .npy concept matrix")
    p.add_argument("--name", default="concepts → labels", help="name in tables")
    _add_output(p, "result directory")
    _add_probe_arguments(p)


# ---------------------------------------------------------------------- forward probe
def _run_forward_probe(args: argparse.Namespace) -> int:
    import numpy as np
    import pandas as pd

    from ..analysis.forward_probe import forward_probe
    from ..report.sections import forward_probe_section
    from ..results import Result

    out = _check_out(args)
    feats, bank = load_inputs(args)
    reverse = Result.load(args.result) if args.result else None
    clusterings = None
    if reverse is not None:
        if reverse.clusterings is None:
            raise QRProbeInputError(f"--result {args.result!r} was saved without its clusterings")
        clusterings = np.asarray(reverse.clusterings)
        if reverse.image_ids is not None and feats.image_ids is not None:
            order = pd.Index([str(i) for i in reverse.image_ids]).get_indexer([str(i) for i in feats.image_ids])
            if (order < 0).any():
                raise QRProbeInputError(f"--result {args.result!r} does not cover the images of FEATURES")
            clusterings = clusterings[:, order]
    fp = forward_probe(feats, bank, clusterings=clusterings, max_concepts=args.max_concepts,
                       min_positives=args.min_positives, test_fraction=args.test_fraction, seed=args.seed,
                       c=args.C)
    section = forward_probe_section(fp, reverse)
    section.save(out, overwrite=args.overwrite)
    return _done(out, section.tables()[0].to_markdown())


def _add_forward_probe(subparsers) -> None:
    p = _parser(subparsers, "forward-probe", "forward linear probes features → concept, beside the clusters (Fig. 2)",
                "Train one linear classifier per concept from the standardized FEATURES (balanced accuracy, AP)\n"
                "and, with --result (same images), read each concept out of that result's clusters: a concept\n"
                "the clusters capture but a linear probe does not has a large positive gap.", _run_forward_probe)
    _add_inputs(p)
    p.add_argument("--result", metavar="DIR", help="result directory on the same images (clusters, reverse scores)")
    p.add_argument("--max-concepts", type=int, default=200, help="probe at most this many (most frequent) concepts")
    p.add_argument("--min-positives", type=int, default=5, help="skip concepts with fewer positives/negatives")
    p.add_argument("--test-fraction", type=float, default=0.2, help="held-out share per concept")
    p.add_argument("--seed", type=int, default=0, help="seed of the held-out draws")
    p.add_argument("--C", type=float, default=1.0, help="inverse L2 strength of the logistic regression")
    _add_output(p)


def add_parser(subparsers) -> None:
    """Register every analysis sub-command."""
    for add in (_add_compare, _add_breakdown, _add_explain, _add_explain_groups, _add_ksweep, _add_transfer,
                _add_self_labels, _add_concepts_to_labels, _add_forward_probe):
        add(subparsers)
