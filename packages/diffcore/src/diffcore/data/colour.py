"""Colour transforms: YCbCr for losses and metrics, colour jitter for training.

10 of the pool's 18 training photos are grayscale, so an autoencoder trained
on them alone learns luma well and chroma badly. :class:`ColourJitter` widens
the colour photos' gamut (channel permutation, hue rotation, saturation
scaling); :func:`rgb_to_ycbcr` lets a loss weigh chroma on its own.
"""

from __future__ import annotations

import numpy as np
import torch

from diffcore.errors import InvalidInputError

#: BT.601 RGB -> YCbCr (full range, offsets dropped: inputs are centred in [-1, 1])
_YCBCR = torch.tensor(
    [
        [0.299, 0.587, 0.114],
        [-0.168736, -0.331264, 0.5],
        [0.5, -0.418688, -0.081312],
    ]
)
#: RGB -> YIQ and back (NTSC): hue is the angle in the I-Q plane, saturation its radius
_YIQ = np.array([[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]])
_YIQ_INV = np.linalg.inv(_YIQ)


def rgb_to_ycbcr(x: torch.Tensor) -> torch.Tensor:
    """RGB, (..., 3, H, W) in [-1, 1] -> BT.601 YCbCr (Y in [-1, 1], Cb and Cr in [-1, 1])."""
    if x.ndim < 3 or x.shape[-3] != 3:
        raise InvalidInputError(f"rgb_to_ycbcr needs (..., 3, H, W) RGB, got shape {tuple(x.shape)}")
    m = _YCBCR.to(x.device, x.dtype)
    return torch.einsum("ij,...jhw->...ihw", m, x)


def is_gray(pixels: np.ndarray) -> bool:
    """Whether an (H, W, 3) image has three identical channels."""
    return bool((pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all())


class ColourJitter:
    """Random gamut-widening colour transform of an (H, W, 3) uint8 crop.

    With probability ``p`` a crop gets, in this order: a random permutation of
    its RGB channels, a hue rotation by a uniform angle in the YIQ chroma
    plane, and a saturation scale drawn log-uniformly from ``saturation``.
    Luma (Y) is kept by the last two, so the photo's structure is unchanged;
    only its colours move. Values are clipped to [0, 255].

    Args:
        p: probability that a crop is transformed at all.
        saturation: (low, high) range of the chroma scale.
    """

    def __init__(self, *, p: float = 0.8, saturation: tuple[float, float] = (0.5, 2.0)) -> None:
        if not 0.0 <= p <= 1.0:
            raise InvalidInputError(f"p must be in [0, 1], got {p}")
        lo, hi = saturation
        if not 0 < lo <= hi:
            raise InvalidInputError(f"saturation must be a range 0 < low <= high, got {saturation}")
        self.p, self.saturation = p, (float(lo), float(hi))

    def __call__(self, crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if rng.random() >= self.p:
            return crop
        x = crop[..., rng.permutation(3)].astype(np.float64)
        theta = rng.uniform(-np.pi, np.pi)
        s = np.exp(rng.uniform(*np.log(self.saturation)))
        c, si = np.cos(theta) * s, np.sin(theta) * s
        rot = np.array([[1.0, 0.0, 0.0], [0.0, c, -si], [0.0, si, c]])
        m = _YIQ_INV @ rot @ _YIQ  # (3, 3) acting on RGB column vectors
        return np.clip(x @ m.T, 0, 255).round().astype(np.uint8)
