"""Training objectives of tinysd, as modules whose forward returns the loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DModel
from torch import nn

from diffcore.data.colour import rgb_to_ycbcr


class AutoencoderObjective(nn.Module):
    """KL-regularised autoencoder loss (Rombach et al. 2022, sec. 3.1), with a chroma term.

    ``loss = MSE(x, D(z)) + chroma_weight · MSE_CbCr(x, D(z)) + kl_weight · KL(q(z|x) ‖ N(0, I))``
    with ``z`` sampled from the posterior. The KL weight is tiny, as in SD's
    VAE: it only keeps the latent scale in check. The chroma term (BT.601 Cb
    and Cr) makes colour errors cost on their own: in RGB MSE a hue shift at
    constant luma is cheap next to luma detail, and the eye sees it first.
    """

    def __init__(self, vae: AutoencoderKL, *, kl_weight: float = 1e-6, chroma_weight: float = 0.0) -> None:
        super().__init__()
        self.vae, self.kl_weight, self.chroma_weight = vae, kl_weight, chroma_weight

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:  # x: (B, 3, H, W) in [-1, 1]
        post = self.vae.encode(x).latent_dist
        rec = self.vae.decode(post.sample()).sample
        mse = F.mse_loss(rec, x)
        chroma = F.mse_loss(rgb_to_ycbcr(rec)[:, 1:], rgb_to_ycbcr(x)[:, 1:])  # (B, 2, H, W): Cb, Cr
        kl = post.kl().mean() / x[0].numel()
        loss = mse + self.chroma_weight * chroma + self.kl_weight * kl
        return {"loss": loss, "mse": mse.detach(), "chroma_mse": chroma.detach(), "kl": kl.detach()}


class DenoiserObjective(nn.Module):
    """Epsilon-prediction DDPM loss (Ho et al. 2020, eq. 14) on scaled latents."""

    def __init__(self, unet: UNet2DModel, scheduler: DDPMScheduler) -> None:
        super().__init__()
        self.unet = unet
        self.register_buffer("alphas_cumprod", scheduler.alphas_cumprod.clone().float(), persistent=False)

    def forward(self, z0: torch.Tensor) -> dict[str, torch.Tensor]:  # z0: (B, 4, h, w)
        b = z0.shape[0]
        t = torch.randint(0, self.alphas_cumprod.numel(), (b,), device=z0.device)
        a = self.alphas_cumprod[t].view(b, 1, 1, 1)
        eps = torch.randn_like(z0)
        zt = a.sqrt() * z0 + (1 - a).sqrt() * eps
        loss = F.mse_loss(self.unet(zt, t).sample, eps)
        return {"loss": loss}
