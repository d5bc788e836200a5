"""Unconditional sampling from tinysd: noise -> latents -> images."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from diffcore.errors import InvalidInputError
from diffcore.prior.autoencode import decode
from diffcore.prior.models import DOWNSAMPLE
from diffcore.sampling import sample
from diffcore.validate import check_count, check_seed
from diffcore.zoo import TinySD

#: most sampler steps one generation (or edit, :mod:`diffcore.prior.edit`) may ask for
MAX_STEPS = 100
#: most images and the largest side (px) of one generation
MAX_IMAGES, MAX_SIZE = 64, 512


@dataclass(frozen=True)
class Samples:
    """Generated images (N, H, W, 3) uint8, their latents and the wall time."""

    images: np.ndarray
    latents: torch.Tensor
    seconds: float


def initial_noise(n: int, size: int, *, seed: int, channels: int = 4) -> torch.Tensor:
    """The standard-normal starting latents for ``n`` images of ``size``² pixels."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, channels, size // DOWNSAMPLE, size // DOWNSAMPLE, generator=g)


def check_request(
    *, seed: int, n: int, size: int, steps: int, max_images: int = MAX_IMAGES, max_size: int = MAX_SIZE
) -> tuple[int, int, int, int]:
    """(seed, n, size, steps) of a sampling request, checked (see :func:`generate`); a typed error otherwise."""
    seed = check_seed(seed)
    n = check_count(n, "n", high=max_images)
    steps = check_count(steps, "steps", high=MAX_STEPS)
    if check_count(size, "size", low=16, high=max_size) % 16:
        raise InvalidInputError(f"size must be a multiple of 16 pixels, got {size!r}")
    return seed, n, size, steps


def generate(
    tinysd: TinySD,
    *,
    sampler: str = "dpmpp_2m",
    steps: int = 20,
    seed: int = 0,
    n: int = 4,
    size: int = 128,
    progress: bool = False,
    callback=None,
) -> Samples:
    """Sample ``n`` images of ``size``² pixels from tinysd with ``sampler``.

    ``size`` must be a multiple of 16 (the UNet downsamples latents ×4) up to :data:`MAX_SIZE`; ``n`` at
    most :data:`MAX_IMAGES`, ``steps`` at most :data:`MAX_STEPS`; ``seed`` an int in ``[0, 2**32)``.
    """
    seed, n, size, steps = check_request(seed=seed, n=n, size=size, steps=steps)
    dev = tinysd.unet.device
    noise = initial_noise(n, size, seed=seed, channels=tinysd.latent_channels).to(dev)
    g = torch.Generator(device=dev).manual_seed(seed + 1)  # stochastic samplers' noise
    t0 = time.perf_counter()
    z = sample(
        tinysd.unet,
        sampler,
        noise,
        steps=steps,
        base_config=tinysd.scheduler_config,
        generator=g,
        progress=progress,
        callback=callback,
    )
    x = decode(tinysd.vae, z)
    seconds = time.perf_counter() - t0
    images = ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()
    return Samples(images=images, latents=z.cpu(), seconds=seconds)
