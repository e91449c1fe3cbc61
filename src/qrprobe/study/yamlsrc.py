"""YAML with locations: every value remembers the file, line and column it came from.

``load_located(path)`` returns plain Python values (dict, list, str, int, float, bool, None) plus a map from
each value's path in the document (a tuple such as ``("models", 1, "weights")``) to ``"file:line:column"``, so
a config error can say exactly where it is.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import QRProbeInputError

Location = dict[tuple, str]


def load_located(path: str | os.PathLike) -> tuple[object, Location]:
    """Parse a YAML file into plain values and their locations."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise QRProbeInputError(f"study config not found: {str(path)!r}")
    text = path.read_text(encoding="utf-8")
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise QRProbeInputError(f"{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from exc
    locations: Location = {}
    if node is None:
        return {}, {(): f"{path}:1:1"}
    value = _convert(node, (), path, locations)
    return value, locations


def _mark(path: Path, node) -> str:
    return f"{path}:{node.start_mark.line + 1}:{node.start_mark.column + 1}"


def _convert(node, key_path: tuple, path: Path, locations: Location):
    """Plain value of ``node``; a mapping entry is located at its key, anything else at itself."""
    import yaml

    locations.setdefault(key_path, _mark(path, node))
    if isinstance(node, yaml.MappingNode):
        out = {}
        for key_node, value_node in node.value:
            key = key_node.value
            if key in out:
                raise QRProbeInputError(f"{_mark(path, key_node)}: duplicate key {key!r}")
            locations[(*key_path, key)] = _mark(path, key_node)
            out[key] = _convert(value_node, (*key_path, key), path, locations)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, (*key_path, i), path, locations) for i, item in enumerate(node.value)]
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()
