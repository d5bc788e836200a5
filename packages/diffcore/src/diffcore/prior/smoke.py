"""The prior's smoke run: one 64 px DDIM sample in 4 steps."""

from __future__ import annotations

from diffcore.zoo import TinySD


def smoke(tinysd: TinySD) -> dict[str, float]:
    """Pixel mean and std of one seeded 4-step sample, and its seconds."""
    from diffcore.prior.generate import generate

    out = generate(tinysd, sampler="ddim", steps=4, seed=0, n=1, size=64)
    return {"mean": float(out.images.mean()), "std": float(out.images.std()), "seconds": float(out.seconds)}
