"""``qrprobe example -o DIR``: write a small generated dataset whose answer is known."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .._atomic import atomic_directory
from ..errors import QRProbeInputError
from .options import add_output, check_output

MAX_EXAMPLE_IMAGES = 1_000_000  # 256 MB of features: an example, not a benchmark
EXAMPLE_KIND = "qrprobe.example"  # the marker example.json carries its format: the directory may be replaced
DESCRIPTION = """\
Write a generated example to DIR: features.npy (N x 64) clustered by object x scene combinations, and a
concept bank (DIR/concepts) with the groups Objects, Scene, Texture (weakly informative colours) and Other
(pure noise). Then try:

  qrprobe evaluate DIR/features.npy DIR/concepts --k 32 --clusterings 3 -o DIR/results

With --study, write a commented study template instead (qrprobe run FILE)."""


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("example", help="write a small generated dataset to try qrprobe on",
                                   description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_output(parser, "directory (with --study: the template file)")
    parser.add_argument("--n", type=int, default=5000, help="number of images [default: 5000]")
    parser.add_argument("--seed", type=int, default=0, help="random seed [default: 0]")
    parser.add_argument("--study", nargs="?", const="template", choices=("template", "paper"), metavar="WHICH",
                        help="write a study file instead of a dataset: 'template' (a commented template, the "
                             "default) or 'paper' (the paper's ImageNet study, Table 2 models and experts)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.study:
        return _write_study_template(args)
    if not 20 <= args.n <= MAX_EXAMPLE_IMAGES:
        raise QRProbeInputError(f"--n: expected a number of images from 20 to {MAX_EXAMPLE_IMAGES:,}, got {args.n}")
    import numpy as np

    from ..synthetic import make_concept_clusters

    check_output(args, kind=EXAMPLE_KIND)
    features, bank, _ = make_concept_clusters(args.n, seed=args.seed)
    with atomic_directory(args.out, overwrite=args.overwrite, kind=EXAMPLE_KIND) as tmp:
        np.save(tmp / "features.npy", features)
        bank.save(tmp / "concepts")
        (tmp / "example.json").write_text(json.dumps({"format": f"{EXAMPLE_KIND}/1", "n": args.n, "seed": args.seed}))
    out = Path(args.out)
    print(f"wrote {out / 'features.npy'} ({features.shape[0]} x {features.shape[1]}) and {out / 'concepts'} "
          f"({bank.n_concepts} concepts in groups {', '.join(bank.groups)})", file=sys.stderr)
    return 0


def _write_study_template(args: argparse.Namespace) -> int:
    from .._atomic import atomic_write_text
    from ..study.reference import template_yaml

    out = check_output(args, file="study-template")
    if args.study == "paper":
        from importlib.resources import files

        text = (files("qrprobe.study") / "examples" / "paper-imagenet.yaml").read_text(encoding="utf-8")
    else:
        text = template_yaml()
    atomic_write_text(out, text)
    print(f"wrote a study template to {out}; edit it, then `qrprobe run {out}`", file=sys.stderr)
    return 0
