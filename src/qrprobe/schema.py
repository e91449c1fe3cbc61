"""The schema machinery: parameters declared once, as fields of frozen dataclasses, with what every front end needs.

A parameter is a dataclass field made by :func:`param`: its default, help text, check, choices, deprecated
names, and where it surfaces (a CLI flag, a study key, part of an artifact's identity). The configs built from
it (the protocol's ``ProtocolConfig`` in :mod:`qrprobe.engine.config`, ``ExtractConfig`` in
:mod:`qrprobe.features.config`, ``LabelConfig`` in :mod:`qrprobe.experts.label_config`, each analysis' options)
are the one source of:

- the CLI flags (:func:`qrprobe.cli.options.add_config_arguments`: ``--`` + the field name);
- the study file's keys (:mod:`qrprobe.study.schema` builds them; :func:`derived_dataclass` copies fields);
- the Python keyword parameters (:func:`keyword_signature` gives a function taking ``**params`` the schema's
  signature; :func:`with_params` checks the names);
- the cache keys (:func:`identity`: the fields marked ``key=``).

A bad value raises :class:`~qrprobe.errors.ParameterError` naming the field; the CLI names the flag instead,
the study loader the location in the file.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import inspect
import math
import typing
import warnings
from collections.abc import Callable, Iterable
from dataclasses import field
from typing import Any

from .errors import ParameterError

Check = Callable[[Any], str | None]  # returns what was expected, or None when the value is fine
KEY_MODES = (True, False, "if_set")


def param(default: Any, help: str, *, check: Check | None = None, choices: tuple[str, ...] | None = None,
          aliases: tuple[str, ...] = (), metavar: str | None = None, cli: bool = True, study: bool = True,
          file: bool = False, shown: str | None = None, key: bool | str | None = None, group: str | None = None,
          switch: bool | str = False, parse: Callable[[str], Any] | None = None,
          canonical: Callable[[Any], Any] | None = None) -> Any:
    """A config field: its default and what the CLI, the study schema, the checks and the cache keys need to know.

    ``cli`` / ``study``: whether the CLI has a flag / the study file has a key for it. ``file``: the value is
    a path that must exist (the study schema resolves it against the study file's folder). ``aliases``:
    deprecated names still accepted. ``shown``: how help texts show the default when its value does not say
    it (e.g. ``None`` meaning "all points"). A list or dict default is copied for each instance.

    ``key``: whether the value is part of the identity of what is computed with it (a feature store, a concept
    bank, a study's stage): ``True``, ``False``, or ``"if_set"`` (only when it differs from the default: a
    parameter added after artifacts were made, whose keys then stay valid); None: not declared (not part of it).
    ``canonical``: how an artifact records the value (e.g. a preset name → its settings).

    CLI only: ``group``: the flag's group in ``--help``; ``parse``: the argparse type (text → value), where the
    field's type annotation does not give it; ``switch`` (booleans): one flag that sets the value other than
    the default (``--name`` for a default of false, ``--no-name`` for true), with the field's help, or with
    this text when it is a string; its default is shown only when ``shown`` says it.
    """
    if key not in (*KEY_MODES, None):
        raise TypeError(f"key must be one of {KEY_MODES} or None, got {key!r}")  # a schema bug
    meta = {"help": help, "check": check, "choices": choices, "aliases": aliases, "metavar": metavar,
            "cli": cli, "study": study, "file": file, "shown": shown, "key": key, "group": group, "switch": switch,
            "parse": parse, "canonical": canonical}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


# ------------------------------------------------------------------------------------------------ checks
def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def int_at_least(low: int, high: int | None = None) -> Check:
    def check(value: Any) -> str | None:
        if is_int(value) and value >= low and (high is None or value <= high):
            return None
        return f"an integer ≥ {low}" + (f" and ≤ {high}" if high is not None else "")
    return check


def optional_int_at_least(low: int) -> Check:
    inner = int_at_least(low)

    def check(value: Any) -> str | None:
        return None if value is None else inner(value)
    return check


def number_in(low: float, high: float, *, low_open: bool = False, high_open: bool = False) -> Check:
    def check(value: Any) -> str | None:
        if _is_number(value):
            above = value > low if low_open else value >= low
            below = value < high if high_open else value <= high
            if above and below:
                return None
        return f"a finite number in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    return check


def parse_int_at_least(low: int) -> Callable[[str], int]:
    """A CLI type (``param(parse=...)``): text → an integer ≥ ``low``; a bad value is a usage error."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an integer ≥ {low}, got {value}")
        return value
    return parse


# ------------------------------------------------------------------------------------------------ fields
def config_fields(cls: type) -> list[dataclasses.Field]:
    """The fields of a config dataclass that carry a value (not a nested config such as ``probe``)."""
    return [f for f in dataclasses.fields(cls) if "help" in f.metadata
            and not dataclasses.is_dataclass(field_default(f))]


def field_default(f: dataclasses.Field) -> Any:
    """The default value of a dataclass field (calling its factory)."""
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def defaults(cls: type) -> dict[str, Any]:
    """Every field of a config dataclass with its default."""
    return {f.name: field_default(f) for f in config_fields(cls)}


def resolve_aliases(cls: type, values: dict[str, Any], *, warn: bool = True) -> dict[str, Any]:
    """Rename deprecated field names of ``cls`` in ``values`` to the current ones (warning when ``warn``)."""
    for f in dataclasses.fields(cls):
        for alias in f.metadata.get("aliases", ()):
            if alias in values:
                if f.name in values:
                    raise TypeError(f"both {f.name!r} and its deprecated name {alias!r} were given")
                if warn:
                    warnings.warn(f"{alias!r} is deprecated; use {f.name!r}", FutureWarning, stacklevel=4)
                values[f.name] = values.pop(alias)
    return values


def normalize_tuple(config: Any, name: str) -> None:
    """Store a list given for a tuple field of a frozen config as a tuple."""
    value = getattr(config, name)
    if isinstance(value, list):
        object.__setattr__(config, name, tuple(value))


def validate(config: Any) -> None:
    """Check every field of a config dataclass against its metadata; raise :class:`ParameterError`."""
    for f in config_fields(type(config)):
        value = getattr(config, f.name)
        choices = f.metadata.get("choices")
        if choices is not None and value not in choices:
            raise ParameterError(f.name, f"expected one of {', '.join(choices)}, got {value!r}")
        check = f.metadata.get("check")
        expected = check(value) if check is not None else None
        if expected is not None:
            raise ParameterError(f.name, f"expected {expected}, got {value!r}")


# ------------------------------------------------------------------------------------------------ identity
def identity(config: Any, *, only: Iterable[str] | None = None,
             value: Callable[[dataclasses.Field, Any], tuple[str, Any]] | None = None) -> dict[str, Any]:
    """The values of ``config`` that make the identity of what is computed with it: its fields marked ``key``.

    ``key=True`` fields always, ``key="if_set"`` fields only when not at their default. ``only``: these field
    names only. ``value(field, v) -> (name, v)``: how the artifact identifies a value (a file by its content
    hash, a preset by its settings); default: the field's name and value as they are.
    """
    only = None if only is None else set(only)
    out = {}
    for f in config_fields(type(config)):
        mode = f.metadata.get("key")
        if not mode or (only is not None and f.name not in only):
            continue
        v = getattr(config, f.name)
        if mode == "if_set" and v == field_default(f):
            continue
        name, v = value(f, v) if value is not None else (f.name, v)
        out[name] = v
    return out


# ------------------------------------------------------------------------------------------------ Python API
def with_params(cls: type, config: Any = None, params: dict[str, Any] | None = None, *, what: str = "") -> Any:
    """``config`` (default: ``cls()``) with the keyword overrides ``params`` (checked when built).

    An unknown name raises ``TypeError`` naming the closest valid one; so does a ``config`` of another type.
    """
    if config is not None and not isinstance(config, cls):
        raise TypeError(f"config: expected a {cls.__name__}, got {type(config).__name__}")
    params = dict(params or {})
    names = [f.name for f in config_fields(cls)]
    for name in params:
        if name not in names:
            close = difflib.get_close_matches(name, names, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise TypeError(f"unknown {what or cls.__name__} parameter {name!r}{hint}")
    base: Any = config if config is not None else cls()
    return dataclasses.replace(base, **params) if params else base


def keyword_signature(fn: Callable, cls: type) -> inspect.Signature:
    """The signature of ``fn`` (which takes ``**params``) with one keyword-only parameter per field of ``cls``
    (its default and type) in place of ``**params``."""
    signature = inspect.signature(fn)
    own = [p for p in signature.parameters.values() if p.kind is not p.VAR_KEYWORD]
    hints = typing.get_type_hints(cls)
    fields = [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=field_default(f),
                                annotation=hints[f.name]) for f in config_fields(cls)]
    return signature.replace(parameters=[*own, *fields])


def set_signature(fn: Callable, signature: inspect.Signature) -> None:
    """Make ``inspect.signature(fn)`` (``help()``, IDEs, scikit-learn's ``get_params``) report ``signature``."""
    fn.__signature__ = signature  # type: ignore[attr-defined]


def document_fields(fn: Callable, cls: type) -> None:
    """Append to ``fn``'s docstring an ``Other Parameters`` section: each field of ``cls`` with its help text and
    default (``help(fn)`` then lists what ``**params`` takes)."""
    if fn.__doc__ is None:  # python -OO
        return
    lines = []
    for f in config_fields(cls):
        shown = f.metadata.get("shown") or repr(field_default(f))
        choices = f" (one of {', '.join(f.metadata['choices'])})" if f.metadata.get("choices") else ""
        lines.append(f"    {f.name} : {f.metadata['help']}{choices}; default: {shown}")
    fn.__doc__ = (inspect.cleandoc(fn.__doc__) + f"\n\nOther Parameters ({cls.__name__})\n"
                  + "-" * (len(cls.__name__) + 19) + "\n" + "\n".join(lines) + "\n")


def derived_dataclass(name: str, base: type, source: type, *, module: str, select: Callable[[dataclasses.Field], bool]
                      ) -> type:
    """A frozen dataclass ``name``: the fields of ``base``, then copies of the fields of ``source`` that
    ``select`` keeps (same type, default, help, checks and key); it checks its fields when built. Used for
    study specs made of a config's fields (a study's model: its own keys and the extraction's)."""
    hints = typing.get_type_hints(source)
    fields = []
    for f in config_fields(source):
        if select(f):
            default = ({"default_factory": f.default_factory} if f.default_factory is not dataclasses.MISSING
                       else {"default": f.default})
            fields.append((f.name, hints[f.name], field(metadata=f.metadata, **default)))
    cls = dataclasses.make_dataclass(name, fields, bases=(base,), frozen=True,
                                     namespace={"__post_init__": validate, "__doc__": base.__doc__})
    cls.__module__ = module
    return cls


__all__ = ["KEY_MODES", "Check", "config_fields", "defaults", "derived_dataclass", "document_fields", "field_default",
           "identity", "int_at_least", "is_int", "keyword_signature", "normalize_tuple", "number_in",
           "optional_int_at_least", "param", "parse_int_at_least", "resolve_aliases", "set_signature", "validate",
           "with_params"]
