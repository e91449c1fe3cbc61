"""The ``qrprobe`` command: a thin layer of sub-commands over the library.

Each sub-command lives in its own module of this package and exposes ``add_parser(subparsers)``, which
registers its parser and sets ``func`` (``args -> int`` exit code). Input errors
(:class:`qrprobe.errors.QRProbeError`) print one line on stderr and exit with code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from ..errors import ParameterError, QRProbeError
from ..progress import console_output

# Sub-command modules, in the order ``qrprobe --help`` lists them.
COMMANDS: tuple[str, ...] = (
    "run", "extract", "models", "label", "experts", "evaluate", "example", "analyses", "report",
)

DESCRIPTION = """\
Quantized reverse probing (Laina, Asano & Vedaldi, ICLR 2022): how interpretable is a representation?
Quantize a frozen model's features with K-means, then ask how well a linear probe can predict the cluster
of an image from human-nameable concepts (objects, scenes, materials, textures, colours, ...)."""


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(prog="qrprobe", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"qrprobe {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"{__package__}.{name}").add_parser(sub)
    for subparser in sub.choices.values():
        subparser.set_defaults(_parser=subparser)
    return parser


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse ``argv``; an unknown flag is reported with the sub-command's usage, not the top-level one."""
    args, extras = parser.parse_known_args(argv)
    if extras:
        getattr(args, "_parser", parser).error(f"unrecognized arguments: {' '.join(extras)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    parser = build_parser()
    args = parse(parser, argv)
    try:
        with console_output():  # warnings and notes on stderr, as a library call makes them only if asked
            return int(args.func(args) or 0)
    except ParameterError as exc:  # a library parameter: name it as the flag the user typed
        from .options import flag

        print(f"qrprobe {args.command}: error: {exc.relabel(flag(exc.param))}", file=sys.stderr)
        return 2
    except QRProbeError as exc:
        print(f"qrprobe {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"qrprobe {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
