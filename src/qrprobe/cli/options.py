"""Command-line flags generated from config dataclasses, and the flags every command shares.

A config field ``name`` becomes the flag ``--name`` (``_`` → ``-``) with the field's type, choices, default and
help text (the default is always shown). :func:`config_from_args` turns the parsed flags back into the
dataclass; a bad value raises :class:`~qrprobe.errors.ParameterError`, which ``qrprobe`` prints with the
flag's name.
"""

from __future__ import annotations

import argparse
import sys
import types
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..engine.config import ProbeConfig, ProtocolConfig, config_fields, field_default


def flag(name: str) -> str:
    """The CLI flag of a parameter name: ``lr_decay`` → ``--lr-decay``."""
    return "--" + name.replace("_", "-")


def int_list(text: str) -> tuple[int, ...]:
    """``"60,80"`` → ``(60, 80)``; an empty string → ``()``."""
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from exc


def name_list(text: str) -> list[str]:
    """``"Objects, Scene"`` → ``["Objects", "Scene"]``."""
    return [v.strip() for v in text.split(",") if v.strip()]


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value) or "none"
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "none" if value is None else str(value)


def _argparse_type(hint: Any):
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return _argparse_type(options[0])
    if origin in (tuple, list):
        item = typing.get_args(hint)[0]
        if item is int:
            return int_list if origin is tuple else (lambda text: list(int_list(text)))
        return name_list
    if hint in (int, float, str):
        return hint
    raise TypeError(f"no CLI type for {hint!r}")  # a schema bug, not a user error


class DeprecatedFlag(argparse.Action):
    """A flag of an earlier release: still works, with a warning that names its replacement."""

    def __init__(self, option_strings: list[str], dest: str, replacement: str = "", **kwargs: Any) -> None:
        self.replacement = replacement
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        print(f"qrprobe: warning: {option_string} is deprecated and will be removed; use {self.replacement}",
              file=sys.stderr)
        setattr(namespace, self.dest, values if self.nargs != 0 else self.const)


def add_deprecated_flag(parser: argparse.ArgumentParser | Any, old: str, new: str, dest: str, **kwargs: Any) -> None:
    """Accept ``old`` as a hidden, warning spelling of the flag ``new`` (same ``dest``)."""
    parser.add_argument(old, dest=dest, action=DeprecatedFlag, replacement=new, default=argparse.SUPPRESS,
                        help=argparse.SUPPRESS, **kwargs)


def add_config_arguments(parser: argparse.ArgumentParser | Any, cls: type, *,
                         only: Iterable[str] | None = None, skip: Iterable[str] = ()) -> None:
    """Add one flag per CLI field of the config dataclass ``cls`` (``only`` / ``skip`` select fields).

    Booleans get ``--name/--no-name``; deprecated field names (``aliases``) get hidden warning flags.
    """
    hints = typing.get_type_hints(cls)
    only = set(only) if only is not None else None
    skip = set(skip)
    for f in config_fields(cls):
        if not f.metadata.get("cli", True) or f.name in skip or (only is not None and f.name not in only):
            continue
        default = field_default(f)
        shown = f.metadata.get("shown") or _show(default)
        kwargs: dict[str, Any] = {"dest": f.name, "default": default,
                                  "help": f"{f.metadata['help']} [default: {shown}]"}
        if hints[f.name] is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = _argparse_type(hints[f.name])
            if f.metadata.get("choices"):
                kwargs["choices"] = f.metadata["choices"]
            if f.metadata.get("metavar"):
                kwargs["metavar"] = f.metadata["metavar"]
        parser.add_argument(flag(f.name), **kwargs)
        for alias in f.metadata.get("aliases", ()):
            extra = {} if hints[f.name] is bool else {"type": kwargs["type"]}
            add_deprecated_flag(parser, flag(alias) if len(alias) > 1 else f"--{alias}", flag(f.name), f.name,
                                **extra)


QUANTIZATION = ("k", "clusterings", "seed", "iters", "restarts", "max_train_points", "kmeans_backend", "kmeans_init")
SPLIT = ("test_fraction", "val_fraction")
STATISTICS = ("null_repeats", "bootstrap")


def add_protocol_arguments(parser: argparse.ArgumentParser, *, quantization: bool = True,
                           skip: Iterable[str] = ()) -> None:
    """The protocol's flags in groups (quantization, split, probe, statistics) and ``--device``.

    ``quantization=False``: only ``--clusterings`` and ``--seed`` of the first group, and no statistics group
    (commands that probe a given labelling, with no K-means). ``skip``: fields a command sets otherwise (e.g.
    ``k`` in a K sweep).
    """
    q = parser.add_argument_group("quantization (K-means)" if quantization else "repetitions")
    add_config_arguments(q, ProtocolConfig, only=QUANTIZATION if quantization else ("clusterings", "seed"),
                         skip=skip)
    add_config_arguments(parser.add_argument_group("split"), ProtocolConfig, only=SPLIT)
    add_config_arguments(parser.add_argument_group("reverse probe (SGD)"), ProbeConfig)
    if quantization:
        add_config_arguments(parser.add_argument_group("statistics (chance level, intervals)"), ProtocolConfig,
                             only=STATISTICS, skip=skip)
    add_config_arguments(parser, ProtocolConfig, only=("device",))


def protocol_from_args(args: argparse.Namespace, skip: Iterable[str] = ()) -> ProtocolConfig:
    """The :class:`ProtocolConfig` of the parsed protocol flags (absent flags keep the defaults; ``skip``:
    fields whose flag means something else in this command)."""
    probe = {f.name: getattr(args, f.name) for f in config_fields(ProbeConfig) if hasattr(args, f.name)}
    top = {f.name: getattr(args, f.name) for f in config_fields(ProtocolConfig)
           if hasattr(args, f.name) and f.name not in skip}
    return ProtocolConfig(**top, probe=ProbeConfig(**probe))


def config_from_args(cls: type, args: argparse.Namespace, **fixed: Any) -> Any:
    """An instance of the config dataclass ``cls`` from the parsed flags of its fields (``fixed``: values
    that come from elsewhere, e.g. a positional argument)."""
    values = {f.name: getattr(args, f.name) for f in config_fields(cls)
              if f.metadata.get("cli", True) and hasattr(args, f.name)}
    return cls(**{**values, **fixed})


# ------------------------------------------------------------------------------------------------ shared flags
def add_output(parser: argparse.ArgumentParser, what: str, *, required: bool = True, default: str | None = None,
               metavar: str = "DIR") -> None:
    """``-o/--out`` and ``--overwrite``, the same in every command that writes something."""
    parser.add_argument("-o", "--out", required=required, default=default, metavar=metavar,
                        help=f"the {what} to write" + (f" [default: {default}]" if default else ""))
    add_deprecated_flag(parser, "--output", "-o/--out", "out")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing output that qrprobe wrote earlier")


def check_output(args: argparse.Namespace, *, file: bool = False) -> Path:
    """``-o`` before any work: an existing, non-empty output needs ``--overwrite``."""
    from ..errors import QRProbeInputError

    out = Path(args.out)
    if file and out.is_dir():
        raise QRProbeInputError(f"--out {str(out)!r} is a directory; give the path of a file")
    if out.exists() and not args.overwrite and (file or not out.is_dir() or any(out.iterdir())):
        raise QRProbeInputError(f"--out {str(out)!r} already exists and is not empty (pass --overwrite)")
    return out


def add_quiet(parser: argparse.ArgumentParser) -> None:
    """``--quiet``: no progress bars or per-step lines (errors and warnings still print)."""
    parser.add_argument("--quiet", action="store_true", help="no progress bars or progress lines")
    add_deprecated_flag(parser, "--no-progress", "--quiet", "quiet", nargs=0, const=True)


def add_device(parser: argparse.ArgumentParser | Any) -> None:
    """``--device`` as in the protocol (default auto)."""
    add_config_arguments(parser, ProtocolConfig, only=("device",))


def add_concept_arguments(parser: argparse.ArgumentParser) -> None:
    """CONCEPTS-related flags: names of a dense matrix and the concept groups used."""
    parser.add_argument("--concept-names", metavar="FILE",
                        help="names of a dense .npy concept matrix: one 'group<TAB>name' a line")
    parser.add_argument("--groups", type=name_list, metavar="G1,G2",
                        help="use only the concepts of these groups [default: all]")
    parser.add_argument("--drop-groups", type=name_list, metavar="G1,G2",
                        help="leave out the concepts of these groups [default: none]")


__all__ = ["add_concept_arguments", "add_config_arguments", "add_deprecated_flag", "add_device", "add_output",
           "add_protocol_arguments", "add_quiet", "check_output", "config_from_args", "flag", "int_list", "name_list",
           "protocol_from_args"]
