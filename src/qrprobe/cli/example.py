"""``qrprobe example -o DIR``: write a small generated dataset whose answer is known."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .._atomic import atomic_directory

DESCRIPTION = """\
Write a generated example to DIR: features.npy (N x 64) clustered by object x scene combinations, and a
concept bank (DIR/concepts) with the groups Objects, Scene, Texture (weakly informative colours) and Other
(pure noise). Then try:

  qrprobe evaluate DIR/features.npy DIR/concepts --k 32 --clusterings 3 -o DIR/results"""


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("example", help="write a small generated dataset to try qrprobe on",
                                   description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-o", "--out", required=True, metavar="DIR", help="directory to create")
    parser.add_argument("--n", type=int, default=5000, help="number of images (default 5000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing directory")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ..synthetic import make_concept_clusters

    features, bank, _ = make_concept_clusters(args.n, seed=args.seed)
    with atomic_directory(args.out, overwrite=args.overwrite) as tmp:
        np.save(tmp / "features.npy", features)
        bank.save(tmp / "concepts")
    out = Path(args.out)
    print(f"wrote {out / 'features.npy'} ({features.shape[0]} x {features.shape[1]}) and {out / 'concepts'} "
          f"({bank.n_concepts} concepts in groups {', '.join(bank.groups)})", file=sys.stderr)
    return 0
