"""Whole-image encode / decode with the tinysd autoencoder, any image size."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL

from diffcore.errors import InvalidInputError
from diffcore.prior.models import DOWNSAMPLE


def _check_images(x: torch.Tensor) -> None:
    if not torch.is_tensor(x) or x.ndim != 4 or x.shape[1] != 3:
        raise InvalidInputError(f"expected images as a (B, 3, H, W) tensor in [-1, 1], got {getattr(x, 'shape', type(x))}")
    if min(x.shape[-2:]) < DOWNSAMPLE:
        raise InvalidInputError(f"images must be at least {DOWNSAMPLE}x{DOWNSAMPLE} pixels, got {tuple(x.shape[-2:])}")


@torch.no_grad()
def encode(vae: AutoencoderKL, images: torch.Tensor, *, scaled: bool = True) -> torch.Tensor:
    """(B, 3, H, W) in [-1, 1] -> latents (B, 4, ⌈H/4⌉, ⌈W/4⌉), posterior mean.

    Sides that are not multiples of 4 are padded by reflection (undone by
    :func:`decode` with ``size``). With ``scaled`` the latents are multiplied by
    the autoencoder's ``scaling_factor`` (unit variance, what the UNet sees).
    """
    _check_images(images)
    h, w = images.shape[-2:]
    ph, pw = (-h) % DOWNSAMPLE, (-w) % DOWNSAMPLE
    if ph or pw:
        images = F.pad(images, (0, pw, 0, ph), mode="reflect")
    z = vae.encode(images.to(vae.device, vae.dtype)).latent_dist.mode()  # (B, 4, H/4, W/4)
    return z * vae.config.scaling_factor if scaled else z


@torch.no_grad()
def decode(
    vae: AutoencoderKL, latents: torch.Tensor, *, size: tuple[int, int] | None = None, scaled: bool = True
) -> torch.Tensor:
    """Latents -> images (B, 3, 4h, 4w) in [-1, 1], cropped to ``size`` if given."""
    if not torch.is_tensor(latents) or latents.ndim != 4 or latents.shape[1] != vae.config.latent_channels:
        raise InvalidInputError(
            f"expected latents (B, {vae.config.latent_channels}, h, w), got {getattr(latents, 'shape', type(latents))}"
        )
    z = latents / vae.config.scaling_factor if scaled else latents
    x = vae.decode(z.to(vae.device, vae.dtype)).sample.clamp(-1, 1)
    if size is not None:
        x = x[..., : size[0], : size[1]]
    return x


@torch.no_grad()
def reconstruct(vae: AutoencoderKL, images: torch.Tensor) -> torch.Tensor:
    """Encode then decode (posterior mean), same size out as in: (B, 3, H, W) in [-1, 1]."""
    return decode(vae, encode(vae, images, scaled=False), size=tuple(images.shape[-2:]), scaled=False)
