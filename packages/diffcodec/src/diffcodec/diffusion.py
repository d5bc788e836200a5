"""The diffusion halves of the two codecs, shared by training and decoding.

* OSCAR (Guo et al. 2025): a compressed latent *is* a noisy latent. Its
  per-channel norms are matched to those of the forward process at the rate's
  pseudo timestep ``t(rate)`` (:func:`norm_match`, using the original latent's
  channel RMS sent as side information), and ONE UNet pass predicts the clean
  latent (:func:`one_step`).
* RDEIC (Li et al. 2024): relay residual diffusion. Sampling starts from the
  compressed latent ``c`` noised to step ``N``,
  ``x_N = √ᾱ_N·c + √(1−ᾱ_N)·ε`` (:func:`relay_start`), and a short
  deterministic DDIM run of 2–5 steps ends at the clean latent
  (:func:`relay_sample`). In the noise the UNet is trained to predict, the
  residual ``c − x0`` is folded into ε: ``ε' = ε + (c − x0)/λ`` with
  ``λ = √(1−ᾱ_N)/√ᾱ_N`` (:func:`relay_target`).
"""

from __future__ import annotations

import functools

import torch
from diffusers import DDPMScheduler, UNet2DModel

from diffcore.prior.models import SCHEDULER_CONFIG


@functools.cache
def _alphas_cumprod() -> torch.Tensor:
    return DDPMScheduler.from_config(SCHEDULER_CONFIG).alphas_cumprod.double()


def alphas_cumprod() -> torch.Tensor:
    """ᾱ_t of tinysd's noise schedule, t = 0 … 999 (float64; a copy of a table built once)."""
    return _alphas_cumprod().clone()


def timestep_for_error(mse: float) -> int:
    """The pseudo timestep whose noise-to-signal ratio (1−ᾱ_t)/ᾱ_t equals a latent MSE.

    A latent ``ẑ = x0 + e`` with ``E[e²] = mse`` looks like ``x_t/√ᾱ_t`` when
    ``(1−ᾱ_t)/ᾱ_t = mse``; this is how OSCAR calibrates ``t(rate)`` and RDEIC its ``N``.
    """
    a = alphas_cumprod()
    return int(((1 - a) / a - mse).abs().argmin())


def channel_rms(z: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) -> (B, C) root mean square per channel, rounded through float16 (as the bitstream sends it)."""
    return z.float().pow(2).mean(dim=(-2, -1)).sqrt().half().float()


def norm_match(z_hat: torch.Tensor, rms0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Scale each channel of ``z_hat`` to the RMS a forward-process latent at ``t`` would have.

    ``x_t = √ᾱ x0 + √(1−ᾱ) ε`` has per-channel mean square ``ᾱ·rms0² + (1−ᾱ)``;
    ``rms0`` (B, C) is the original latent's RMS, from the side information.
    """
    a = alphas_cumprod().to(z_hat.device)[t].float().view(-1, 1)  # (B, 1)
    target = (a * rms0.pow(2) + (1 - a)).sqrt()  # (B, C)
    cur = z_hat.pow(2).mean(dim=(-2, -1)).clamp_min(1e-8).sqrt()
    return z_hat * (target / cur)[..., None, None]


def predict_x0(unet: UNet2DModel, x_t: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(x0 estimate, ε estimate) from one ε-prediction UNet pass at timesteps ``t`` (B,)."""
    a = alphas_cumprod().to(x_t.device)[t].float().view(-1, 1, 1, 1)
    eps = unet(x_t, t).sample
    return (x_t - (1 - a).sqrt() * eps) / a.sqrt(), eps


def one_step(unet: UNet2DModel, z_hat: torch.Tensor, rms0: torch.Tensor, t: int) -> torch.Tensor:
    """OSCAR's decoder: norm-match the decoded latent to ``t`` and predict x0 in one pass."""
    tt = torch.full((z_hat.shape[0],), t, dtype=torch.long, device=z_hat.device)
    return predict_x0(unet, norm_match(z_hat, rms0, tt), tt)[0]


def ddim_from(unet: UNet2DModel, x_t: torch.Tensor, t: int, steps: int) -> torch.Tensor:
    """Deterministic DDIM (η = 0) from ``x_t`` at step ``t`` down to x0 in ``steps`` model calls.

    The timesteps are ``t, t·(K−1)/K, …, t/K`` (rounded); the last call's x0
    estimate is the result. Gradients flow through every call, which is what
    RDEIC's fixed-step fine-tuning needs.

    Not :func:`diffcore.sampling.sample`, for three reasons: that loop runs under
    ``torch.no_grad`` (as k-diffusion's and diffusers' samplers do) while
    training back-propagates through this one; these timesteps split ``[0, t]``
    evenly for any ``t`` and ``K``, which no diffusers DDIM grid does (nor its
    SDEdit tail, and ``DDIMScheduler`` takes no custom timesteps); and the start
    state is no ``add_noise`` of a clean latent (a norm-matched code, or RDEIC's
    relay start from the compressed latent). Decoding calls this same function,
    so a decoder runs exactly the loop it was fine-tuned through.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    a_all = alphas_cumprod().to(x_t.device).float()
    ts = [round(t * (steps - k) / steps) for k in range(steps)]
    x = x_t
    for k, tk in enumerate(ts):
        tt = torch.full((x.shape[0],), tk, dtype=torch.long, device=x.device)
        x0, eps = predict_x0(unet, x, tt)
        if k == steps - 1:
            return x0
        a_next = a_all[ts[k + 1]]
        x = a_next.sqrt() * x0 + (1 - a_next).sqrt() * eps
    raise AssertionError("unreachable")


def relay_noise(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """The decoder's fixed noise ε (seeded on CPU, so decoding is deterministic everywhere)."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def relay_start(c: torch.Tensor, n: int, eps: torch.Tensor) -> torch.Tensor:
    """x_N = √ᾱ_N·c + √(1−ᾱ_N)·ε."""
    a = alphas_cumprod()[n].float()
    return a.sqrt() * c + (1 - a).sqrt() * eps.to(c)


def relay_target(eps: torch.Tensor, c: torch.Tensor, x0: torch.Tensor, n: int) -> torch.Tensor:
    """ε' = ε + (c − x0)/λ, λ = √(1−ᾱ_N)/√ᾱ_N: the noise that maps x_N back to the true x0."""
    a = alphas_cumprod()[n].float()
    return eps + (c - x0) * (a.sqrt() / (1 - a).sqrt())


def relay_sample(unet: UNet2DModel, c: torch.Tensor, n: int, steps: int, seed: int = 0) -> torch.Tensor:
    """RDEIC's decoder: start at x_N from ``c`` and run ``steps`` DDIM steps to x0."""
    return ddim_from(unet, relay_start(c, n, relay_noise(tuple(c.shape), seed)), n, steps)
