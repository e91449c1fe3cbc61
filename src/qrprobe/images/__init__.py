"""Image collections and robust decoding: one layer for extraction and labelling.

- :mod:`.source`: :class:`ImageSource` (ordered images with stable ids) and :class:`ImageLoader`
  (picklable ``row -> RGB PIL image``);
- one module per kind of collection: :mod:`.folder`, :mod:`.filelist` (file lists and lists of paths),
  :mod:`.tar` (webdataset shards), :mod:`.memory` (arrays and PIL images); :func:`open_images` picks one;
- :mod:`.decode` (bytes -> RGB, failures as reasons), :mod:`.modes` (every Pillow mode -> RGB, 16-bit and
  float images scaled), :mod:`.files` (regular files only, size cap);
- :mod:`.dataset`: the torch ``Dataset`` of the extraction (imports torch).
"""

from .decode import IMAGE_EXTENSIONS, ImageDecodeError, decode_image
from .filelist import file_list_source, paths_source
from .folder import folder_source
from .memory import memory_source
from .open import open_images
from .source import ImageLoader, ImageSource
from .tar import tar_source

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageDecodeError",
    "ImageLoader",
    "ImageSource",
    "decode_image",
    "file_list_source",
    "folder_source",
    "memory_source",
    "open_images",
    "paths_source",
    "tar_source",
]
