"""Holdout metrics of tinysd's models, shared by the training recipe, the benchmark and the tests."""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL, DDPMScheduler

from diffcore.data import PoolImage, to_tensor
from diffcore.metrics import MS_SSIM_MIN_SIDE, ms_ssim, psnr
from diffcore.prior.autoencode import reconstruct
from diffcore.prior.models import SCHEDULER_CONFIG

#: the timesteps at which the denoisers are probed
PROBE_TIMESTEPS = (50, 250, 500, 750, 950)


def evaluate_autoencoder(vae: AutoencoderKL, holdout: list[PoolImage]) -> dict[str, float]:
    """Mean PSNR / MS-SSIM (RGB, [0, 1] range) of full-resolution holdout reconstructions.

    MS-SSIM is averaged over the images large enough for its 5 scales
    (:data:`~diffcore.metrics.MS_SSIM_MIN_SIDE`); it is left out when none is.
    """
    ps, ms = [], []
    for im in holdout:
        x = to_tensor(im.pixels)[None]  # (1, 3, H, W)
        rec = reconstruct(vae, x)
        a, b = (x + 1) / 2, (rec + 1) / 2
        ps.append(psnr(a, b).item())
        if min(x.shape[-2:]) >= MS_SSIM_MIN_SIDE:
            ms.append(ms_ssim(a, b).item())
    out = {"holdout_psnr": sum(ps) / len(ps)}
    if ms:
        out["holdout_ms_ssim"] = sum(ms) / len(ms)
    return out


@torch.no_grad()
def evaluate_denoiser(model: torch.nn.Module, latents: torch.Tensor, *, seed: int = 0) -> dict[str, float]:
    """ε-prediction MSE of ``model`` (a UNet or a DiT) and of the no-skill baseline, per timestep.

    The no-skill baseline is the best denoiser that knows only that latents
    have unit variance: ε̂ = √(1−ᾱ_t)·z_t (the posterior mean of ε for
    z_0 ~ N(0, I)). ``latents`` are scaled holdout latents (B, 4, h, w).
    """
    sched = DDPMScheduler.from_config(SCHEDULER_CONFIG)
    g = torch.Generator().manual_seed(seed)
    out: dict[str, float] = {}
    for t in PROBE_TIMESTEPS:
        a = sched.alphas_cumprod[t]
        eps = torch.randn(latents.shape, generator=g)
        zt = a.sqrt() * latents + (1 - a).sqrt() * eps
        pred = model(zt, torch.full((latents.shape[0],), t)).sample
        out[f"eps_mse_t{t}"] = torch.mean((pred - eps) ** 2).item()
        out[f"baseline_eps_mse_t{t}"] = torch.mean(((1 - a).sqrt() * zt - eps) ** 2).item()
    return out


def mean_eps_mse(metrics: dict[str, float]) -> tuple[float, float]:
    """(model, no-skill baseline) ε-MSE averaged over the timesteps :func:`evaluate_denoiser` probes."""
    model = [v for k, v in metrics.items() if k.startswith("eps_mse_t")]
    base = [v for k, v in metrics.items() if k.startswith("baseline_eps_mse_t")]
    return sum(model) / len(model), sum(base) / len(base)
