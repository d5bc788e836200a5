"""The prior as a domain plugin: ``diffcore serve prior``, ``bench prior``, ``train prior``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any


def _bench_prior(out_dir: Path, quick: bool = False) -> Path:
    from diffcore.prior.bench import run

    return run(out_dir, quick=quick)


class PriorDomain:
    name = "prior"
    title = "Prior"
    paper = "Rombach et al. 2022, High-Resolution Image Synthesis with Latent Diffusion Models (as tinysd)"
    benchmarks: Mapping[str, Any] = {"prior": _bench_prior}

    def load(self, device: str = "cpu") -> Any:
        from diffcore.zoo import load_tinysd

        return load_tinysd(device=device)

    def smoke(self, loaded: Any) -> Mapping[str, float]:
        from diffcore.prior.generate import generate

        out = generate(loaded, sampler="ddim", steps=4, seed=0, n=1, size=64)
        return {"mean": float(out.images.mean()), "std": float(out.images.std()), "seconds": out.seconds}

    def build_demo(self) -> Any:
        from diffcore.prior.ui import build_demo

        return build_demo()

    def train(self, argv: list[str]) -> None:
        from diffcore.prior.recipe import main

        main(argv)


domain = PriorDomain()
