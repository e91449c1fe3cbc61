"""``qrprobe extract MODEL IMAGES -o DIR``: features of a frozen model over an image collection."""

from __future__ import annotations

import argparse
import sys

from .._atomic import check_not_an_input
from .options import add_backend, add_device, add_output, add_quiet, at_least, ray_options_from_args

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


def _floats3(text: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(v) for v in text.replace(",", " ").split())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected three numbers, got {text!r}") from exc
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"expected three numbers (R,G,B), got {text!r}")
    return values[0], values[1], values[2]


def _preprocess_spec(text: str):
    """A preset name, or a JSON mapping of the transform's settings."""
    if not text.lstrip().startswith("{"):
        return text
    import json

    try:
        return json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a preset name or a JSON mapping, got {text!r} ({exc})") from exc


def add_parser(subparsers) -> argparse.ArgumentParser:
    from ..features.extract import (
        CLASSICAL_BATCH_SIZE,
        CPU_BATCH_SIZE,
        DEFAULT_CHUNK_SIZE,
        DEFAULT_DTYPE,
        GPU_BATCH_SIZE,
    )

    p = subparsers.add_parser("extract", help=HELP, description=DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", metavar="MODEL", help="model to probe (see above)")
    p.add_argument("images", metavar="IMAGES", help="folder, file list or tar shards")
    add_output(p, "feature-store directory")
    m = p.add_argument_group("model")
    m.add_argument("--layer", default=None,
                   help="intermediate layer (module name, optional pooling: 'layer3', 'blocks.6:cls', "
                        "'features.5:max'), globally pooled [default: the paper's features]")
    m.add_argument("--weights", default=None, metavar="PATH",
                   help="local checkpoint (.pth/.pt/.safetensors), loaded weights-only; prefixes such as "
                        "module., backbone., encoder_q. are stripped; implies no download")
    m.add_argument("--strict-weights", action="store_true",
                   help="fail when the checkpoint has missing or unexpected keys [default: report them]")
    m.add_argument("--no-pretrained", dest="pretrained", action="store_false",
                   help="random weights instead of downloading the library's pretrained ones")
    m.add_argument("--image-size", type=int, default=None, metavar="N",
                   help="override the input size (centre crop N, resize N/0.875) [default: the model's]")
    m.add_argument("--preprocess", type=_preprocess_spec, default=None, metavar="SPEC",
                   help="the transform the model was trained/evaluated with: a preset (imagenet, imagenet-bicubic) "
                        "or JSON {\"resize\": 256, \"crop\": 224, \"interpolation\": \"bicubic\", \"mean\": [...], "
                        "\"std\": [...]} [default: the model family's own]")
    m.add_argument("--mean", type=_floats3, default=None, metavar="R,G,B",
                   help="override normalisation mean [default: the model's]")
    m.add_argument("--std", type=_floats3, default=None, metavar="R,G,B",
                   help="override normalisation std [default: the model's]")
    r = p.add_argument_group("run")
    r.add_argument("--batch-size", type=int, default=None,
                   help=f"images per forward pass [default: {GPU_BATCH_SIZE} on a GPU, {CPU_BATCH_SIZE} on the CPU, "
                        f"where small batches run faster, {CLASSICAL_BATCH_SIZE} for classical representations]")
    add_device(r)
    r.add_argument("--dtype", choices=("float16", "float32"), default=DEFAULT_DTYPE,
                   help="storage type of the features (computation is float32; float16 halves the store for "
                        f"large collections) [default: {DEFAULT_DTYPE}]")
    r.add_argument("--workers", type=int, default=None,
                   help="image-decoding worker processes [default: one per spare CPU core, at most 8]")
    r.add_argument("--threads", type=at_least(1), default=None,
                   help="torch CPU threads for the model (default: torch's, one per core); on a machine "
                        "shared with other jobs, fewer threads avoid stalls [default: torch's]")
    r.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE,
                   help=f"images per shard and per resume step [default: {DEFAULT_CHUNK_SIZE}]")
    r.add_argument("--limit", type=int, default=None, metavar="N",
                   help="extract only the first N images [default: all]")
    add_backend(p)
    add_quiet(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ..features.extract import run_extraction

    check_not_an_input(args.out, {"IMAGES": args.images, "--weights": args.weights}, images=args.images, what="--out")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        store, stats = run_extraction(
            args.model, args.images, args.out, layer=args.layer, weights=args.weights,
            pretrained=args.pretrained, strict_weights=args.strict_weights, batch_size=args.batch_size,
            device=args.device, dtype=args.dtype, workers=args.workers, chunk_size=args.chunk_size,
            overwrite=args.overwrite, progress=not args.quiet, image_size=args.image_size, mean=args.mean,
            std=args.std, preprocess=args.preprocess, limit=args.limit, backend=args.backend,
            ray=ray_options_from_args(args))
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
