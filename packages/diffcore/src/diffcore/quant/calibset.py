"""Calibration-set sampling across timesteps: PTQ4DM's NDTC, or uniform.

PTQ4DM (Shang et al., CVPR 2023) observes that (1) calibration inputs
should be the model's own denoising states ``x_t`` produced by sampling, not
noised real images; (2) states near the data end (small ``t``) match the
activation distribution that matters most for the final image; yet (3) a set
drawn from a single ``t`` misses the other steps. Its Normally Distributed
Time-step Calibration (NDTC) therefore draws the calibration timesteps from
``N(μ, σ)`` with ``μ ≤ T/2`` — skewed toward the data end but spanning all
steps. Here the draw is over the sampler's own timesteps (so every pick is a
state the sampling loop actually visits), without replacement and seeded.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from diffcore.errors import InvalidInputError

METHODS = ("ndtc", "uniform")


def calibration_timesteps(
    timesteps: Sequence[int] | torch.Tensor,
    n: int,
    *,
    method: str = "ndtc",
    mean: float = 0.4,
    std: float = 0.5,
    num_train_timesteps: int = 1000,
    seed: int = 0,
) -> list[int]:
    """Pick ``n`` of a sampler's timesteps to collect calibration activations at.

    Pass the result as ``quantize(..., collect_timesteps=...)``; the calibrate
    function then runs full sampling loops and only these steps are recorded.

    Args:
        timesteps: the sampler's timesteps, e.g. ``scheduler.timesteps`` after ``set_timesteps``.
        n: how many to pick (all of them if ``n`` ≥ their number).
        method: ``"ndtc"`` (PTQ4DM: weight of step ``t`` ∝ ``N(t/T; mean, std)``) or
            ``"uniform"`` (equal weights).
        mean: NDTC's ``μ/T``, at most 0.5 (PTQ4DM: biased toward the data end ``t = 0``). Default 0.4.
        std: NDTC's ``σ/T`` (PTQ4DM uses ``T/2``). Default 0.5.
        num_train_timesteps: ``T``.
        seed: the draw's seed.

    Returns:
        The picked timesteps as ints, in the sampler's order (noisy first).
    """
    ts = [int(t) for t in (timesteps.tolist() if isinstance(timesteps, torch.Tensor) else timesteps)]
    if not ts:
        raise InvalidInputError("timesteps is empty; pass scheduler.timesteps after set_timesteps(steps)")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InvalidInputError(f"n must be a positive int (how many timesteps to calibrate at), got {n!r}")
    if method not in METHODS:
        raise InvalidInputError(f"method must be 'ndtc' (PTQ4DM) or 'uniform', got {method!r}")
    if method == "ndtc" and not (0.0 <= mean <= 0.5 and std > 0):
        raise InvalidInputError(f"NDTC needs 0 <= mean <= 0.5 (biased toward t = 0) and std > 0, got mean={mean}, std={std}")
    if n >= len(ts):
        return ts
    u = torch.tensor(ts, dtype=torch.float64) / num_train_timesteps  # (S,) in [0, 1)
    weights = torch.exp(-0.5 * ((u - mean) / std) ** 2) if method == "ndtc" else torch.ones_like(u)
    gen = torch.Generator().manual_seed(seed)
    picked = torch.multinomial(weights, n, replacement=False, generator=gen).sort().values
    return [ts[i] for i in picked.tolist()]
