"""``qrprobe report INPUT... -o report.html``: one self-contained HTML page on results and analyses."""

from __future__ import annotations

import argparse
import sys

from .._atomic import check_not_an_input
from ..errors import QRProbeInputError
from .options import add_output, check_output

HELP = "write a self-contained HTML report (tables, figures, explanations) on results and analyses"
DESCRIPTION = """\
One HTML file with every image embedded, on any number of inputs:

  result directories    (qrprobe evaluate / self-labels / concepts-to-labels / ksweep's results/*)
                        → ranked comparison (paper Table 2), K curves when a model has several K (Fig. 6-7),
                          the most confused cluster pairs of each result with word clouds and thumbnails
                          (Fig. 5), and the run configuration;
  analysis directories  (qrprobe breakdown / explain / explain-groups / ksweep / transfer / forward-probe /
                        compare) → shown as they are (a given comparison replaces the one made from
                        the results; the K sweeps of several models share one set of axes).

The page starts with the notes (the study's and each result's own: how its inputs differ from the paper,
flags, small-sample warnings) and ends with the run configuration.

With --external CSV (a 'model' column and numeric columns, e.g. linear-probe accuracy) the comparison gets
those columns and the Fig. 3 scatter of top-1 against the first of them (with at least 3 models that have a
value; with fewer, the values are listed and no correlation is given). --figures-dir also writes every
figure as PNG and PDF and every table as CSV, JSON, Markdown and LaTeX."""


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("report", help=HELP, description=DESCRIPTION,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="result or analysis directories")
    add_output(parser, "report file (.html)", metavar="HTML")
    parser.add_argument("--external", metavar="CSV", help="table of external scores with a 'model' column")
    parser.add_argument("--external-column", action="append", metavar="NAME", dest="external_columns",
                        help="column of --external to add (repeatable; the first is plotted) [default: all]")
    parser.add_argument("--figures-dir", metavar="DIR",
                        help="also write every figure (PNG, PDF) and table (CSV, JSON, Markdown, LaTeX) here "
                             "[default: none]")
    parser.add_argument("--title", default="qrprobe report", help="title of the page [default: qrprobe report]")
    parser.add_argument("--pairs", type=int, default=4, metavar="N",
                        help="confused cluster pairs explained per result (0: no explanations) [default: 4]")
    parser.add_argument("--sort-by", default="nmi", choices=("nmi", "ami", "top1", "map", "mi_bits"),
                        help="metric that ranks the comparison table, by its chance-corrected counterpart "
                             "unless --raw [default: nmi]")
    parser.add_argument("--raw", action="store_true",
                        help="rank, test and correlate by the paper's raw scores instead of the chance-corrected "
                             "ones")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..report.build import build_report

    out = check_output(args, file="report", inputs={"INPUT": args.inputs, "--external": args.external})
    if args.figures_dir:
        check_not_an_input(args.figures_dir, {"INPUT": args.inputs, "--external": args.external},
                           what="--figures-dir")
    if args.external_columns and not args.external:
        raise QRProbeInputError("--external-column needs --external CSV")
    if args.pairs < 0:
        raise QRProbeInputError(f"--pairs must be ≥ 0, got {args.pairs}")
    path = build_report(args.inputs, out, external=args.external, external_columns=args.external_columns,
                        sort_by=args.sort_by, raw=args.raw,
                        figures_dir=args.figures_dir, title=args.title, explain_pairs=args.pairs)
    print(f"report: {path}", file=sys.stderr)
    if args.figures_dir:
        print(f"figures and tables: {args.figures_dir}", file=sys.stderr)
    return 0
