"""How faithfully tinysd's autoencoder reconstructs a photo, against bicubic ×4 at the same spatial reduction.

The baseline keeps what a ×4 smaller image keeps: an antialiased bicubic resize
down by 4 (the kernel widens with the scale) and a bicubic resize back up, both in
float (torch's ``interpolate``), so the small image is not rounded to 8 bits on the
way: the stronger form of the baseline. Both the
baseline and the autoencoder's output are rounded to 8-bit RGB, the form a user
sees, and measured against the original in [0, 1]:

- PSNR (dB) and MS-SSIM (5 scales, photos of at least ``MS_SSIM_MIN_SIDE`` px);
- colour error: the mean CIEDE2000 ΔE (Sharma et al. 2005) between the CIELAB
  values of the two images, pixel by pixel (``skimage.color``); a ΔE of about 1
  is a just-noticeable difference, and a hue shift the other two metrics barely
  register shows up here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from diffcore.data import to_tensor
from diffcore.errors import InvalidInputError
from diffcore.metrics import MS_SSIM_MIN_SIDE, ms_ssim, psnr
from diffcore.prior.autoencode import reconstruct

#: the baseline's reduction per side (tinysd's latent grid is 4× smaller per side too)
FACTOR = 4


@dataclass(frozen=True)
class Fidelity:
    """One image against its original.

    Attributes:
        psnr: PSNR in dB of the 8-bit RGB image.
        ms_ssim: MS-SSIM, or None when a side is under ``MS_SSIM_MIN_SIDE``.
        delta_e: mean CIEDE2000 ΔE over the pixels.
    """

    psnr: float
    ms_ssim: float | None
    delta_e: float


def bicubic_x4(pixels: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> the same size, through an antialiased bicubic resize to ⌈H/4⌉ × ⌈W/4⌉ and back, rounded."""
    _check(pixels)
    h, w = pixels.shape[:2]
    x = to_tensor(pixels)[None]  # (1, 3, H, W) in [-1, 1]
    small = F.interpolate(x, size=(-(-h // FACTOR), -(-w // FACTOR)), mode="bicubic", align_corners=False, antialias=True)
    up = F.interpolate(small, size=(h, w), mode="bicubic", align_corners=False)[0]  # (3, H, W)
    return ((up.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()


@torch.no_grad()
def autoencode(vae: torch.nn.Module, pixels: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> the autoencoder's reconstruction (posterior mean), rounded to uint8."""
    _check(pixels)
    x = to_tensor(pixels)[None]  # (1, 3, H, W) in [-1, 1]
    rec = reconstruct(vae, x)[0].float().cpu()  # (3, H, W)
    return ((rec.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()


def fidelity(ref: np.ndarray, out: np.ndarray) -> Fidelity:
    """PSNR, MS-SSIM and mean CIEDE2000 ΔE of ``out`` against ``ref``, both (H, W, 3) uint8."""
    from skimage.color import deltaE_ciede2000, rgb2lab

    _check(ref)
    if out.shape != ref.shape:
        raise InvalidInputError(f"the reconstruction is {out.shape}, the original {ref.shape}")
    a, b = (ref.astype(np.float64) / 255, out.astype(np.float64) / 255)  # (H, W, 3) in [0, 1]
    ta, tb = (torch.from_numpy(v).permute(2, 0, 1)[None] for v in (a, b))  # (1, 3, H, W)
    m = float(ms_ssim(ta, tb)[0]) if min(ref.shape[:2]) >= MS_SSIM_MIN_SIDE else None
    return Fidelity(float(psnr(ta, tb)[0]), m, float(deltaE_ciede2000(rgb2lab(a), rgb2lab(b)).mean()))


def _check(pixels: np.ndarray) -> None:
    if not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
        raise InvalidInputError(
            f"expected an (H, W, 3) uint8 image, got {getattr(pixels, 'dtype', type(pixels))} {getattr(pixels, 'shape', '')}"
        )
