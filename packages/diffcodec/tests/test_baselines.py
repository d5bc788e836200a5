"""JPEG / WebP / AVIF baselines: in-memory round trips, real sizes, downscaled operation, and the bpp-matching quality search."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
from PIL import Image

from diffcodec import baselines
from diffcore.data import load_pool

FORMATS = ("jpeg", "webp", "avif")
MAGIC = {
    "jpeg": lambda d: d[:2] == b"\xff\xd8",
    "webp": lambda d: d[:4] == b"RIFF" and d[8:12] == b"WEBP",
    "avif": lambda d: d[4:12] == b"ftypavif",
}


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    """A 96×128 textured image (smooth gradients plus noise), deterministic."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:96, 0:128]
    base = np.stack([x * 2, y * 2.5, (x + y) * 1.1], axis=-1)
    return np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A real photo: the top-left 256×256 of skimage's coffee (the holdout pool's)."""
    coffee = next(p.pixels for p in load_pool("holdout") if p.source == "coffee")
    return np.ascontiguousarray(coffee[:256, :256])


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0**2 / np.mean((a.astype(float) - b) ** 2)))


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_sizes(fmt, image):
    data = baselines.encode(image, fmt, 50)
    assert MAGIC[fmt](data)
    out = baselines.decode(data)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - image).mean() < 40  # lossy, but the same picture
    p = baselines.point(image, fmt, 50)
    assert p.data == data and p.nbytes == len(data) and p.scale == 1  # deterministic, and the size is the real one
    assert p.bpp == pytest.approx(8 * len(data) / (96 * 128))


@pytest.mark.parametrize("fmt", FORMATS)
def test_accepts_pil_and_gray(fmt, image):
    gray = Image.fromarray(image).convert("L")
    out = baselines.decode(baselines.encode(gray, fmt, 30))
    assert out.shape == image.shape
    assert baselines.encode(Image.fromarray(image), fmt, 30) == baselines.encode(image, fmt, 30)


def test_avif_size_grows_with_quality(image):
    """The binary search of match_bpp needs size monotone in quality; for AVIF it nearly is (dips of a byte or so)."""
    sizes = [len(baselines.encode(image, "avif", q)) for q in range(0, 101)]
    assert all(b >= 0.99 * a for a, b in pairwise(sizes))
    assert sum(b < a for a, b in pairwise(sizes)) <= 3
    assert sizes[0] * 5 < sizes[50] * 2 < sizes[-1]


@pytest.mark.parametrize("fmt", FORMATS)
def test_match_bpp_hits_target_from_below(fmt, image):
    lo, hi = baselines.QUALITY_RANGE[fmt]
    low, high = baselines.point(image, fmt, lo).bpp, baselines.point(image, fmt, 90).bpp
    for target in np.linspace(low * 1.05, high, 4):
        p = baselines.match_bpp(image, fmt, target)
        assert p.reached and p.bpp <= target
        assert p.bpp == pytest.approx(8 * len(p.data) / image[..., 0].size)
        if p.quality < hi:  # the search ends between a fitting quality and the next one, which does not fit
            assert baselines.point(image, fmt, p.quality + 1).bpp > target


@pytest.mark.parametrize("fmt", FORMATS)
def test_match_bpp_flags_unreachable_targets(fmt, image):
    p = baselines.match_bpp(image, fmt, 0.001)
    assert not p.reached
    assert p.quality == baselines.QUALITY_RANGE[fmt][0] and p.bpp > 0.001
    assert baselines.decode(p.data).shape == image.shape  # still a usable point for the report
    top = baselines.match_bpp(image, fmt, 1e9)
    assert top.reached and top.quality == baselines.QUALITY_RANGE[fmt][1]


@pytest.mark.parametrize("fmt", FORMATS)
def test_sweep(fmt, image):
    pts = baselines.sweep(image, fmt, [10, 50, 90])
    assert [p.quality for p in pts] == [10, 50, 90]
    assert pts[0].bpp < pts[1].bpp < pts[2].bpp
    default = baselines.sweep(image, fmt)
    assert default[0].quality == baselines.QUALITY_RANGE[fmt][0] and len(default) >= 10
    small = baselines.sweep(image, fmt, [10, 50, 90], scale=2)
    assert all(s.scale == 2 and s.nbytes < p.nbytes for s, p in zip(small, pts))


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_downscaled_point_decodes_to_original_size(fmt, scale, image):
    p = baselines.point(image, fmt, 50, scale=scale)
    assert p.scale == scale and p.data == baselines.encode(image, fmt, 50, scale=scale)
    assert baselines.decode(p.data).shape == (round(96 / scale), round(128 / scale), 3)  # what the file holds
    out = baselines.decode(p.data, size=image.shape[:2])
    assert out.shape == image.shape and out.dtype == np.uint8
    assert p.bpp == pytest.approx(8 * p.nbytes / (96 * 128))  # bits per pixel of the original picture
    assert p.nbytes < baselines.point(image, fmt, 50).nbytes
    # the same picture (the fixture's noise is lost to the downscale, its gradients are not)
    assert np.abs(out.astype(int) - image).mean() < 40
    assert baselines.decode(baselines.encode(image, fmt, 50), size=image.shape[:2]).shape == image.shape  # native: as is


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("shape", [(1, 1), (2, 3)])
def test_tiny_images_at_every_scale(fmt, shape):
    img = np.random.default_rng(1).integers(0, 256, (*shape, 3), dtype=np.uint8)
    for scale in baselines.SCALES:
        p = baselines.point(img, fmt, 50, scale=scale)
        assert baselines.decode(p.data, size=shape).shape == (*shape, 3)
    assert all(p.scale == s for p, s in zip(baselines.match_scales(img, fmt, 1e9), baselines.SCALES))


def test_downscaled_webp_goes_lower_and_scores_higher(photo):
    """At low rates a compression engineer shrinks the picture first: WebP gets below its native floor, and scores higher."""
    size = photo.shape[:2]
    pts = baselines.match_scales(photo, "webp", 0.05)
    assert [p.scale for p in pts] == list(baselines.SCALES)
    assert not pts[0].reached and pts[0].bpp > 0.05  # native WebP cannot go this low on this photo
    assert all(p.reached and p.bpp <= 0.05 for p in pts[1:])
    assert all(psnr(photo, baselines.decode(p.data, size=size)) > 20 for p in pts[1:])  # and it is still the photo
    # where native does reach the target, a downscaled encode of the same size is better
    native, *small = baselines.match_scales(photo, "webp", 0.15)
    assert native.reached and all(p.reached and p.bpp <= 0.15 for p in small)
    best = max(psnr(photo, baselines.decode(p.data, size=size)) for p in small)
    assert best > psnr(photo, baselines.decode(native.data, size=size)) + 0.3
    assert baselines.match_bpp(photo, "webp", 0.15, scale=2) == small[0]


def test_match_scales_subset_and_order(image):
    pts = baselines.match_scales(image, "avif", 0.5, scales=[4, 1])
    assert [p.scale for p in pts] == [4, 1]
    assert pts[0] == baselines.match_bpp(image, "avif", 0.5, scale=4)
    assert pts[1] == baselines.match_bpp(image, "avif", 0.5)


def test_bad_arguments(image):
    with pytest.raises(ValueError, match="format"):
        baselines.encode(image, "png", 50)
    with pytest.raises(ValueError, match="quality"):
        baselines.encode(image, "jpeg", 101)
    with pytest.raises(ValueError, match="quality"):
        baselines.encode(image, "webp", 5.5)
    with pytest.raises(ValueError, match="quality"):
        baselines.sweep(image, "avif", [50, 200])
    with pytest.raises(ValueError, match="target_bpp"):
        baselines.match_bpp(image, "webp", float("nan"))
    assert baselines.encode(image, "JPG", 50) == baselines.encode(image, "jpeg", 50)
    assert baselines.encode(image, "AVIF", 50) == baselines.encode(image, "avif", 50)


def test_bad_format_names_the_choices(image):
    from diffcore.errors import UnknownNameError

    with pytest.raises(UnknownNameError, match="'avif'"):
        baselines.match_scales(image, "heic", 0.1)


@pytest.mark.parametrize("scale", [0, 5, 8, -1, True, 2.0, "2", None])
def test_bad_scale(scale, image):
    from diffcore.errors import InvalidInputError

    for call in (
        lambda: baselines.encode(image, "webp", 50, scale=scale),
        lambda: baselines.point(image, "jpeg", 50, scale=scale),
        lambda: baselines.match_bpp(image, "avif", 0.1, scale=scale),
        lambda: baselines.sweep(image, "webp", [50], scale=scale),
        lambda: baselines.match_scales(image, "webp", 0.1, scales=[1, scale]),
    ):
        with pytest.raises(InvalidInputError, match="scale"):
            call()


def test_bad_scales_and_sizes(image):
    from diffcore.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="at least one"):
        baselines.match_scales(image, "webp", 0.1, scales=[])
    data = baselines.encode(image, "webp", 50, scale=2)
    for size in [(0, 5), (5,), (96, 128, 3), (True, 5), (96.0, 128), "ab", 7]:
        with pytest.raises(InvalidInputError, match="size"):
            baselines.decode(data, size=size)
