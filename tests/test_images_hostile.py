"""Hostile image inputs (issue 11, class 3): no image is silently duplicated, corrupted or lost.

Each case either stops with exit code 2 and a one-line message naming the input (no traceback, no output
left behind) or goes on and reports every file it did not use, with the reason.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from qrprobe.cli.main import main
from qrprobe.errors import QRProbeInputError
from qrprobe.features import FeatureStore
from qrprobe.images import ImageDecodeError, decode_image, file_list_source, folder_source, memory_source, tar_source
from qrprobe.synthetic import random_jpeg, write_image_folder, write_webdataset_shards

REPO = Path(__file__).resolve().parents[1]
EXTRACT = ["extract", "pixels-4", "--workers", "0", "--no-progress"]


def _cli(args: list[str], timeout: int = 240) -> subprocess.CompletedProcess:
    """Run ``qrprobe ARGS`` in a subprocess: a reader that hangs fails the test instead of blocking it."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    return subprocess.run([sys.executable, "-m", "qrprobe", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def _assert_input_error(capsys, args: list[str], *names: str, out: Path | None = None) -> str:
    """``qrprobe ARGS`` exits 2 with one error line naming ``names``, no traceback, and leaves no output."""
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    assert len([line for line in err.splitlines() if "error" in line]) == 1, err
    for name in names:
        assert name in err, err
    if out is not None:
        assert not out.exists()
        assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]
    return err


# ---------------------------------------------------------------------------------------------- folders
def test_symlink_loops_and_repeated_links_list_every_folder_once(tmp_path):
    root = write_image_folder(tmp_path / "imgs", {"a": 5, "b": 5})
    outside = write_image_folder(tmp_path / "outside", {"o": 1})
    (root / "a" / "loop").symlink_to("..")                     # a loop: the 10 files became 410 images
    (root / "b" / "self").symlink_to(".")
    (root / "a" / "to_b").symlink_to(root / "b")               # a second way into a folder of the tree
    (root / "ext").symlink_to(outside)                          # a folder outside the tree: followed once
    (root / "ext_again").symlink_to(outside)
    src = folder_source(root)
    assert src.image_ids == [f"{c}/{i:03d}.jpg" for c in "ab" for i in range(5)] + ["ext/o/000.jpg"]
    rejected = {r["image_id"]: r["reason"] for r in src.rejected}
    assert set(rejected) == {"a/loop", "b/self", "a/to_b", "ext_again"}
    assert all("already listed" in reason for reason in rejected.values())


def test_symlink_loop_through_the_cli(tmp_path, capsys):
    root = write_image_folder(tmp_path / "imgs", {"a": 5, "b": 5})
    (root / "a" / "loop").symlink_to("..")
    assert main([*EXTRACT, str(root), "-o", str(tmp_path / "f")]) == 0
    err = capsys.readouterr().err
    store = FeatureStore.open(tmp_path / "f")
    assert store.n == 10
    assert "a/loop" in err
    assert [s["image_id"] for s in store.manifest["skipped"]] == ["a/loop"]


def test_fifo_device_and_non_utf8_names_are_reported_not_read(tmp_path):
    root = write_image_folder(tmp_path / "imgs", {"a": 3})
    os.mkfifo(root / "a" / "pipe.jpg")                           # reading it would block forever
    (root / "a" / "zero.jpg").symlink_to("/dev/zero")           # reading it would never end
    bad_name = os.fsencode(str(root / "a")) + b"/caf\xe9.jpg"   # Latin-1 bytes: not UTF-8
    with open(bad_name, "wb") as f:
        f.write(random_jpeg(5))
    out = tmp_path / "f"
    run = _cli([*EXTRACT, str(root), "-o", str(out)])
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    skipped = {s["image_id"]: s["reason"] for s in FeatureStore.open(out).manifest["skipped"]}
    assert skipped == {"a/pipe.jpg": "not a regular file (a FIFO)",
                       "a/zero.jpg": "not a regular file (a character device)",
                       "a/caf\\xe9.jpg": "name is not valid UTF-8 (rename it to use it)"}
    assert FeatureStore.open(out).n == 3
    for name in ("pipe.jpg", "zero.jpg", "caf\\xe9.jpg"):
        assert name in run.stderr


def test_file_list_naming_a_fifo_a_device_and_a_folder(tmp_path):
    root = write_image_folder(tmp_path / "imgs", {"a": 2})
    os.mkfifo(tmp_path / "pipe.jpg")
    lst = tmp_path / "list.csv"
    lst.write_text("image_id,path\ngood,imgs/a/000.jpg\npipe,pipe.jpg\nzero,/dev/zero\ndir,imgs/a\n")
    out = tmp_path / "f"
    run = _cli([*EXTRACT, str(lst), "-o", str(out)])
    assert run.returncode == 0, run.stderr
    store = FeatureStore.open(out)
    assert list(store.image_ids) == ["good"]
    assert root.is_dir()
    assert {s["image_id"]: s["reason"] for s in store.manifest["skipped"]} == {
        "pipe": "not a regular file (a FIFO)", "zero": "not a regular file (a character device)",
        "dir": "is a directory, not a file"}


def test_files_over_the_size_cap_are_reported(tmp_path, monkeypatch):
    import qrprobe.images.files as files

    root = write_image_folder(tmp_path / "imgs", {"a": 2})
    big = random_jpeg(7, (400, 300))
    (root / "a" / "big.jpg").write_bytes(big)
    monkeypatch.setattr(files, "MAX_IMAGE_BYTES", len(big) - 1)
    src = folder_source(root)
    assert src.image_ids == ["a/000.jpg", "a/001.jpg"]
    assert "file too large" in src.rejected[0]["reason"]
    assert src.rejected[0]["image_id"] == "a/big.jpg"
    listed = file_list_source(_write(tmp_path / "l.txt", f"{root / 'a' / 'big.jpg'}\n"))
    with pytest.raises(ImageDecodeError, match="file too large"):
        listed.load(0)
    shard = tmp_path / "big.tar"
    _tar(shard, {"k0.jpg": random_jpeg(1), "k1.jpg": big})
    src = tar_source(str(shard))
    assert src.image_ids == ["k0"]
    assert "file too large" in src.rejected[0]["reason"]


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _tar(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


# ---------------------------------------------------------------------------------------------- file lists
def test_bad_file_lists_are_input_errors(tmp_path, capsys):
    write_image_folder(tmp_path / "imgs", {"a": 1})
    lst = tmp_path / "list.txt"
    lst.write_bytes(b"imgs/a/000.jpg\nimgs/a/caf\xe9.jpg\n")
    out = tmp_path / "f"
    _assert_input_error(capsys, [*EXTRACT, str(lst), "-o", str(out)], "list.txt:2", "not UTF-8", out=out)
    csv = tmp_path / "list.csv"
    csv.write_bytes(b"image_id,path\nx,imgs/a/000.jpg\ny,imgs/a/\x00.jpg\n")
    _assert_input_error(capsys, [*EXTRACT, str(csv), "-o", str(out)], "list.csv:3", out=out)
    os.mkfifo(tmp_path / "pipe.txt")
    _assert_input_error(capsys, [*EXTRACT, str(tmp_path / "pipe.txt"), "-o", str(out)], "pipe.txt", "FIFO",
                        out=out)


# ---------------------------------------------------------------------------------------------- decoding
def _encode(image, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **options)
    return buf.getvalue()


def _grey(expected: np.ndarray) -> np.ndarray:
    return np.repeat(np.asarray(expected, np.uint8)[:, :, None], 3, axis=2)


RAMP16 = (np.arange(48 * 64).reshape(48, 64) * 21).astype(np.uint16)  # 0 .. 64491
RAMPF = np.linspace(0, 1, 48 * 64, dtype=np.float32).reshape(48, 64)


def _mode_cases():
    """(name, encoded bytes, expected RGB array) for every mode Pillow reads from files."""
    palette = Image.new("P", (4, 1))
    palette.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 9, 9] + [0] * 756)
    palette.putdata([0, 1, 2, 3])
    palette.info["transparency"] = 0
    rgba = np.array([[[200, 100, 50, 0], [1, 2, 3, 255]]], np.uint8)
    la = np.array([[[70, 0], [140, 255]]], np.uint8)
    cmyk = Image.new("CMYK", (2, 1))
    cmyk.putdata([(0, 255, 255, 0), (0, 0, 0, 255)])
    wide = np.array([[-1000, 0], [500, 3000]], np.int32)
    floats = np.array([[0.0, np.nan], [5.0, 10.0]], np.float32)
    signed = np.array([[-1.0, np.nan], [0.5, np.inf]], np.float32)
    big16 = Image.frombytes("I;16B", (64, 48), RAMP16.astype(">u2").tobytes())
    return [
        ("1", _encode(Image.fromarray(np.array([[0, 1]], bool)), "PNG"), _grey([[0, 255]])),
        ("L", _encode(Image.fromarray(np.array([[3, 250]], np.uint8)), "PNG"), _grey([[3, 250]])),
        ("P+transparency", _encode(palette, "PNG"),
         np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [9, 9, 9]]], np.uint8)),
        ("RGBA", _encode(Image.fromarray(rgba), "PNG"), rgba[..., :3]),
        ("LA", _encode(Image.fromarray(la, "LA"), "PNG"), _grey([[70, 140]])),
        ("CMYK", _encode(cmyk, "TIFF"), np.array([[[255, 0, 0], [0, 0, 0]]], np.uint8)),
        ("I;16 PNG", _encode(Image.fromarray(RAMP16), "PNG"), _grey(np.rint(RAMP16 / 257))),
        ("I;16B TIFF", _encode(big16, "TIFF"), _grey(np.rint(RAMP16 / 257))),
        ("I;16 PGM", _encode(Image.fromarray(RAMP16), "PPM"), _grey(np.rint(RAMP16 / 257))),
        ("I 16-bit range", _encode(Image.fromarray(RAMP16.astype(np.int32)), "TIFF"), _grey(np.rint(RAMP16 / 257))),
        ("I other range", _encode(Image.fromarray(wide), "TIFF"),
         _grey(np.rint((wide + 1000) * 255 / 4000))),
        ("F in [0, 1]", _encode(Image.fromarray(RAMPF), "TIFF"), _grey(np.rint(RAMPF.astype(np.float64) * 255))),
        ("F other range, NaN", _encode(Image.fromarray(floats), "TIFF"), _grey([[0, 0], [128, 255]])),
        ("F signed, NaN and inf", _encode(Image.fromarray(signed), "TIFF"), _grey([[0, 0], [255, 0]])),
    ]


@pytest.mark.parametrize(("name", "data", "expected"), _mode_cases(), ids=[c[0] for c in _mode_cases()])
def test_every_mode_decodes_by_the_documented_rule(name, data, expected):
    decoded = np.asarray(decode_image(data))
    assert decoded.dtype == np.uint8
    assert decoded.shape == expected.shape
    np.testing.assert_array_equal(decoded, expected)


def test_lab_images_are_converted_to_srgb():
    from skimage.color import lab2rgb

    lab = np.array([[[0, 72, 0], [0, 0, -20]]], np.int8).view(np.uint8)  # L in 0..255; a, b signed
    lab[..., 0] = [128, 200]
    image = Image.frombytes("LAB", (2, 1), lab.tobytes())
    decoded = np.asarray(decode_image(_encode(image, "TIFF"))).astype(float)
    signed = lab.view(np.int8).astype(float)
    reference = lab2rgb(np.stack([lab[..., 0] / 255 * 100, signed[..., 1], signed[..., 2]], -1)) * 255
    assert np.abs(decoded - reference).max() <= 8  # Pillow's and scikit-image's LAB -> sRGB differ slightly


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 12), st.integers(1, 12))
def test_16bit_and_float_images_scale_exactly(seed, h, w):
    rng = np.random.default_rng(seed)
    deep = rng.integers(0, 65536, size=(h, w), dtype=np.uint16)
    np.testing.assert_array_equal(np.asarray(decode_image(_encode(Image.fromarray(deep), "PNG"))),
                                  _grey(np.rint(deep / 257)))
    unit = rng.random((h, w), dtype=np.float32)
    np.testing.assert_array_equal(np.asarray(decode_image(_encode(Image.fromarray(unit), "TIFF"))),
                                  _grey(np.rint(unit.astype(np.float64) * 255)))


def test_16bit_and_float_files_give_the_features_of_their_8bit_version(tmp_path):
    """The regression: they became constant vectors."""
    rng = np.random.default_rng(0)
    byte = rng.integers(0, 256, size=(30, 40), dtype=np.uint8)
    root = tmp_path / "imgs"
    root.mkdir()
    Image.fromarray(byte).save(root / "a8.png")
    Image.fromarray(byte.astype(np.uint16) * 257).save(root / "b16.png")
    Image.fromarray(byte.astype(np.float32) / 255).save(root / "cf.tif")
    from qrprobe.features import extract

    feats = extract("pixels", root, tmp_path / "f", workers=0, progress=False, dtype="float32").load()
    assert feats.shape[0] == 3
    assert feats[0].std() > 0.1
    np.testing.assert_array_equal(feats[1], feats[0])
    np.testing.assert_array_equal(feats[2], feats[0])


def test_in_memory_images_follow_the_same_rules():
    deep = Image.fromarray(RAMP16)
    src = memory_source([deep, np.zeros((4, 4), np.uint8)], image_ids=["deep", "flat"])
    np.testing.assert_array_equal(np.asarray(src.load(0)), _grey(np.rint(RAMP16 / 257)))
    assert np.asarray(src.load(1)).shape == (4, 4, 3)
    with pytest.raises(QRProbeInputError, match="'x': expected a uint8 image, got dtype float64"):
        memory_source([np.zeros((4, 4))], image_ids=["x"])


# ---------------------------------------------------------------------------------------------- tar shards
@pytest.fixture(scope="module")
def shard_bytes(tmp_path_factory) -> bytes:
    return write_webdataset_shards(tmp_path_factory.mktemp("wds"), 1, 4)[0].read_bytes()


def _members(data: bytes) -> dict[str, tuple[int, bytes]]:
    """``{member name: (header offset, data)}`` of an intact shard."""
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        return {m.name: (m.offset, tf.extractfile(m).read()) for m in tf}


def _check_nothing_silently_lost(data: bytes, shard: Path) -> None:
    """Every sample of the intact shard ``data`` is listed intact, or rejected by id, or lies wholly after a
    damage that the shard-level entry reports."""
    members = _members(data)
    try:
        src = tar_source(str(shard))
    except QRProbeInputError as exc:  # unreadable from the first header on: the whole shard is refused
        assert shard.name in str(exc)  # noqa: PT017 - refusing the shard is one of the outcomes checked
        return
    rejected = {r["image_id"] for r in src.rejected}
    damaged = shard.name in rejected
    for key in sorted({name.split(".")[0] for name in members}):
        if key in src.image_ids:
            row = src.image_ids.index(key)
            assert src.read_bytes(row) == members[f"{key}.jpg"][1]
            assert src.labels[row] == members[f"{key}.cls"][1].decode()
        elif key not in rejected:
            first_header = min(off for name, (off, _) in members.items() if name.startswith(f"{key}."))
            assert damaged, (key, src.rejected)
            assert first_header >= shard.stat().st_size - 512, (key, src.rejected)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(0, 20480))
def test_a_truncated_shard_loses_no_image_silently(shard_bytes, tmp_path, cut):
    shard = tmp_path / f"cut-{cut}.tar"
    shard.write_bytes(shard_bytes[:cut])
    _check_nothing_silently_lost(shard_bytes, shard)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(block=st.integers(0, 29), byte=st.integers(0, 511))
def test_a_flipped_byte_is_seen_or_reported(shard_bytes, tmp_path, block, byte):
    """A flip in a header rejects that sample (maybe the one before) and every later one, by name, unless the
    byte is one tar readers ignore; a flip in a member's data is not the tar layer's to see (the decoder
    reports a damaged image); nothing else changes."""
    pos = block * 512 + byte
    data = bytearray(shard_bytes)
    data[pos] ^= 0x5A
    shard = tmp_path / f"flip-{pos}.tar"
    shard.write_bytes(bytes(data))
    members = _members(shard_bytes)
    try:
        src = tar_source(str(shard))
    except QRProbeInputError as exc:  # a broken first header, or no sample left: the whole shard is refused
        assert shard.name in str(exc)  # noqa: PT017 - refusing the shard is one of the outcomes checked
        assert pos < members["s000_002.jpg"][0]
        return
    rejected = {r["image_id"] for r in src.rejected}
    for key in sorted({name.split(".")[0] for name in members}):
        (jpg_at, jpg), (cls_at, cls) = members[f"{key}.jpg"], members[f"{key}.cls"]
        if key not in src.image_ids:
            assert key in rejected, (key, src.rejected)
            continue
        row = src.image_ids.index(key)
        assert (src.read_bytes(row) == jpg) == (pos not in range(jpg_at + 512, jpg_at + 512 + len(jpg)))
        assert (src.labels[row] == cls.decode()) == (pos not in range(cls_at + 512, cls_at + 512 + len(cls)))


def test_damaged_header_report_names_each_lost_member(shard_bytes, tmp_path):
    members = _members(shard_bytes)
    data = bytearray(shard_bytes)
    data[members["s000_002.jpg"][0] + 150] ^= 0xFF  # the checksum field of the third sample's image header
    shard = tmp_path / "bad.tar"
    shard.write_bytes(bytes(data))
    src = tar_source(str(shard))
    assert src.image_ids == ["s000_000"]
    reasons = {r["image_id"]: r["reason"] for r in src.rejected}
    assert set(reasons) == {"bad.tar", "s000_001", "s000_002", "s000_003"}
    assert "damaged tar header at byte 7168" in reasons["bad.tar"]
    assert "'s000_002.jpg'" in reasons["bad.tar"]
    assert "possibly incomplete" in reasons["s000_001"]  # a damaged header's name cannot be trusted
    assert "damaged or cut short" in reasons["s000_002"]
    assert "s000_002.cls" in reasons["s000_002"]
    assert "s000_003.jpg" in reasons["s000_003"]
    assert "s000_003.cls" in reasons["s000_003"]


def test_members_after_an_early_end_marker_are_reported(tmp_path):
    first = _tar(tmp_path / "a.tar", {"k0.jpg": random_jpeg(0)}).read_bytes()
    second = _tar(tmp_path / "b.tar", {"k1.jpg": random_jpeg(1), "k2.jpg": random_jpeg(2)}).read_bytes()
    both = tmp_path / "both.tar"
    both.write_bytes(first + second)  # `cat a.tar b.tar`: tar readers stop at the first end marker
    src = tar_source(str(both))
    assert src.image_ids == ["k0"]
    reasons = {r["image_id"]: r["reason"] for r in src.rejected}
    assert set(reasons) == {"both.tar", "k1", "k2"}
    assert "after an end-of-archive marker" in reasons["k1"]


def test_truncated_shard_through_the_cli(shard_bytes, tmp_path, capsys):
    members = _members(shard_bytes)
    shard = tmp_path / "cut.tar"
    shard.write_bytes(shard_bytes[:members["s000_002.jpg"][0] + 700])  # inside the third image's data
    out = tmp_path / "f"
    assert main([*EXTRACT, str(shard), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    store = FeatureStore.open(out)
    assert list(store.image_ids) == ["s000_000", "s000_001"]
    skipped = {s["image_id"]: s["reason"] for s in store.manifest["skipped"]}
    assert set(skipped) == {"cut.tar", "s000_002"}
    assert "cut short" in skipped["s000_002"]
    assert "s000_002" in err
    assert store.manifest["source"]["n_rejected"] == 2
    head = tmp_path / "head.tar"
    head.write_bytes(shard_bytes[:300])  # not even the first header is whole
    _assert_input_error(capsys, [*EXTRACT, str(head), "-o", str(tmp_path / "g")], "head.tar", out=tmp_path / "g")
    os.mkfifo(tmp_path / "pipe.tar")
    _assert_input_error(capsys, [*EXTRACT, str(tmp_path / "pipe.tar"), "-o", str(tmp_path / "g")], "pipe.tar",
                        "FIFO", out=tmp_path / "g")


def test_labelling_reads_through_the_same_layer(tmp_path):
    """The labelling loop sees the same rejected entries and decodes 16-bit images the same way."""
    from qrprobe.experts.label import run_labelling

    root = write_image_folder(tmp_path / "imgs", {"a": 2})
    (root / "a" / "loop").symlink_to("..")
    Image.fromarray(np.full((8, 8), 5000, np.uint16)).save(root / "a" / "dark16.png")  # clipping made it white
    result = run_labelling(root, ["image-stats"], progress=False)
    assert [r["image_id"] for r in result.report.rejected] == ["a/loop"]
    row = list(result.bank.image_ids).index("a/dark16.png")
    present = {result.bank.names[j] for j in result.bank.matrix[row].indices}
    assert "dark" in present, present
    assert "bright" not in present, present
    assert "a/loop" in json.dumps(result.bank.info["source"]) or result.bank.info["source"]["n_rejected"] == 1
