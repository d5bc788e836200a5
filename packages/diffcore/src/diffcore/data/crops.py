"""Random-crop training data and image/tensor conversion.

Crops are drawn from a seeded generator keyed by the sample index, so item
``i`` is the same crop on every run and in every process: a data-parallel run
with the same global batch sees exactly the batches of a single-process run.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from diffcore.data.colour import ColourJitter, is_gray
from diffcore.errors import DataError, InvalidInputError


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (3, H, W) float32 in [-1, 1]."""
    if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise InvalidInputError(
            "expected an (H, W, 3) uint8 RGB array; convert with PIL's .convert('RGB') first, "
            f"got {getattr(img, 'shape', type(img))} {getattr(img, 'dtype', '')}"
        )
    return torch.tensor(img).permute(2, 0, 1).float().div(127.5).sub(1.0)  # copies: PIL arrays are read-only


def to_y(x: torch.Tensor) -> torch.Tensor:
    """RGB in [-1, 1], (..., 3, H, W) -> luma Y (BT.601) in [-1, 1], (..., 1, H, W)."""
    if x.ndim < 3 or x.shape[-3] != 3:
        raise InvalidInputError(f"to_y needs (..., 3, H, W) RGB, got shape {tuple(x.shape)}")
    w = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=x.device)
    return (x * w[:, None, None]).sum(dim=-3, keepdim=True)


class RandomCrops(Dataset):
    """``length`` random ``size``² crops (with random flips) from ``images``.

    Args:
        images: (H, W, 3) uint8 RGB arrays, each at least ``size`` on both sides.
        size: crop side in pixels.
        length: number of items; a training run of S steps at global batch B
            needs ``length >= S * B``.
        seed: item ``i`` is fully determined by ``(seed, i)``.
        gray: return luma Y, (1, size, size), instead of RGB.
        hflip / vflip: flip each crop with probability 1/2.
        colour_jitter: applied to the crops of colour images (grayscale ones
            stay gray), with the item's own generator.

    Images are picked with probability proportional to the square root of their
    area, so big photos count more without drowning the small ones.
    """

    def __init__(
        self,
        images: Sequence[np.ndarray],
        *,
        size: int,
        length: int,
        seed: int = 0,
        gray: bool = False,
        hflip: bool = True,
        vflip: bool = False,
        colour_jitter: ColourJitter | None = None,
    ) -> None:
        if size <= 0 or length <= 0:
            raise InvalidInputError(f"size and length must be positive, got size={size}, length={length}")
        kept = [im for im in images if min(im.shape[:2]) >= size]
        if not kept:
            raise DataError(f"no image is at least {size}x{size} pixels; use a smaller crop size")
        self.images = kept
        self.size, self.length, self.seed = size, length, seed
        self.gray, self.hflip, self.vflip = gray, hflip, vflip
        self.colour_jitter = colour_jitter
        self._colour = [colour_jitter is not None and im.ndim == 3 and not is_gray(im) for im in kept]
        area = np.array([im.shape[0] * im.shape[1] for im in kept], dtype=np.float64)
        self.p = np.sqrt(area) / np.sqrt(area).sum()

    def __len__(self) -> int:
        return self.length

    def _pick(self, i: int) -> np.ndarray:
        if not 0 <= i < self.length:
            raise IndexError(i)
        rng = np.random.default_rng((self.seed, i))
        k = rng.choice(len(self.images), p=self.p)
        img = self.images[k]
        h, w = img.shape[:2]
        top = rng.integers(0, h - self.size + 1)
        left = rng.integers(0, w - self.size + 1)
        crop = img[top : top + self.size, left : left + self.size]
        if self.hflip and rng.random() < 0.5:
            crop = crop[:, ::-1]
        if self.vflip and rng.random() < 0.5:
            crop = crop[::-1]
        if self._colour[k]:
            crop = self.colour_jitter(crop, rng)
        return np.ascontiguousarray(crop)

    def __getitem__(self, i: int) -> torch.Tensor:
        x = to_tensor(self._pick(i))  # (3, S, S)
        return to_y(x) if self.gray else x


class LatentCrops(RandomCrops):
    """Random ``size``² crops of latent maps, (C, h, w) tensors, with flips.

    The denoiser trains on crops of whole encoded photos: encoding each photo
    once is far cheaper than encoding every pixel crop.
    """

    def __init__(self, latents: Sequence[torch.Tensor], *, size: int, length: int, seed: int = 0) -> None:
        maps = [z.permute(1, 2, 0).contiguous().numpy() for z in latents]  # (h, w, C)
        super().__init__(maps, size=size, length=length, seed=seed, hflip=True, vflip=False)

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(self._pick(i)).permute(2, 0, 1).contiguous()  # (C, size, size)
