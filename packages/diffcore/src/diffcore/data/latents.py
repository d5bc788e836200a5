"""Latent data for models trained on an autoencoder's latents (tinysd's UNet, tinydit, codecs).

Encoding each photo once and cropping the latent maps is far cheaper than
encoding every pixel crop.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from diffcore.data.crops import to_tensor
from diffcore.data.pool import PoolImage
from diffcore.data.splits import split_images


def latent_maps(vae: Any, images: list[PoolImage]) -> list[torch.Tensor]:
    """Scaled latents of every image and of its mirror image: (4, h, w) maps, two per image."""
    from diffcore.prior.autoencode import encode

    maps = []
    for im in images:
        x = to_tensor(im.pixels)[None]  # (1, 3, H, W)
        maps += [encode(vae, x)[0], encode(vae, x.flip(-1))[0]]
    return maps


def holdout_latents(vae: Any, holdout: list[PoolImage], size: int = 32) -> torch.Tensor:
    """Center crops of the scaled holdout latents, (N, 4, s, s), s = ``size`` or the smallest side."""
    from diffcore.prior.autoencode import encode

    maps = [encode(vae, to_tensor(im.pixels)[None])[0] for im in holdout]  # (4, h, w) each
    size = min([size] + [min(z.shape[-2:]) for z in maps])
    crops = []
    for z in maps:
        h, w = z.shape[-2:]
        top, left = (h - size) // 2, (w - size) // 2
        crops.append(z[:, top : top + size, left : left + size])
    return torch.stack(crops)


def holdout_tiles(latents: torch.Tensor, size: int) -> torch.Tensor:
    """Non-overlapping ``size``² tiles of holdout latent crops: (N, C, s, s) -> (N·k, C, size, size)."""
    c = latents.shape[1]
    tiles = latents.unfold(2, size, size).unfold(3, size, size)  # (N, C, nh, nw, size, size)
    return tiles.permute(0, 2, 3, 1, 4, 5).reshape(-1, c, size, size)


def latent_data(vae: Any, data: str | Path | None = None, crop: int = 16) -> tuple[list[torch.Tensor], torch.Tensor, str]:
    """(training latent maps, holdout tiles (N, 4, crop, crop), description) in ``vae``'s scaled latents."""
    train_imgs, holdout, desc = split_images(data)
    maps = latent_maps(vae, train_imgs)
    hold = holdout_tiles(holdout_latents(vae, holdout), crop)  # (N·k, 4, crop, crop)
    desc += f"; {crop}x{crop} crops of the latents of the {len(train_imgs)} training photos and their mirrors"
    return maps, hold, desc + f"; holdout: {len(hold)} {crop}x{crop} latent tiles of the {len(holdout)} holdout photos"
