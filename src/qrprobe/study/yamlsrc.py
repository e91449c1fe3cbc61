"""YAML with locations: every value remembers the file, line and column it came from.

``load_located(path)`` returns plain Python values (dict, list, str, int, float, bool, None) plus a map from
each value's path in the document (a tuple such as ``("models", 1, "weights")``) to ``"file:line:column"``, so
a config error can say exactly where it is.

Aliases are expanded with a budget: a file whose values, once its aliases are expanded, would number more
than :data:`MAX_VALUES` (a "billion laughs" file grows exponentially), an alias that contains itself, or a file
over :data:`MAX_BYTES` is refused with its location before anything is built.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import QRProbeInputError

Location = dict[tuple, str]

#: At most this many values after alias expansion: a study lists tens of models and experts, not millions.
MAX_VALUES = 100_000
#: A study file is a few kilobytes; this bounds reading it.
MAX_BYTES = 4_000_000


def load_located(path: str | os.PathLike) -> tuple[object, Location]:
    """Parse a YAML file into plain values and their locations."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise QRProbeInputError(f"study config not found: {str(path)!r}")
    if path.stat().st_size > MAX_BYTES:
        raise QRProbeInputError(f"{path}: {path.stat().st_size:,} bytes; a study config is at most {MAX_BYTES:,}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise QRProbeInputError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise QRProbeInputError(f"{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from exc
    locations: Location = {}
    if node is None:
        return {}, {(): f"{path}:1:1"}
    value = _convert(node, (), path, locations, [0], set())
    return value, locations


def _mark(path: Path, node) -> str:
    return f"{path}:{node.start_mark.line + 1}:{node.start_mark.column + 1}"


def _convert(node, key_path: tuple, path: Path, locations: Location, count: list[int], open_nodes: set[int]):
    """Plain value of ``node``; a mapping entry is located at its key, anything else at itself. ``count``
    (one number, shared) bounds the values made; ``open_nodes`` holds the nodes being converted (a node met
    again inside itself is a recursive alias)."""
    import yaml

    count[0] += 1
    if count[0] > MAX_VALUES:
        raise QRProbeInputError(f"{_mark(path, node)}: the file expands to more than {MAX_VALUES:,} values once its "
                                "aliases (*name) are expanded; a study config needs far fewer")
    if id(node) in open_nodes:
        raise QRProbeInputError(f"{_mark(path, node)}: a recursive alias (an anchor that contains itself)")
    locations.setdefault(key_path, _mark(path, node))
    if isinstance(node, yaml.MappingNode):
        out = {}
        open_nodes.add(id(node))
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise QRProbeInputError(f"{_mark(path, key_node)}: a key must be a plain name, not a list or mapping")
            key = key_node.value
            if key in out:
                raise QRProbeInputError(f"{_mark(path, key_node)}: duplicate key {key!r}")
            key_at = (*key_path, key)
            locations[key_at] = _mark(path, key_node)
            out[key] = _convert(value_node, key_at, path, locations, count, open_nodes)
        open_nodes.discard(id(node))
        return out
    if isinstance(node, yaml.SequenceNode):
        open_nodes.add(id(node))
        out_list = [_convert(item, (*key_path, i), path, locations, count, open_nodes)
                    for i, item in enumerate(node.value)]
        open_nodes.discard(id(node))
        return out_list
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    except yaml.YAMLError as exc:  # e.g. a !!python/object tag: the safe loader constructs plain values only
        raise QRProbeInputError(f"{_mark(path, node)}: {getattr(exc, 'problem', None) or exc}") from None
    finally:
        loader.dispose()
