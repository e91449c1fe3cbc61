"""``qrprobe extract MODEL IMAGES -o DIR``: features of a frozen model over an image collection."""

from __future__ import annotations

import argparse
import sys

from .._atomic import check_not_an_input
from .options import add_backend, add_config_groups, add_output, add_quiet, config_from_args, ray_options_from_args

HELP = "extract the features of a frozen model over a folder, file list or tar shards of images"
DESCRIPTION = """\
Run a frozen model over IMAGES and write its features to a feature store (DIR): memory-mappable shards,
an index of image ids and paths (and labels from class sub-folders), and a manifest with the model, layer,
preprocessing, library versions and a content hash. By default the features are the paper's: the pooled
penultimate output of a CNN, the [CLS] token of the last block of a ViT.

MODEL   timm:NAME | torchvision:NAME | open_clip:ARCH[:PRETRAINED] | hf:NAME | python:MODULE:FACTORY |
        a TorchScript (.pt) or ONNX (.onnx) file | efficientnet-lite0 | efficientnet-lite0-random |
        pixels | color-histogram | hog           (`qrprobe models` lists them and the extra each needs)
IMAGES  a folder (class sub-folders become labels), a file list (.csv/.txt: image_id,path[,label]) or
        webdataset tar shards (a folder of .tar files, a .tar, or a pattern like shards-{000..009}.tar)

Unreadable images are skipped and listed in the manifest. An interrupted run resumes where it stopped when
the same command is run again; a finished store with the same configuration is reused.

--backend ray runs the same extraction on a Ray cluster (decoding in CPU tasks, the model in an actor pool
with one GPU per actor): the store is the same, byte for byte, for the same batch size."""


def add_parser(subparsers) -> argparse.ArgumentParser:
    from ..features.config import ExtractConfig

    p = subparsers.add_parser("extract", help=HELP, description=DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", metavar="MODEL", help="model to probe (see above)")
    p.add_argument("images", metavar="IMAGES", help="folder, file list or tar shards")
    add_output(p, "feature-store directory")
    add_config_groups(p, ExtractConfig, skip=("backend",))  # the groups model and run
    add_backend(p, ExtractConfig)
    add_quiet(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ..features.config import ExtractConfig
    from ..features.extract import run_extraction

    check_not_an_input(args.out, {"IMAGES": args.images, "--weights": args.weights}, images=args.images, what="--out")
    config = config_from_args(ExtractConfig, args, overwrite=args.overwrite, progress=not args.quiet,
                              ray=ray_options_from_args(args))
    try:
        store, stats = run_extraction(args.model, args.images, args.out, config)
    except KeyboardInterrupt:
        print(f"qrprobe extract: interrupted; the finished chunks are kept, run the same command again to "
              f"resume into {args.out}", file=sys.stderr)
        return 130
    if stats.reused:
        print(f"reused the complete feature store {store.path} ({store.n} images x {store.dim}, "
              f"{store.dtype}; same model, layer and images)")
    else:
        resumed = f", resumed after {stats.resumed_chunks} finished chunk(s)" if stats.resumed_chunks else ""
        print(f"wrote {store.n} feature vectors ({store.dim}-d, {store.dtype}, layer {store.manifest['layer']!r}) "
              f"to {store.path} in {stats.seconds:.1f} s, {stats.images_per_second:.1f} images/s on "
              f"{stats.device}, batch {stats.batch_size}{resumed}")
    if stats.n_skipped:
        print(f"skipped {stats.n_skipped} file(s) (listed in {store.path}/manifest.json under 'skipped'):",
              file=sys.stderr)
        for item in stats.skipped[:10]:
            print(f"  {item['path']}: {item['reason']}", file=sys.stderr)
        if stats.n_skipped > 10:
            print(f"  ... and {stats.n_skipped - 10} more", file=sys.stderr)
    return 0
