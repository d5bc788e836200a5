"""JPEG / WebP baselines: in-memory round trips, real sizes, and the bpp-matching quality search."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from diffcodec import baselines


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    """A 96×128 textured image (smooth gradients plus noise), deterministic."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:96, 0:128]
    base = np.stack([x * 2, y * 2.5, (x + y) * 1.1], axis=-1)
    return np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
def test_round_trip_sizes(fmt, image):
    data = baselines.encode(image, fmt, 50)
    assert data[:2] == b"\xff\xd8" if fmt == "jpeg" else data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    out = baselines.decode(data)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - image).mean() < 40  # lossy, but the same picture
    p = baselines.point(image, fmt, 50)
    assert p.data == data and p.nbytes == len(data)  # deterministic, and the size is the real one
    assert p.bpp == pytest.approx(8 * len(data) / (96 * 128))


@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
def test_accepts_pil_and_gray(fmt, image):
    gray = Image.fromarray(image).convert("L")
    out = baselines.decode(baselines.encode(gray, fmt, 30))
    assert out.shape == image.shape
    assert baselines.encode(Image.fromarray(image), fmt, 30) == baselines.encode(image, fmt, 30)


@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
def test_match_bpp_hits_target_from_below(fmt, image):
    lo, hi = baselines.QUALITY_RANGE[fmt]
    low, high = baselines.point(image, fmt, lo).bpp, baselines.point(image, fmt, 90).bpp
    for target in np.linspace(low * 1.05, high, 4):
        p = baselines.match_bpp(image, fmt, target)
        assert p.reached and p.bpp <= target
        assert p.bpp == pytest.approx(8 * len(p.data) / image[..., 0].size)
        if p.quality < hi:  # the search ends between a fitting quality and the next one, which does not fit
            assert baselines.point(image, fmt, p.quality + 1).bpp > target


@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
def test_match_bpp_flags_unreachable_targets(fmt, image):
    p = baselines.match_bpp(image, fmt, 0.001)
    assert not p.reached
    assert p.quality == baselines.QUALITY_RANGE[fmt][0] and p.bpp > 0.001
    assert baselines.decode(p.data).shape == image.shape  # still a usable point for the report
    top = baselines.match_bpp(image, fmt, 1e9)
    assert top.reached and top.quality == baselines.QUALITY_RANGE[fmt][1]


@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
def test_sweep(fmt, image):
    pts = baselines.sweep(image, fmt, [10, 50, 90])
    assert [p.quality for p in pts] == [10, 50, 90]
    assert pts[0].bpp < pts[1].bpp < pts[2].bpp
    default = baselines.sweep(image, fmt)
    assert default[0].quality == baselines.QUALITY_RANGE[fmt][0] and len(default) >= 10


def test_bad_arguments(image):
    with pytest.raises(ValueError, match="format"):
        baselines.encode(image, "png", 50)
    with pytest.raises(ValueError, match="quality"):
        baselines.encode(image, "jpeg", 101)
    with pytest.raises(ValueError, match="quality"):
        baselines.encode(image, "webp", 5.5)
    with pytest.raises(ValueError, match="target_bpp"):
        baselines.match_bpp(image, "webp", float("nan"))
    assert baselines.encode(image, "JPG", 50) == baselines.encode(image, "jpeg", 50)
