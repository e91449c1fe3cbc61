"""Image sources: folder trees, file lists, webdataset tar shards; decoding with clear failure reasons."""

from __future__ import annotations

import io

import numpy as np
import pytest

from qrprobe.errors import QRProbeInputError
from qrprobe.images import (
    ImageDecodeError,
    decode_image,
    file_list_source,
    folder_source,
    open_images,
    paths_source,
    tar_source,
)
from qrprobe.synthetic import random_image, random_jpeg, write_image_folder, write_webdataset_shards


def test_folder_ids_labels_order_and_rejected_files(tmp_path):
    root = write_image_folder(tmp_path / "imgs", {"cat": 3, "dog": 2}, corrupt=True)
    (root / ".hidden.jpg").write_bytes(b"x")
    src = folder_source(root)
    assert src.kind == "folder"
    assert src.image_ids == ["cat/000.jpg", "cat/001.jpg", "cat/002.jpg", "cat/broken.jpg",
                             "dog/000.jpg", "dog/001.jpg"]
    assert src.labels == ["cat"] * 4 + ["dog"] * 2
    assert [r["image_id"] for r in src.rejected] == ["notes.txt"]
    assert "not an image file" in src.rejected[0]["reason"]
    assert src.read_bytes(0) == (root / "cat" / "000.jpg").read_bytes()
    assert all(s > 0 for s in src.sizes)


def test_flat_folder_has_no_labels(tmp_path):
    for i in range(3):
        random_image(i).save(tmp_path / f"img{i}.png")
    src = folder_source(tmp_path)
    assert src.labels is None
    assert src.image_ids == ["img0.png", "img1.png", "img2.png"]


def test_inputs_hash_is_stable_and_sensitive(tmp_path):
    root = write_image_folder(tmp_path / "imgs", {"a": 2, "b": 2})
    h1, h2 = folder_source(root).inputs_hash(), folder_source(root).inputs_hash()
    assert h1 == h2
    (root / "b" / "002.jpg").write_bytes(random_jpeg(77))
    assert folder_source(root).inputs_hash() != h1


def test_empty_folder_is_an_input_error(tmp_path):
    with pytest.raises(QRProbeInputError, match="no image files"):
        folder_source(tmp_path)


def test_csv_list_with_header_and_relative_paths(tmp_path):
    root = write_image_folder(tmp_path / "imgs", {"a": 2})
    lst = tmp_path / "list.csv"
    lst.write_text("label,path,image_id\nx,imgs/a/000.jpg,first\ny,imgs/a/001.jpg,second\n")
    src = file_list_source(lst)
    assert src.image_ids == ["first", "second"]
    assert src.labels == ["x", "y"]
    assert src.paths[0] == str((root / "a" / "000.jpg").resolve())


def test_text_list_positional_forms(tmp_path):
    write_image_folder(tmp_path / "imgs", {"a": 3})
    lst = tmp_path / "list.txt"
    lst.write_text("# comment\nimgs/a/000.jpg\n\n")
    assert file_list_source(lst).image_ids == ["imgs/a/000.jpg"]
    lst.write_text("one\timgs/a/000.jpg\tcat\ntwo\timgs/a/001.jpg\tdog\n")
    src = file_list_source(lst)
    assert src.image_ids == ["one", "two"]
    assert src.labels == ["cat", "dog"]
    lst.write_text("one imgs/a/000.jpg\ntwo imgs/a/001.jpg\n")
    assert file_list_source(lst).labels is None


def test_list_errors_name_the_line(tmp_path):
    lst = tmp_path / "bad.txt"
    lst.write_text("a\tb\tc\td\n")
    with pytest.raises(QRProbeInputError, match=r"bad.txt:1"):
        file_list_source(lst)
    lst.write_text("x\ta.jpg\nx\tb.jpg\n")
    with pytest.raises(QRProbeInputError, match="duplicate image ids"):
        file_list_source(lst)


def test_tar_shards_webdataset_layout(tmp_path):
    shards = write_webdataset_shards(tmp_path / "wds", 2, 3, extra_sample=True)
    src = tar_source(str(tmp_path / "wds" / "shard-{000..001}.tar"))
    assert src.kind == "tar"
    assert len(src) == 6
    assert src.image_ids[:3] == ["s000_000", "s000_001", "s000_002"]
    assert src.labels == ["0", "1", "0", "0", "1", "0"]
    assert src.read_bytes(4) == random_jpeg(101)
    assert [r["image_id"] for r in src.rejected] == ["s000_meta", "s001_meta"]
    assert src.paths[0].endswith("shard-000.tar::s000_000.jpg")
    same = open_images(str(tmp_path / "wds"))
    assert same.kind == "tar"
    assert same.image_ids == src.image_ids
    assert open_images([str(p) for p in shards]).image_ids == src.image_ids


def test_tar_duplicate_keys_and_compressed_shards_are_errors(tmp_path):
    write_webdataset_shards(tmp_path / "a", 1, 2)
    write_webdataset_shards(tmp_path / "b", 1, 2)
    with pytest.raises(QRProbeInputError, match="duplicate image ids"):
        tar_source([str(tmp_path / "a" / "shard-000.tar"), str(tmp_path / "b" / "shard-000.tar")])
    gz = tmp_path / "x.tar"
    import gzip

    gz.write_bytes(gzip.compress((tmp_path / "a" / "shard-000.tar").read_bytes()))
    with pytest.raises(QRProbeInputError, match="uncompressed"):
        tar_source(str(gz))


def test_open_images_dispatch_and_errors(tmp_path):
    write_image_folder(tmp_path / "imgs", {"a": 1})
    assert open_images(tmp_path / "imgs").kind == "folder"
    (tmp_path / "l.txt").write_text("imgs/a/000.jpg\n")
    assert open_images(tmp_path / "l.txt").kind == "file-list"
    with pytest.raises(QRProbeInputError, match="not found"):
        open_images(tmp_path / "missing")
    src = paths_source([tmp_path / "imgs" / "a" / "000.jpg"], image_ids=["x"])
    assert src.image_ids == ["x"]
    assert open_images(src) is src


def test_select_keeps_columns(tmp_path):
    src = folder_source(write_image_folder(tmp_path / "imgs", {"a": 2, "b": 2}))
    sub = src.select([3, 0])
    assert sub.image_ids == ["b/001.jpg", "a/000.jpg"]
    assert sub.labels == ["b", "a"]
    np.testing.assert_array_equal(sub.sizes, src.sizes[[3, 0]])


def test_decode_modes_and_failures():
    for mode in ("RGBA", "L"):
        buf = io.BytesIO()
        random_image(1, mode=mode).save(buf, format="PNG")
        img = decode_image(buf.getvalue())
        assert img.mode == "RGB"
        assert img.size == (40, 30)
    full = random_jpeg(3, (64, 48))
    with pytest.raises(ImageDecodeError, match="truncated"):
        decode_image(full[: len(full) // 2])
    with pytest.raises(ImageDecodeError, match="not an image"):
        decode_image(b"hello, world")
    with pytest.raises(ImageDecodeError, match="empty"):
        decode_image(b"")


def test_loaders_pickle_and_select_keeps_the_images(tmp_path):
    """What a worker process (or a distributed backend) receives: a picklable row -> RGB image."""
    import pickle

    folder = folder_source(write_image_folder(tmp_path / "imgs", {"a": 2, "b": 1}))
    shards = tar_source(write_webdataset_shards(tmp_path / "wds", 1, 3))
    arrays = [random_image(k) for k in range(3)]
    memory = open_images(arrays, image_ids=["x", "y", "z"], labels=["p", "q", "p"])
    assert memory.kind == "memory"
    assert memory.labels == ["p", "q", "p"]
    for src in (folder, shards, memory):
        loader = pickle.loads(pickle.dumps(src.loader()))
        for row in range(len(src)):
            np.testing.assert_array_equal(np.asarray(loader(row)), np.asarray(src.load(row)))
        sub = src.select([2, 0])
        np.testing.assert_array_equal(np.asarray(sub.load(0)), np.asarray(src.load(2)))
        assert sub.image_ids == [src.image_ids[2], src.image_ids[0]]
    small = memory.loader(max_side=10)(0)
    assert small.mode == "RGB"
    assert max(small.size) == 10
    assert arrays[0].size == (40, 30)


def test_in_memory_source_hash_covers_pixels_and_ids():
    a = [random_image(1), random_image(2)]
    h = open_images(a).inputs_hash()
    assert open_images([random_image(1), random_image(2)]).inputs_hash() == h
    assert open_images([random_image(1), random_image(3)]).inputs_hash() != h
    assert open_images(a, image_ids=["p", "q"]).inputs_hash() != h
    with pytest.raises(QRProbeInputError, match="2 images but 1 image ids"):
        open_images(a, image_ids=["p"])
    with pytest.raises(QRProbeInputError, match="only be given with a list"):
        open_images(".", image_ids=["p"])
