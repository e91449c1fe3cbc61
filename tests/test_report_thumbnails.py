"""Thumbnails come from plain files and from images inside tar shards; unreadable ones are skipped."""

from __future__ import annotations

import io
import tarfile

import numpy as np
import pytest

from qrprobe.report.thumbnails import load_thumbnail, thumbnails_for_rows

Image = pytest.importorskip("PIL.Image")


def _jpeg(colour) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), colour).save(buf, format="JPEG")
    return buf.getvalue()


def test_thumbnails_from_files_and_tar_members(tmp_path):
    (tmp_path / "a.jpg").write_bytes(_jpeg("red"))
    with tarfile.open(tmp_path / "shard.tar", "w") as tar:
        data = _jpeg("blue")
        info = tarfile.TarInfo("k1.jpg")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    paths = np.array([str(tmp_path / "a.jpg"), f"{tmp_path / 'shard.tar'}::k1.jpg",
                      f"{tmp_path / 'shard.tar'}::absent.jpg", str(tmp_path / "gone.jpg"), ""], dtype=object)
    thumbs, missing = thumbnails_for_rows(range(5), paths, np.array(["a", "k1", "x", "y", "z"]), size=16)
    assert missing == 3
    assert [t.jpeg is not None for t in thumbs] == [True, True, False, False, False]
    blue = Image.open(io.BytesIO(thumbs[1].jpeg)).convert("RGB").getpixel((5, 5))
    assert blue[2] > 200
    assert blue[0] < 60
    assert max(Image.open(io.BytesIO(load_thumbnail(paths[0], size=16))).size) == 16
