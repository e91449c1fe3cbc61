"""IMAGES in whatever form the user gives it -> the matching :class:`ImageSource`."""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence

from ..errors import QRProbeInputError
from .decode import IMAGE_EXTENSIONS
from .filelist import file_list_source, paths_source
from .files import why_not_a_file
from .folder import folder_source
from .memory import memory_source
from .source import ImageSource
from .tar import is_shard_pattern, tar_source

_LIST_SUFFIXES = (".csv", ".tsv", ".txt", ".lst", ".list")


def open_images(spec: str | os.PathLike | Sequence | ImageSource, image_ids: Sequence[str] | None = None,
                labels: Sequence[str] | None = None) -> ImageSource:
    """Open IMAGES whatever its form: a folder, a file list, tar shard(s), a list of image paths, a list of
    in-memory images (numpy uint8 arrays or PIL images), or a ready :class:`ImageSource`.

    A directory that holds ``*.tar`` files and no images is read as tar shards; a ``.csv``/``.tsv``/
    ``.txt``/``.lst`` file as a file list; a ``.tar`` file or a pattern (``{000..009}``, ``*``) as shards.
    ``image_ids`` and ``labels`` (one per image) name the images of a list of paths or of in-memory images;
    the other forms carry their own.
    """
    if isinstance(spec, (ImageSource, str, os.PathLike)):
        if image_ids is not None or labels is not None:
            raise QRProbeInputError("IMAGES: image ids and labels can only be given with a list of image paths "
                                    "or of in-memory images")
        return spec if isinstance(spec, ImageSource) else _open_path(str(spec))
    items = list(spec)
    if not items:
        raise QRProbeInputError("IMAGES: no images given")
    if all(isinstance(s, (str, os.PathLike)) for s in items):
        names = [str(s) for s in items]
        if image_ids is None and labels is None and all(s.endswith(".tar") for s in names):
            return tar_source(names)
        return paths_source(names, image_ids=image_ids, labels=labels)
    return memory_source(items, image_ids=image_ids, labels=labels)


def _open_path(text: str) -> ImageSource:
    if os.path.isdir(text):
        has_tars = bool(glob.glob(os.path.join(text, "*.tar")))
        has_images = any(os.path.splitext(n)[1].lower() in IMAGE_EXTENSIONS for n in os.listdir(text))
        has_dirs = any(e.is_dir() and not e.name.startswith(".") for e in os.scandir(text))
        if has_tars and not has_images and not has_dirs:
            return tar_source(text)
        return folder_source(text)
    if is_shard_pattern(text):
        return tar_source(text)
    if os.path.isfile(text):
        if text.lower().endswith(_LIST_SUFFIXES):
            return file_list_source(text)
        raise QRProbeInputError(f"IMAGES: {text!r} is a file but not a file list (.csv, .tsv, .txt, .lst) "
                                "or a .tar shard")
    if os.path.exists(text):
        raise QRProbeInputError(f"IMAGES: {text!r} {why_not_a_file(text)}; expected a folder, a file list or "
                                "tar shards")
    raise QRProbeInputError(f"IMAGES: {text!r} not found (expected a folder, a file list or tar shards)")
