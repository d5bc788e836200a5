"""Image and rate metrics: PSNR, SSIM, MS-SSIM, bits per pixel, relative L2.

Images are tensors (B, C, H, W) (or (C, H, W)) on a known ``data_range``
(1.0 for [0, 1], 2.0 for [-1, 1], 255 for 8-bit). SSIM follows Wang et al.
2004 (11×11 Gaussian window, σ = 1.5, K1 = 0.01, K2 = 0.03, valid
convolution); MS-SSIM follows Wang et al. 2003 (5 scales, the published
weights, contrast-structure at every scale and luminance at the coarsest).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from diffcore.errors import InvalidInputError

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
#: the smallest image side MS-SSIM takes: its 11-px window at the coarsest of its 5 scales
MS_SSIM_MIN_SIDE = 11 * 2 ** (len(MS_SSIM_WEIGHTS) - 1)


def _pair(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if not (torch.is_tensor(x) and torch.is_tensor(y)):
        raise InvalidInputError("metrics take torch tensors")
    if x.shape != y.shape:
        raise InvalidInputError(f"shapes differ: {tuple(x.shape)} vs {tuple(y.shape)}")
    if x.ndim == 3:
        x, y = x[None], y[None]
    if x.ndim != 4:
        raise InvalidInputError(f"expected (B, C, H, W) or (C, H, W), got {tuple(x.shape)}")
    return x.double(), y.double()


def psnr(x: torch.Tensor, y: torch.Tensor, *, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB, one value per batch item (inf if equal)."""
    x, y = _pair(x, y)
    mse = (x - y).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(data_range**2 / mse)


def _gaussian_window(size: int, sigma: float, channels: int, dtype: torch.dtype) -> torch.Tensor:
    g = torch.arange(size, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(g**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()  # (C, 1, k, k)


def _ssim_parts(x: torch.Tensor, y: torch.Tensor, data_range: float, win: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    c = x.shape[1]
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_x, mu_y = F.conv2d(x, win, groups=c), F.conv2d(y, win, groups=c)
    sxx = F.conv2d(x * x, win, groups=c) - mu_x**2
    syy = F.conv2d(y * y, win, groups=c) - mu_y**2
    sxy = F.conv2d(x * y, win, groups=c) - mu_x * mu_y
    cs = (2 * sxy + c2) / (sxx + syy + c2)
    lum = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
    return (lum * cs).flatten(1).mean(1), cs.flatten(1).mean(1)


def ssim(x: torch.Tensor, y: torch.Tensor, *, data_range: float = 1.0, win_size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Structural similarity, one value per batch item (mean over channels)."""
    x, y = _pair(x, y)
    if min(x.shape[-2:]) < win_size:
        raise InvalidInputError(f"SSIM needs images of at least {win_size}x{win_size}, got {tuple(x.shape[-2:])}")
    return _ssim_parts(x, y, data_range, _gaussian_window(win_size, sigma, x.shape[1], x.dtype))[0]


def ms_ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    data_range: float = 1.0,
    weights: tuple[float, ...] = MS_SSIM_WEIGHTS,
    win_size: int = 11,
    sigma: float = 1.5,
) -> torch.Tensor:
    """Multi-scale SSIM, one value per batch item.

    Needs images of at least ``win_size · 2^(scales-1)`` pixels (176 for the
    default 5 scales): the coarsest scale must still hold one full window.
    """
    x, y = _pair(x, y)
    scales = len(weights)
    need = win_size * 2 ** (scales - 1)
    if min(x.shape[-2:]) < need:
        raise InvalidInputError(
            f"MS-SSIM with {scales} scales needs images of at least {need}x{need}, got {tuple(x.shape[-2:])}; "
            "pass fewer weights for small images"
        )
    win = _gaussian_window(win_size, sigma, x.shape[1], x.dtype)
    w = torch.tensor(weights, dtype=x.dtype)
    factors = []
    for i in range(scales):
        s, cs = _ssim_parts(x, y, data_range, win)
        factors.append(s if i == scales - 1 else cs)
        if i < scales - 1:
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    vals = torch.stack(factors, dim=1).clamp_min(0)  # (B, scales)
    return (vals**w).prod(dim=1)


def bits_per_pixel(num_bytes: int, height: int, width: int) -> float:
    """Compressed size in bits divided by the number of pixels."""
    if height <= 0 or width <= 0 or num_bytes < 0:
        raise InvalidInputError(f"need positive image size and non-negative byte count, got {num_bytes}, {height}x{width}")
    return 8.0 * num_bytes / (height * width)


def relative_l2(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """‖x − ref‖₂ / ‖ref‖₂ per batch item (the error of a fast path vs the exact one).

    The first dimension is the batch: (B, ...) in, (B,) out.
    """
    if x.shape != ref.shape:
        raise InvalidInputError(f"shapes differ: {tuple(x.shape)} vs {tuple(ref.shape)}")
    if x.ndim < 2:
        raise InvalidInputError(f"relative_l2 takes batched tensors (B, ...), got shape {tuple(x.shape)}")
    d = (x.double() - ref.double()).flatten(1).norm(dim=1)
    return d / ref.double().flatten(1).norm(dim=1).clamp_min(math.ulp(1.0))
