"""Command-line flags generated from config dataclasses, and the flags every command shares.

A config field ``name`` (:func:`qrprobe.schema.param`) becomes the flag ``--name`` (``_`` → ``-``) with the
field's type (or its ``parse``), choices, default and help text (the default is always shown; a ``switch`` is
one flag, ``--name`` or ``--no-name``, that sets the other value), in the group its ``group`` names.
:func:`config_from_args` turns the parsed flags back into the dataclass; a bad value raises
:class:`~qrprobe.errors.ParameterError`, which ``qrprobe`` prints with the flag's name.
"""

from __future__ import annotations

import argparse
import os
import sys
import types
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..engine.config import KMeansConfig, ProbeConfig, ProtocolConfig
from ..schema import config_fields, field_default, parse_int_at_least


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

    Booleans get ``--name/--no-name``, or the one flag of a ``switch``; deprecated field names (``aliases``) get
    hidden warning flags.
    """
    hints = typing.get_type_hints(cls)
    only = set(only) if only is not None else None
    skip = set(skip)
    for f in config_fields(cls):
        if not f.metadata.get("cli", True) or f.name in skip or (only is not None and f.name not in only):
            continue
        default = field_default(f)
        if hints[f.name] is bool and f.metadata.get("switch"):
            _add_switch(parser, f, default)
            continue
        shown = f.metadata.get("shown") or _show(default)
        kwargs: dict[str, Any] = {"dest": f.name, "default": default,
                                  "help": f"{f.metadata['help']} [default: {shown}]"}
        if hints[f.name] is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = f.metadata.get("parse") or _argparse_type(hints[f.name])
            if f.metadata.get("choices"):
                kwargs["choices"] = f.metadata["choices"]
            if f.metadata.get("metavar"):
                kwargs["metavar"] = f.metadata["metavar"]
        parser.add_argument(flag(f.name), **kwargs)
        for alias in f.metadata.get("aliases", ()):
            extra = {} if hints[f.name] is bool else {"type": kwargs["type"]}
            add_deprecated_flag(parser, flag(alias) if len(alias) > 1 else f"--{alias}", flag(f.name), f.name,
                                **extra)


def _add_switch(parser: argparse.ArgumentParser | Any, f: Any, default: bool) -> None:
    """A boolean ``switch`` field: ``--name`` sets true (default false), ``--no-name`` sets false (default true)."""
    text = f.metadata["switch"] if isinstance(f.metadata["switch"], str) else f.metadata["help"]
    shown = f.metadata.get("shown")
    parser.add_argument("--no-" + f.name.replace("_", "-") if default else flag(f.name), dest=f.name,
                        default=default, action="store_false" if default else "store_true",
                        help=text + (f" [default: {shown}]" if shown else ""))


def add_config_groups(parser: argparse.ArgumentParser, cls: type, *, skip: Iterable[str] = ()) -> None:
    """Add the CLI fields of ``cls``, each in the flag group its ``group`` names (groups in the order they first
    appear; fields without one among the command's own options); ``skip``: fields a command adds otherwise."""
    skip = set(skip)
    fields = [f for f in config_fields(cls) if f.metadata.get("cli", True) and f.name not in skip]
    titles = list(dict.fromkeys(f.metadata.get("group") for f in fields))
    for title in titles:
        names = [f.name for f in fields if f.metadata.get("group") == title]
        add_config_arguments(parser if title is None else parser.add_argument_group(title), cls, only=names)


REPETITIONS = ("clusterings", "seed")
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
    if quantization:
        add_config_arguments(q, KMeansConfig, only=("k",), skip=skip)
    add_config_arguments(q, ProtocolConfig, only=REPETITIONS, skip=skip)
    if quantization:
        add_config_arguments(q, KMeansConfig, skip=("k", *skip))
    add_config_arguments(parser.add_argument_group("split"), ProtocolConfig, only=SPLIT)
    add_config_arguments(parser.add_argument_group("reverse probe (SGD)"), ProbeConfig)
    if quantization:
        add_config_arguments(parser.add_argument_group("statistics (chance level, intervals)"), ProtocolConfig,
                             only=STATISTICS, skip=skip)
    add_config_arguments(parser, ProtocolConfig, only=("device",))


def protocol_from_args(args: argparse.Namespace, skip: Iterable[str] = ()) -> ProtocolConfig:
    """The :class:`ProtocolConfig` of the parsed protocol flags (absent flags keep the defaults; ``skip``:
    fields whose flag means something else in this command)."""
    def given(cls: type) -> dict[str, Any]:
        return {f.name: getattr(args, f.name) for f in config_fields(cls)
                if hasattr(args, f.name) and f.name not in skip}

    return ProtocolConfig(**given(ProtocolConfig), kmeans=KMeansConfig(**given(KMeansConfig)),
                          probe=ProbeConfig(**given(ProbeConfig)))


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
    parser.set_defaults(_writes_output=True)  # cli.main: the output's lock and resource-limit scope


#: What the first bytes of a file qrprobe wrote hold, per kind of file output (``check_output(file=KIND)``).
FILE_MARKERS: dict[str, bytes | tuple[bytes, ...]] = {"report": b'<meta name="generator" content="qrprobe',
                "study-template": (b"# A qrprobe study", b"# The paper's study")}


def check_output(args: argparse.Namespace, *, file: str | None = None, kind: str | None = None,
                 inputs: dict[str, Any] | None = None, images: str | None = None) -> Path:
    """``-o`` before any work.

    The output must not be an input or hold one (``inputs``), nor lie in the image folder (``images``). An
    existing, non-empty output needs ``--overwrite``, which replaces only what qrprobe wrote: a directory
    artifact of ``kind`` (``qrprobe._atomic.ARTIFACT_MARKERS``), or for a file output (``file``, a key of
    :data:`FILE_MARKERS`) a file whose first bytes show that qrprobe wrote it.
    """
    from .._atomic import check_not_an_input, check_replaceable, check_writable
    from ..errors import QRProbeInputError

    out = Path(args.out)
    check_not_an_input(out, inputs or {}, images=images, what="--out")
    if file is None:
        check_replaceable(out, args.overwrite, kind, "--out")
        check_writable(out)
        return out
    if out.is_dir():
        raise QRProbeInputError(f"--out {str(out)!r} is a directory; give the path of a file")
    if out.exists() or out.is_symlink():
        if not args.overwrite:
            raise QRProbeInputError(f"--out {str(out)!r} already exists (pass --overwrite to replace it)")
        if out.is_symlink() or not out.is_file() or not _starts_with_marker(out, FILE_MARKERS[file]):
            raise QRProbeInputError(f"--out {str(out)!r} was not written by qrprobe; --overwrite replaces only a "
                                    f"{file.replace('-', ' ')} file that qrprobe wrote — choose another path")
    check_writable(out)
    return out


def _starts_with_marker(path: Path, markers: bytes | tuple[bytes, ...]) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
        return any(m in head for m in ((markers,) if isinstance(markers, bytes) else markers))
    except OSError:
        return False


def at_least(low: int):
    """An argparse type: an integer ≥ ``low``."""
    return parse_int_at_least(low)


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


def add_backend(parser: argparse.ArgumentParser, cls: type) -> None:
    """``--backend {local,ray}`` (the field ``backend`` of ``cls``: extract, label) and the Ray backend's flags."""
    r = parser.add_argument_group("backend (Ray: pip install 'qrprobe[ray]')")
    add_config_arguments(r, cls, only=("backend",))
    r.add_argument("--address", default=None, metavar="ADDR",
                   help="Ray cluster to join (auto, HOST:6379, ray://HOST:10001); its nodes must see the images and "
                        "qrprobe at the same paths [default: start a local Ray runtime]")
    r.add_argument("--actors", type=int, default=None, metavar="N",
                   help="model (label: expert) actors [default: one per GPU of the cluster; on CPUs, half the "
                        "cluster's CPUs]")
    r.add_argument("--num-gpus-per-actor", type=float, default=None, metavar="G",
                   help="GPUs per actor (0.5: two actors share a GPU) [default: 1 when the cluster has GPUs and "
                        "--device is not cpu, else 0]")
    r.add_argument("--cpus-per-actor", type=float, default=1.0, metavar="C",
                   help="CPUs per actor, also its torch threads [default: 1]")
    r.add_argument("--num-cpus", type=int, default=None, metavar="N",
                   help="CPUs of the local Ray runtime (without --address) [default: all of this machine's]")
    r.add_argument("--object-store-gb", type=float, default=None, metavar="GB",
                   help="object store of the local Ray runtime, GiB (without --address) [default: Ray's, 30%% of "
                        "the memory]")


def ray_options_from_args(args: argparse.Namespace):
    """The :class:`~qrprobe.raycluster.RayOptions` of the parsed ``--backend ray`` flags (None for local)."""
    if args.backend != "ray":
        return None
    from ..raycluster import RayOptions, check_address

    # before any work: an unreachable cluster is an input error, not minutes of Ray's retries
    if args.address:
        check_address(args.address)
    elif os.environ.get("RAY_ADDRESS"):
        check_address(os.environ["RAY_ADDRESS"], what="RAY_ADDRESS")
    gpus = args.num_gpus_per_actor
    if gpus is None and getattr(args, "device", None) == "cpu":
        gpus = 0.0  # --device cpu: CPU actors, even on a cluster with GPUs
    return RayOptions(address=args.address, actors=args.actors, num_gpus_per_actor=gpus,
                      cpus_per_actor=args.cpus_per_actor, num_cpus=args.num_cpus,
                      object_store_gb=args.object_store_gb)


__all__ = ["add_backend", "add_concept_arguments", "add_config_arguments", "add_config_groups", "add_deprecated_flag",
           "add_device", "add_output", "add_protocol_arguments", "add_quiet", "at_least", "check_output",
           "config_from_args", "flag", "int_list", "name_list", "protocol_from_args", "ray_options_from_args"]
