"""The ``qrprobe`` command: a thin layer of sub-commands over the library.

Each sub-command lives in its own module of this package and exposes ``add_parser(subparsers)``, which
registers its parser and sets ``func`` (``args -> int`` exit code). Input errors
(:class:`qrprobe.errors.QRProbeError`) print one line on stderr and exit with code 2.

A command that writes ``-o/--out`` (one made with ``options.add_output``) runs inside
:func:`qrprobe._atomic.writing`: the output's lock is taken before any work (a second run on the same output is
refused at once, naming the first), and a resource limit (a file-size limit, a full disk, memory) is one line,
exit 2, with nothing partial left. A resource limit met by any other command is one line too. SIGTERM unwinds
like Ctrl-C (locks released, temporaries removed) and exits with 143.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence

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


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that ``finally`` blocks run (locks, temporaries)."""


@contextlib.contextmanager
def _terminate_as_exception() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    pid = os.getpid()

    def raise_terminated(signum, frame):
        if os.getpid() != pid:  # a forked child (a DataLoader worker): die as before, without a traceback
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _output_scope(args: argparse.Namespace) -> Iterator[None]:
    """The lock and resource-limit scope of the command's ``-o`` (nothing for a command without one)."""
    from .. import _atomic

    out = getattr(args, "out", None) if getattr(args, "_writes_output", False) else None
    previous, _atomic.OVERWRITE_SWITCH = _atomic.OVERWRITE_SWITCH, "--overwrite"  # messages name the flag
    try:
        with _atomic.writing(out, "--out") if out else contextlib.nullcontext():
            yield
    finally:
        _atomic.OVERWRITE_SWITCH = previous


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    from .._resources import ignore_file_size_signal, resource_limit_error

    parser = build_parser()
    args = parse(parser, argv)
    ignore_file_size_signal()
    try:
        with console_output(), _terminate_as_exception(), _output_scope(args):  # warnings/notes on stderr
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
    except Terminated:
        print(f"qrprobe {args.command}: terminated", file=sys.stderr)
        return 143
    except Exception as exc:  # a resource limit outside any output's scope (e.g. memory in `qrprobe run`)
        error = resource_limit_error(exc)
        if error is None:
            raise
        print(f"qrprobe {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
