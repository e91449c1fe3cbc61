"""Images named in a file list (CSV, TSV or text) or given as a list of paths.

``image_id`` is the list's ``image_id`` column (the path as written when the list has none), or the path as
given for a list of paths. A listed file that is missing or unusable is kept in the listing and reported with
its reason when it is read, so the list's rows and the report line up.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import QRProbeInputError
from .files import why_not_a_file
from .source import ImageSource

_PATH_COLUMNS = ("path", "file", "filename", "filepath", "image", "image_path")
_ID_COLUMNS = ("image_id", "id", "key")
_LABEL_COLUMNS = ("label", "class", "category", "target")


def file_list_source(list_path: str | os.PathLike) -> ImageSource:
    """Images named in a CSV or text list: ``image_id, path[, label]`` (or just ``path``) per row.

    A CSV/TSV with a header names its columns (``path`` required; ``image_id`` and ``label`` optional);
    without a header, or in a text list, the columns are positional: ``path`` | ``image_id, path`` |
    ``image_id, path, label``, separated by tabs, commas or (text lists) white space. Blank lines and lines
    starting with ``#`` are ignored. Relative paths are relative to the list file's folder. The list must be
    UTF-8 text.
    """
    list_path = Path(list_path)
    if not list_path.is_file():
        raise QRProbeInputError(f"IMAGES: file list {str(list_path)!r} {why_not_a_file(list_path)}")
    rows = _read_list_rows(list_path)
    if not rows:
        raise QRProbeInputError(f"IMAGES: file list {str(list_path)!r} names no images")
    base = list_path.parent
    ids, paths, labels = [], [], []
    for lineno, row in rows:
        if len(row) == 1:
            image_id, path, label = row[0], row[0], None
        elif len(row) in (2, 3):
            image_id, path = row[0], row[1]
            label = row[2] if len(row) == 3 else None
        else:
            raise QRProbeInputError(f"{list_path}:{lineno}: expected 'path', 'image_id, path' or "
                                    f"'image_id, path, label', got {len(row)} fields")
        if not path or "\0" in path:
            raise QRProbeInputError(f"{list_path}:{lineno}: {'a NUL byte in the' if path else 'empty'} path")
        full = path if os.path.isabs(path) else os.path.join(base, path)
        ids.append(str(image_id))
        paths.append(os.path.abspath(full))
        labels.append(None if label is None else str(label))
    has_labels = any(lab is not None for lab in labels)
    sizes = np.array([_size_or_unknown(p) for p in paths], dtype=np.int64)
    return ImageSource("file-list", str(list_path), ids, paths,
                       [lab or "" for lab in labels] if has_labels else None, sizes)


def paths_source(paths: Sequence[str | os.PathLike], image_ids: Sequence[str] | None = None,
                 labels: Sequence[str] | None = None) -> ImageSource:
    """An in-memory list of image files; ids default to the paths as given."""
    given = [str(p) for p in paths]
    bad = next((p for p in given if not p or "\0" in p), None)
    if bad is not None:
        raise QRProbeInputError(f"IMAGES: {bad!r} is not a path (empty or with a NUL byte)")
    ids = list(given) if image_ids is None else [str(i) for i in image_ids]
    full = [os.path.abspath(p) for p in given]
    return ImageSource("paths", f"<{len(given)} paths>", ids, full,
                       None if labels is None else [str(v) for v in labels],
                       np.array([_size_or_unknown(p) for p in full], dtype=np.int64))


def _size_or_unknown(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return -1


def _read_text(list_path: Path) -> str:
    data = list_path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise QRProbeInputError(f"{list_path}:{line}: not UTF-8 text (byte {data[exc.start]:#04x}); save the "
                                "file list as UTF-8") from None


def _read_list_rows(list_path: Path) -> list[tuple[int, list[str]]]:
    """Parse a file list into ``(line_number, fields)`` in the canonical order ``[id,] path[, label]``."""
    text = _read_text(list_path)
    lines = [(i + 1, line) for i, line in enumerate(text.splitlines())
             if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        return []
    suffix = list_path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        delimiter = "\t" if suffix == ".tsv" else ","
        parsed = [(n, _csv_cells(list_path, n, line, delimiter)) for n, line in lines]
        header = [c.lower() for c in parsed[0][1]]
        path_col = next((header.index(c) for c in _PATH_COLUMNS if c in header), None)
        if path_col is None:
            if set(header) & {*_ID_COLUMNS, *_LABEL_COLUMNS}:  # a header, but without the paths
                raise QRProbeInputError(
                    f"{list_path}:{parsed[0][0]}: the header ({', '.join(parsed[0][1])}) has no path column; "
                    f"name the column of image paths one of {', '.join(_PATH_COLUMNS)}")
            return parsed
        id_col = next((header.index(c) for c in _ID_COLUMNS if c in header), None)
        label_col = next((header.index(c) for c in _LABEL_COLUMNS if c in header), None)
        out = []
        for n, cells in parsed[1:]:
            if len(cells) != len(header):
                raise QRProbeInputError(f"{list_path}:{n}: {len(cells)} fields, the header has {len(header)}")
            row = [cells[id_col] if id_col is not None else cells[path_col], cells[path_col]]
            if label_col is not None:
                row.append(cells[label_col])
            out.append((n, row))
        return out
    out = []
    for n, line in lines:
        line = line.strip()
        if "\t" in line:
            cells = line.split("\t")
        elif "," in line:
            cells = _csv_cells(list_path, n, line, ",")
        else:
            cells = line.split()
        out.append((n, [c.strip() for c in cells]))
    return out


def _csv_cells(list_path: Path, lineno: int, line: str, delimiter: str) -> list[str]:
    try:
        return [c.strip() for c in next(csv.reader([line], delimiter=delimiter))]
    except csv.Error as exc:
        raise QRProbeInputError(f"{list_path}:{lineno}: cannot parse the line ({exc})") from None
