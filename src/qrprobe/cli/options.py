"""Command-line flags generated from config dataclasses, and the flags every command shares.

A config field ``name`` becomes the flag ``--name`` (``_`` → ``-``) with the field's type, choices, default and
help text (the default is always shown). :func:`config_from_args` turns the parsed flags back into the
dataclass; a bad value raises :class:`~qrprobe.errors.ParameterError`, which ``qrprobe`` prints with the
flag's name.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Iterable
from typing import Any

from ..engine.config import ProbeConfig, ProtocolConfig, config_fields


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
    return "all" if value is None else str(value)


def _argparse_type(hint: Any):
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return _argparse_type(options[0])
    if origin is tuple:
        return int_list
    if hint in (int, float, str):
        return hint
    raise TypeError(f"no CLI type for {hint!r}")  # a schema bug, not a user error


def add_config_arguments(parser: argparse.ArgumentParser | Any, cls: type, *,
                         only: Iterable[str] | None = None, skip: Iterable[str] = ()) -> None:
    """Add one flag per CLI field of the config dataclass ``cls`` (``only`` / ``skip`` select fields)."""
    hints = typing.get_type_hints(cls)
    only = set(only) if only is not None else None
    skip = set(skip)
    for f in config_fields(cls):
        if not f.metadata.get("cli", True) or f.name in skip or (only is not None and f.name not in only):
            continue
        kwargs: dict[str, Any] = {"dest": f.name, "default": f.default, "type": _argparse_type(hints[f.name]),
                                  "help": f"{f.metadata['help']} [default: {_show(f.default)}]"}
        if f.metadata.get("choices"):
            kwargs["choices"] = f.metadata["choices"]
        if f.metadata.get("metavar"):
            kwargs["metavar"] = f.metadata["metavar"]
        parser.add_argument(flag(f.name), **kwargs)


QUANTIZATION = ("k", "clusterings", "seed", "iters", "restarts", "max_train_points", "kmeans_backend", "kmeans_init")
SPLIT = ("test_fraction", "val_fraction")


def add_protocol_arguments(parser: argparse.ArgumentParser, *, quantization: bool = True) -> None:
    """The protocol's flags in three groups (quantization, split, probe) and ``--device``.

    ``quantization=False``: only ``--clusterings`` and ``--seed`` of the first group (commands that probe a
    given labelling, with no K-means).
    """
    q = parser.add_argument_group("quantization (K-means)" if quantization else "repetitions")
    add_config_arguments(q, ProtocolConfig, only=QUANTIZATION if quantization else ("clusterings", "seed"))
    add_config_arguments(parser.add_argument_group("split"), ProtocolConfig, only=SPLIT)
    add_config_arguments(parser.add_argument_group("reverse probe (SGD)"), ProbeConfig)
    add_config_arguments(parser, ProtocolConfig, only=("device",))


def protocol_from_args(args: argparse.Namespace) -> ProtocolConfig:
    """The :class:`ProtocolConfig` of the parsed protocol flags (absent flags keep the defaults)."""
    probe = {f.name: getattr(args, f.name) for f in config_fields(ProbeConfig) if hasattr(args, f.name)}
    top = {f.name: getattr(args, f.name) for f in config_fields(ProtocolConfig) if hasattr(args, f.name)}
    return ProtocolConfig(**top, probe=ProbeConfig(**probe))


def config_from_args(cls: type, args: argparse.Namespace) -> Any:
    """An instance of the config dataclass ``cls`` from the parsed flags of its fields."""
    return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)})


__all__ = ["add_config_arguments", "add_protocol_arguments", "config_from_args", "flag", "int_list", "name_list",
           "protocol_from_args"]
