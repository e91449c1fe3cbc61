"""Image collections (folder tree, file list, webdataset tar shards) and robust decoding."""

from .decode import IMAGE_EXTENSIONS, ImageDecodeError, decode_image
from .sources import (
    ImageSource,
    file_list_source,
    folder_source,
    open_images,
    paths_source,
    tar_source,
)

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageDecodeError",
    "ImageSource",
    "decode_image",
    "file_list_source",
    "folder_source",
    "open_images",
    "paths_source",
    "tar_source",
]
