"""Checking a parsed config against dataclasses: unknown keys, wrong types and missing files, with locations.

``build(cls, value, path, locations)`` turns a plain mapping into an instance of the dataclass ``cls``,
recursively. Each field's type annotation says what is accepted (``int``, ``float``, ``str``, ``bool``,
``X | None``, ``list[X]``, ``dict[str, X]``, a nested dataclass); a field whose metadata has ``"file": True``
must name an existing file or directory (relative paths are resolved against ``base_dir``). The keys of a
nested dataclass whose field has ``"flat": True`` (the protocol's ``kmeans``) may also be given flat, at the
level of the field itself (``protocol: {k: 50}`` or ``protocol: {kmeans: {k: 50}}``, not both). Every error names
the location (``file:line:column``), the key path and what was expected; all errors are collected and
reported together.
"""

from __future__ import annotations

import dataclasses
import types
import typing
import warnings
from pathlib import Path

from ..errors import ParameterError, QRProbeInputError


class ConfigError(QRProbeInputError):
    """One or more config errors, each with its location."""


def _dotted(path: tuple) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


class _Checker:
    def __init__(self, locations: dict, base_dir: Path) -> None:
        self.locations = locations
        self.base_dir = base_dir
        self.errors: list[str] = []
        self.deprecated: list[str] = []

    def where(self, path: tuple) -> str:
        for cut in range(len(path), -1, -1):
            if path[:cut] in self.locations:
                return self.locations[path[:cut]]
        return "config"

    def fail(self, path: tuple, message: str) -> None:
        self.errors.append(f"{self.where(path)}: {_dotted(path)}: {message}")

    def build(self, cls, value, path: tuple):
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init and f.metadata.get("study", True)}
        aliases = {a: f.name for f in fields.values() for a in f.metadata.get("aliases", ())}
        flat = _flat_fields(fields.values(), hints)  # key → (nested field, its field of that name, its type)
        aliases.update({a: name for name, (_, f, _) in flat.items() for a in f.metadata.get("aliases", ())})
        if value is None:
            value = {}
        if not isinstance(value, dict):
            self.fail(path, f"expected a mapping with keys {sorted(fields)}, got {type(value).__name__}")
            return None
        kwargs = {}
        for key, item in value.items():
            name = aliases.get(key, key)
            if name not in fields and name not in flat:
                self.fail((*path, key), f"unknown key {key!r}{_hint(key, path, fields, hints, flat)}; valid keys: "
                                        f"{', '.join(sorted({*fields, *flat}))}")
                continue
            if name in kwargs:
                self.fail((*path, key), f"{key!r} is a deprecated name of {name!r}, which is also given")
                continue
            if name != key:
                self.deprecated.append(f"{self.where((*path, key))}: {_dotted((*path, key))}: "
                                       f"{key!r} is deprecated, use {name!r}")
            if name in flat:
                nested, f, hint = flat[name]
                spellings = {name, *f.metadata.get("aliases", ())}
                if isinstance(value.get(nested), dict) and spellings & set(value[nested]):
                    self.fail((*path, key), f"given both here and under {nested!r}; give it once")
                    continue
                kwargs[name] = self.convert(hint, item, (*path, key), f.metadata)
            else:
                kwargs[name] = self.convert(hints[name], item, (*path, key), fields[name].metadata)
        for name, f in fields.items():
            if name not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                self.fail(path, f"missing required key {name!r}")
        if self.errors:
            return None
        try:
            return cls(**kwargs)
        except ParameterError as exc:
            self.fail((*path, exc.param), exc.message)
            return None
        except QRProbeInputError as exc:
            self.fail(path, str(exc))
            return None

    def convert(self, hint, value, path: tuple, metadata=None):
        metadata = metadata or {}
        origin = typing.get_origin(hint)
        args = typing.get_args(hint)
        if origin in (typing.Union, types.UnionType):
            if value is None and type(None) in args:
                return None
            options = [a for a in args if a is not type(None)]
            if len(options) == 1:
                return self.convert(options[0], value, path, metadata)
            for option in options:  # e.g. int | list[int]: the first that accepts the value
                probe = _Checker(self.locations, self.base_dir)
                out = probe.convert(option, value, path, metadata)
                if not probe.errors:
                    return out
            self.fail(path, f"expected {_type_name(hint)}, got {value!r}")
            return None
        if dataclasses.is_dataclass(hint):
            return self.build(hint, value, path)
        if origin in (list, tuple):
            if not isinstance(value, list):
                self.fail(path, f"expected a list of {_type_name(args[0])}, got {value!r}")
                return None
            items = [self.convert(args[0], v, (*path, i), metadata) for i, v in enumerate(value)]
            return tuple(items) if origin is tuple else items
        if origin is dict:
            if not isinstance(value, dict):
                self.fail(path, f"expected a mapping, got {value!r}")
                return None
            return {str(k): self.convert(args[1], v, (*path, k)) for k, v in value.items()}
        if hint is typing.Any:
            return value
        if hint is bool:
            if not isinstance(value, bool):
                self.fail(path, f"expected true or false, got {value!r}")
            return value
        if hint is int:
            if isinstance(value, bool) or not isinstance(value, int):
                self.fail(path, f"expected an integer, got {value!r}")
            return value
        if hint is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                self.fail(path, f"expected a number, got {value!r}")
                return value
            return float(value)
        if hint is str:
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                self.fail(path, f"expected a string, got {value!r}")
                return value
            value = str(value)
            if metadata.get("file"):
                resolved = Path(value) if Path(value).is_absolute() else self.base_dir / value
                if not resolved.exists():
                    self.fail(path, f"file not found: {value!r} (looked at {resolved})")
                return str(resolved)
            return value
        raise TypeError(f"unsupported config type {hint!r}")  # a bug in a schema, not a user error


def _flat_fields(fields, hints: dict) -> dict[str, tuple[str, dataclasses.Field, typing.Any]]:
    """The keys that may be given flat: each field of a nested dataclass whose field is marked ``"flat"``, as
    ``key → (the nested field's name, the field, its type)``."""
    out = {}
    for f in fields:
        if f.metadata.get("flat") and dataclasses.is_dataclass(hints[f.name]):
            inner = hints[f.name]
            inner_hints = typing.get_type_hints(inner)
            out.update({g.name: (f.name, g, inner_hints[g.name]) for g in dataclasses.fields(inner)
                        if g.init and g.metadata.get("study", True)})
    return out


def _hint(key: str, path: tuple, fields: dict, hints: dict, flat: dict) -> str:
    """For an unknown ``key``: where it belongs when a nested section has it (``protocol.solver`` →
    ``protocol.probe.solver``), else the closest valid key, as ``"; did you mean …?"`` (or ``""``)."""
    for name, f in fields.items():
        inner = hints.get(name)
        if dataclasses.is_dataclass(inner) and not f.metadata.get("flat"):
            inner_fields = {g.name for g in dataclasses.fields(inner) if g.init and g.metadata.get("study", True)}
            if str(key) in inner_fields:
                where = _dotted((*path, name, key))
                return f"; did you mean {where}? ({key!r} belongs in the {name!r} section: {name}: {{{key}: …}})"
    import difflib

    close = difflib.get_close_matches(str(key), sorted({*fields, *flat}), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _type_name(hint) -> str:
    return getattr(hint, "__name__", str(hint)).replace("typing.", "")


def build(cls, value, locations: dict, base_dir: Path):
    """Validate ``value`` against the dataclass ``cls``; raise :class:`ConfigError` listing every problem."""
    checker = _Checker(locations, base_dir)
    out = checker.build(cls, value, ())
    if checker.errors:
        raise ConfigError("invalid study config:\n  " + "\n  ".join(checker.errors))
    for message in checker.deprecated:
        warnings.warn(message, FutureWarning, stacklevel=3)
    return out
