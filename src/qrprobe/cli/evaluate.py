"""``qrprobe evaluate FEATURES CONCEPTS``: score one representation by quantized reverse probing."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import QRProbeInputError
from ..results import markdown_table

HELP = "quantize features with K-means and score how well concepts predict the clusters"
DESCRIPTION = """\
Quantized reverse probing of one representation (Laina et al., ICLR 2022, Sec. 3):
standardize FEATURES, cluster them with K-means (K clusters, several seeds), split each clustering 80/20
(stratified; 20% of train for validation), train a linear probe from the binary CONCEPTS of an image to its
cluster, and score it on the test split: NMI, AMI, top-1, mAP (×100) and the mutual-information estimate
H(cluster) − CE in bits. Defaults are the paper's protocol.

FEATURES  a .npy array (N x D) or a feature-store directory (`qrprobe extract`).
CONCEPTS  a concept-bank directory (`qrprobe label`), a long table image_id,concept[,group] (.csv/.tsv/.parquet),
          or a dense 0/1 .npy (N x M) with --concept-names.
Rows are matched by image_id when both inputs have ids, else by position."""


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from exc


def _names(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def add_protocol_arguments(parser: argparse.ArgumentParser) -> None:
    """The protocol flags shared by every command that runs the engine."""
    q = parser.add_argument_group("quantization (K-means)")
    q.add_argument("--k", type=int, default=1000, help="number of clusters K (paper: 1000)")
    q.add_argument("--clusterings", type=int, default=5, metavar="R",
                   help="independent clusterings, one seed each; scores are mean ± std over them (paper: 5)")
    q.add_argument("--seed", type=int, default=0, help="first seed; clustering r uses seed + r")
    q.add_argument("--iters", type=int, default=100, help="Lloyd iterations per restart (paper: 100)")
    q.add_argument("--restarts", type=int, default=5, help="restarts per clustering, lowest inertia kept (paper: 5)")
    q.add_argument("--max-train-points", type=int, default=None, metavar="N",
                   help="train K-means on a random sample of N points (default: all points)")
    q.add_argument("--kmeans-backend", choices=("torch", "faiss"), default="torch",
                   help="torch (CPU/GPU, default) or faiss (needs qrprobe[faiss])")
    q.add_argument("--kmeans-init", choices=("random", "k-means++"), default="random",
                   help="initial centroids: random points as faiss does (default) or k-means++")
    add_split_and_probe_arguments(parser)


def add_split_and_probe_arguments(parser: argparse.ArgumentParser, split_title: str = "split",
                                  probe_title: str = "reverse probe (SGD)") -> None:
    """The split and probe flags (also used by commands that probe a given labelling: no K-means)."""
    s = parser.add_argument_group(split_title)
    s.add_argument("--test-fraction", type=float, default=0.2, help="share of each cluster held out for test")
    s.add_argument("--val-fraction", type=float, default=0.2, help="share of train held out for validation")
    p = parser.add_argument_group(probe_title)
    p.add_argument("--lr", type=float, default=3.5, help="initial learning rate (paper: 3.5)")
    p.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (paper: 0.9)")
    p.add_argument("--batch-size", type=int, default=512, help="batch size (paper: 512)")
    p.add_argument("--epochs", type=int, default=100, help="maximum epochs (paper: 100)")
    p.add_argument("--milestones", type=_int_list, default=(60, 80), metavar="E1,E2",
                   help="epochs at which the learning rate is divided (paper: 60,80)")
    p.add_argument("--lr-decay", type=float, default=0.1, help="learning-rate factor at each milestone")
    p.add_argument("--weight-decay", type=float, default=3e-6, help="L2 weight decay (paper: 3e-6)")
    p.add_argument("--select", choices=("val_loss", "last"), default="val_loss",
                   help="keep the epoch with the best validation loss (default) or the last one")
    parser.add_argument("--device", default="auto", help="auto (a GPU when present), cpu, cuda or cuda:N")


def probe_config_from_args(args: argparse.Namespace):
    """The :class:`~qrprobe.engine.probe.ProbeConfig` of the probe flags."""
    from ..engine.probe import ProbeConfig

    return ProbeConfig(lr=args.lr, momentum=args.momentum, batch_size=args.batch_size, epochs=args.epochs,
                       milestones=args.milestones, gamma=args.lr_decay, weight_decay=args.weight_decay,
                       select=args.select)


def protocol_from_args(args: argparse.Namespace):
    from ..engine.evaluate import ProtocolConfig

    probe = probe_config_from_args(args)
    return ProtocolConfig(k=args.k, n_clusterings=args.clusterings, seed=args.seed, n_iter=args.iters,
                          n_restarts=args.restarts, max_train_points=args.max_train_points,
                          kmeans_backend=args.kmeans_backend, kmeans_init=args.kmeans_init,
                          test_fraction=args.test_fraction, val_fraction=args.val_fraction, probe=probe,
                          device=args.device)


def add_concept_arguments(parser: argparse.ArgumentParser) -> None:
    """CONCEPTS-related flags: names of a dense matrix and group selection."""
    parser.add_argument("--concept-names", metavar="FILE",
                        help="names of a dense .npy concept matrix: one 'group<TAB>name' a line")
    parser.add_argument("--groups", type=_names, metavar="G1,G2",
                        help="use only the concepts of these groups")
    parser.add_argument("--drop-groups", type=_names, metavar="G1,G2",
                        help="leave out the concepts of these groups")


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
    parser.add_argument("-o", "--out", required=True, metavar="DIR",
                        help="result directory: results.json, results.md and the arrays for later analyses")
    parser.add_argument("--name", default="", help="name of the representation in tables (default: the model)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing result directory")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    add_concept_arguments(parser)
    add_protocol_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..engine.evaluate import evaluate

    out = Path(args.out)
    if out.exists() and not args.overwrite and (not out.is_dir() or any(out.iterdir())):
        raise QRProbeInputError(f"--out {str(out)!r} already exists and is not empty (pass --overwrite)")
    config = protocol_from_args(args)
    feats, bank = load_inputs(args)
    result = evaluate(feats, bank, config=config, name=args.name, progress=not args.quiet)
    table = markdown_table([result])
    result.save(out, overwrite=args.overwrite)
    (out / "results.md").write_text(table + "\n")
    print(table)
    print(f"\nresults: {out / 'results.json'}", file=sys.stderr)
    return 0
