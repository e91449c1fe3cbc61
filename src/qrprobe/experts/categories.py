"""Reading the shipped category lists (``qrprobe/data/*.txt``) and user class files."""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from importlib import resources

import numpy as np

from ..errors import QRProbeInputError

#: Short names users can pass instead of a class file.
BUILTIN_LISTS = {
    "places365": "places365.txt",
    "sun-attributes": "sun_attributes.txt",
    "minc": "minc.txt",
    "dtd": "dtd.txt",
    "coco-things": "coco_things.txt",
    "coco-things-91": "coco_things_91.txt",
    "coco-stuff": "coco_stuff.txt",
    "coco-voc": "coco_voc.txt",
    "sentiment": "sentiment.txt",
    "imagenet": "imagenet_classes.txt",
}


def _parse(text: str, source: str) -> tuple[list[int] | None, list[str]]:
    lines = [ln.rstrip("\r") for ln in text.splitlines()]
    lines = [ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise QRProbeInputError(f"{source}: no class names (expected one name per line)")
    if all("\t" in ln for ln in lines):
        ids, names = [], []
        for ln in lines:
            key, _, name = ln.partition("\t")
            try:
                ids.append(int(key))
            except ValueError:
                raise QRProbeInputError(f"{source}: expected 'id<TAB>name' lines, got {ln!r}") from None
            names.append(name.strip())
        return ids, names
    return None, [ln.strip() for ln in lines]


@functools.cache
def _builtin(filename: str) -> tuple[tuple[int, ...] | None, tuple[str, ...]]:
    text = resources.files("qrprobe").joinpath(f"data/{filename}").read_text(encoding="utf-8")
    ids, names = _parse(text, filename)
    return (None if ids is None else tuple(ids)), tuple(names)


def read_class_list(spec: str) -> tuple[list[int] | None, list[str]]:
    """Class names from a shipped list (``"places365"``, ``"coco-things"``...) or a user text file.

    A file has one name per line (the model's output order), or ``id<TAB>name`` lines (then the ids are the
    model's class indices). Blank lines and ``#`` comments are ignored.

    Returns
    -------
    ids : list of int, or None when the list is positional
    names : list of str
    """
    if spec in BUILTIN_LISTS:
        ids, names = _builtin(BUILTIN_LISTS[spec])
        return (None if ids is None else list(ids)), list(names)
    path = os.fspath(spec)
    if not os.path.isfile(path):
        raise QRProbeInputError(f"class list {path!r} not found (a text file with one class name per line, "
                                f"or one of {sorted(BUILTIN_LISTS)})")
    with open(path, encoding="utf-8-sig") as f:
        return _parse(f.read(), path)


def channel_columns(ids: Sequence[int] | np.ndarray | None, n_names: int, n_channels: int, first_id: int = 0,
                    what: str = "class list") -> np.ndarray:
    """Map a model's output channel -> concept column (-1: a channel no concept is read from).

    Parameters
    ----------
    ids : the class list's ids (None: positional, channel j is concept j)
    n_names : number of concepts M
    n_channels : the model's number of output channels C
    first_id : the class id of channel 0 (channel = id - first_id); e.g. 1 for a COCO-Stuff model whose
        channel 0 is ``person`` (id 1), 0 for a model whose channel 0 is background

    Returns
    -------
    int64 array (C,)
    """
    if ids is None:
        if n_names > n_channels:
            raise QRProbeInputError(f"{what}: {n_names} classes but the model has {n_channels} output channels")
        channels = np.arange(n_names)
    else:
        channels = np.asarray(ids, dtype=np.int64) - int(first_id)
        bad = [int(i) for i, c in zip(ids, channels, strict=True) if not 0 <= c < n_channels]
        if bad:
            raise QRProbeInputError(f"{what}: class ids {bad[:5]} fall outside the model's {n_channels} output "
                                    f"channels with first_id={first_id} (channel = id - first_id)")
    col = np.full(n_channels, -1, dtype=np.int64)
    col[channels] = np.arange(len(channels))
    return col


def places365_display_name(raw: str) -> str:
    """``/a/apartment_building/outdoor`` -> ``apartment building (outdoor)``."""
    parts = raw.strip("/").split("/")[1:]  # drop the initial-letter folder
    if not parts:
        return raw
    name = parts[0].replace("_", " ")
    if len(parts) > 1:
        name += " (" + " ".join(p.replace("_", " ") for p in parts[1:]) + ")"
    return name
