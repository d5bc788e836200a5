"""diffcore.metrics against known values and independent reference implementations.

SSIM is checked against scikit-image's ``structural_similarity`` with the
settings of Wang et al. 2004 (Gaussian σ = 1.5, population covariance); MS-SSIM
against a NumPy/SciPy transcription of Wang et al. 2003, written here from the
paper; both on crops of a real photo (skimage's astronaut) with seeded noise.
In float64 the measured gaps are ~1e-15; the tests allow 1e-9.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter
from skimage.data import astronaut
from skimage.metrics import structural_similarity

from diffcore.errors import InvalidInputError
from diffcore.metrics import MS_SSIM_WEIGHTS, bits_per_pixel, ms_ssim, psnr, relative_l2, ssim


def _photo_pair(size: int, noise: float, *, seed: int = 0, top: int = 40, left: int = 150) -> tuple[np.ndarray, np.ndarray]:
    """A (size, size, 3) float64 crop of the astronaut in [0, 1] and a noisy copy (clipped)."""
    x = astronaut()[top : top + size, left : left + size].astype(np.float64) / 255.0
    rng = np.random.default_rng(seed)
    y = np.clip(x + noise * rng.standard_normal(x.shape), 0.0, 1.0)
    return x, y


def _chw(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))  # (H, W, C) -> (C, H, W)


# --------------------------------------------------------------------------- PSNR


def test_psnr_constant_offset_is_20db_on_each_data_range():
    base = torch.full((1, 3, 8, 8), 0.25, dtype=torch.float64)
    # An offset of a tenth of the range gives MSE = range² / 100, i.e. exactly 20 dB.
    assert psnr(base + 0.1, base, data_range=1.0).item() == pytest.approx(20.0, abs=1e-9)
    assert psnr(base * 2 - 1 + 0.2, base * 2 - 1, data_range=2.0).item() == pytest.approx(20.0, abs=1e-9)
    assert psnr(base * 255 + 25.5, base * 255, data_range=255.0).item() == pytest.approx(20.0, abs=1e-9)


def test_psnr_per_batch_item_uint8_and_identical():
    x = torch.zeros(3, 1, 4, 4, dtype=torch.float64)
    y = x.clone()
    y[0] += 0.1
    y[1] += 0.01
    got = psnr(x, y)
    assert got.shape == (3,)
    assert got[:2].tolist() == pytest.approx([20.0, 40.0], abs=1e-9)
    assert math.isinf(got[2].item()) and got[2].item() > 0
    # uint8 tensors: 100 vs 110 on the 8-bit range is 10·log10(255² / 100).
    a, b = torch.full((3, 5, 5), 100, dtype=torch.uint8), torch.full((3, 5, 5), 110, dtype=torch.uint8)
    assert psnr(a, b, data_range=255.0).tolist() == pytest.approx([10 * math.log10(255**2 / 100)], abs=1e-9)


# --------------------------------------------------------------------------- SSIM


@pytest.mark.parametrize("noise", [0.02, 0.1])
@pytest.mark.parametrize("data_range", [1.0, 255.0])
def test_ssim_matches_skimage_colour(noise, data_range):
    x, y = _photo_pair(64, noise)
    x, y = x * data_range, y * data_range
    ref = structural_similarity(
        x, y, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=data_range, channel_axis=-1
    )
    got = ssim(_chw(x), _chw(y), data_range=data_range)
    assert got.shape == (1,)
    assert got.item() == pytest.approx(ref, abs=1e-9)
    assert 0.0 < ref < 1.0  # a real, non-trivial pair


def test_ssim_matches_skimage_gray_batch_and_float32():
    xs, ys, refs = [], [], []
    for i, (top, left) in enumerate([(40, 150), (300, 300)]):
        x, y = _photo_pair(48, 0.05, seed=i, top=top, left=left)
        x, y = x.mean(axis=2), y.mean(axis=2)  # (H, W) gray
        refs.append(structural_similarity(x, y, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0))
        xs.append(torch.from_numpy(x)[None])
        ys.append(torch.from_numpy(y)[None])
    x, y = torch.stack(xs), torch.stack(ys)  # (2, 1, 48, 48)
    assert ssim(x, y).tolist() == pytest.approx(refs, abs=1e-9)
    # float32 inputs are computed in float64 inside: same answer to float32 input rounding.
    assert ssim(x.float(), y.float()).tolist() == pytest.approx(refs, abs=1e-5)


def test_ssim_identical_is_one_and_symmetric():
    x, y = _photo_pair(32, 0.1)
    x, y = _chw(x), _chw(y)
    assert ssim(x, x).item() == 1.0
    assert ssim(x, y).item() == pytest.approx(ssim(y, x).item(), abs=1e-15)


# --------------------------------------------------------------------------- MS-SSIM


def _ms_ssim_reference(x: np.ndarray, y: np.ndarray, weights: tuple[float, ...], data_range: float = 1.0) -> float:
    """Wang et al. 2003 in NumPy/SciPy: x, y (H, W, C); 2×2 mean downsampling; valid 11×11 region."""
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    pad = 5  # half of the 11-tap window that truncate=3.5, σ=1.5 gives

    def blur(a: np.ndarray) -> np.ndarray:
        out = gaussian_filter(a, sigma=(1.5, 1.5, 0), truncate=3.5)
        return out[pad:-pad, pad:-pad]

    factors = []
    for j in range(len(weights)):
        mx, my = blur(x), blur(y)
        vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
        cs = (2 * cxy + c2) / (vx + vy + c2)
        lum = (2 * mx * my + c1) / (mx**2 + my**2 + c1)
        factors.append((lum * cs).mean() if j == len(weights) - 1 else cs.mean())
        h, w = x.shape[0] // 2 * 2, x.shape[1] // 2 * 2
        x = x[:h, :w].reshape(h // 2, 2, w // 2, 2, -1).mean(axis=(1, 3))
        y = y[:h, :w].reshape(h // 2, 2, w // 2, 2, -1).mean(axis=(1, 3))
    return float(np.prod([max(f, 0.0) ** wt for f, wt in zip(factors, weights)]))


@pytest.mark.parametrize("noise", [0.03, 0.15])
def test_ms_ssim_matches_reference_on_a_photo(noise):
    x, y = _photo_pair(192, noise)
    ref = _ms_ssim_reference(x, y, MS_SSIM_WEIGHTS)
    got = ms_ssim(_chw(x), _chw(y))
    assert got.item() == pytest.approx(ref, abs=1e-9)
    assert 0.0 < ref < 1.0


def test_ms_ssim_identical_is_one():
    x, _ = _photo_pair(176, 0.0)
    assert ms_ssim(_chw(x), _chw(x)).item() == 1.0


def test_one_scale_ms_ssim_is_ssim():
    x, y = _photo_pair(64, 0.1)
    x, y = _chw(x), _chw(y)
    assert ms_ssim(x, y, weights=(1.0,)).item() == pytest.approx(ssim(x, y).item(), abs=1e-12)


def test_coarsest_scale_alone_is_ssim_of_the_downsampled_pair():
    x, y = _photo_pair(176, 0.1)
    x, y = _chw(x)[None], _chw(y)[None]
    got = ms_ssim(x, y, weights=(0.0, 0.0, 0.0, 0.0, 1.0))
    xd, yd = x, y
    for _ in range(4):
        xd, yd = F.avg_pool2d(xd, 2), F.avg_pool2d(yd, 2)  # (1, 3, 11, 11) at the end
    assert got.item() == pytest.approx(ssim(xd, yd).item(), abs=1e-12)


def test_ms_ssim_is_monotone_in_noise_and_above_ssim_for_white_noise():
    x, _ = _photo_pair(176, 0.0)
    noise = np.random.default_rng(0).standard_normal(x.shape)
    levels = [0.0, 0.02, 0.05, 0.1, 0.2]
    ms, ss = [], []
    for s in levels:
        y = _chw(np.clip(x + s * noise, 0, 1))
        ms.append(ms_ssim(_chw(x), y).item())
        ss.append(ssim(_chw(x), y).item())
    assert ms[0] == 1.0
    assert all(a > b for a, b in itertools.pairwise(ms)), ms
    # White noise is averaged away at the coarse scales, so MS-SSIM scores a
    # noisy photo higher than single-scale SSIM does (Wang et al. 2003, fig. 5).
    assert all(m > s for m, s in zip(ms[1:], ss[1:])), (ms, ss)


# --------------------------------------------------------------------------- rate, relative L2


def test_bits_per_pixel_known_values():
    assert bits_per_pixel(1000, 100, 80) == 1.0
    assert bits_per_pixel(0, 10, 10) == 0.0
    assert bits_per_pixel(3, 4, 6) == pytest.approx(1.0)
    assert bits_per_pixel(49152, 512, 768) == pytest.approx(1.0)  # a Kodak-sized image at 1 bpp


def test_relative_l2_known_values():
    ref = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
    x = torch.tensor([[3.0, 5.0], [2.0, 0.0]])
    assert relative_l2(x, ref).tolist() == pytest.approx([0.2, 1.0], abs=1e-12)
    assert relative_l2(ref, ref).tolist() == [0.0, 0.0]
    big = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    assert relative_l2(big * 1.01, big).tolist() == pytest.approx([0.01, 0.01], abs=1e-7)
    # A zero reference gives a large but finite error, not a division by zero.
    assert math.isfinite(relative_l2(torch.ones(1, 3), torch.zeros(1, 3)).item())


# --------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize("fn", [psnr, ssim, ms_ssim, relative_l2], ids=lambda f: f.__name__)
def test_shape_mismatch_raises(fn):
    with pytest.raises(InvalidInputError, match="shapes differ"):
        fn(torch.zeros(1, 3, 200, 200), torch.zeros(1, 3, 200, 199))


@pytest.mark.parametrize("fn", [psnr, ssim, ms_ssim], ids=lambda f: f.__name__)
def test_not_a_tensor_or_wrong_rank_raises(fn):
    with pytest.raises(InvalidInputError, match="torch tensors"):
        fn(np.zeros((3, 32, 32)), np.zeros((3, 32, 32)))
    with pytest.raises(InvalidInputError, match="expected"):
        fn(torch.zeros(32, 32), torch.zeros(32, 32))


def test_too_small_images_raise():
    with pytest.raises(InvalidInputError, match="at least 11x11"):
        ssim(torch.zeros(1, 1, 10, 40), torch.zeros(1, 1, 10, 40))
    with pytest.raises(InvalidInputError, match="pass fewer weights"):
        ms_ssim(torch.zeros(1, 3, 128, 128), torch.zeros(1, 3, 128, 128))
    with pytest.raises(InvalidInputError, match="2 scales"):
        ms_ssim(torch.zeros(1, 1, 16, 16), torch.zeros(1, 1, 16, 16), weights=(0.5, 0.5))


@pytest.mark.parametrize("scales", [2, 3, 5])
def test_ms_ssim_documented_minimum_size_is_exact(scales):
    """win·2^(scales-1) pixels work; one pixel less is refused with a typed error."""
    n = 11 * 2 ** (scales - 1)
    w = (1.0 / scales,) * scales
    x, y = _photo_pair(n, 0.05)
    assert 0.0 < ms_ssim(_chw(x), _chw(y), weights=w).item() < 1.0
    x, y = _photo_pair(n - 1, 0.05)
    with pytest.raises(InvalidInputError, match="pass fewer weights"):
        ms_ssim(_chw(x), _chw(y), weights=w)
