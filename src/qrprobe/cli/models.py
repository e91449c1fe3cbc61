"""``qrprobe models``: which models qrprobe can extract features from, and which extra each needs."""

from __future__ import annotations

import argparse

HELP = "list the model families and built-in representations (and the extra each needs)"
DESCRIPTION = """\
List what MODEL can be in `qrprobe extract`: model families (timm:NAME, torchvision:NAME, ...) and
built-in representations, with the optional dependency group ("extra") each needs and whether it is
installed here. With --layers MODEL, list the layer names that --layer accepts for that model (built with
random weights, nothing is downloaded)."""


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("models", help=HELP, description=DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layers", metavar="MODEL", default=None, help="list the layer names of MODEL")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    if args.layers:
        return _print_layers(args.layers)
    from ..models.registry import list_models

    rows = list_models()
    header = ("MODEL", "EXAMPLE", "DIM", "EXTRA", "INSTALLED", "DESCRIPTION")
    table = [(r["model"], r["example"], str(r["dim"] or "-"), r["extra"], "yes" if r["available"] else "no",
              r["description"]) for r in rows]
    widths = [max(len(h), *(len(t[i]) for t in table)) for i, h in enumerate(header[:-1])]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths) + "  {}"
    print(fmt.format(*header))
    for t in table:
        print(fmt.format(*t))
    print("\nInstall an extra with `pip install 'qrprobe[EXTRA]'`. Hub names download pretrained weights "
          "(internet needed); --weights PATH loads a local checkpoint; --no-pretrained uses random weights.")
    return 0


def _print_layers(spec: str) -> int:
    from ..models.registry import create_representation

    rep = create_representation(spec, pretrained=False)
    if rep.model is None:
        print(f"{rep.spec} has no named layers (features: {rep.layer}, {rep.dim}-d)")
        return 0
    print(f"{rep.spec}: default features {rep.layer!r} ({rep.dim}-d); layers for --layer NAME[:avg|max|cls]:")
    for name, module in rep.model.named_modules():
        if name:
            print(f"  {name}  ({type(module).__name__})")
    return 0
