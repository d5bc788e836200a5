"""The Sampler lab as a domain plugin: ``diffcore serve lab``, ``bench accel``, ``train lab``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any


def _bench_accel(out_dir: Path, quick: bool = False) -> Path:
    from diffcore.bench.accel import run

    return run(out_dir, quick=quick)


def _bench_accel_cuda(out_dir: Path, quick: bool = False) -> Path:
    from diffcore.bench.accel import run

    return run(out_dir, quick=quick, device="cuda")


class LabDomain:
    name = "lab"
    title = "Sampler lab"
    paper = (
        "Ma et al. 2024 (DeepCache); Li et al. 2024 (Faster Diffusion); Liu et al. 2025 (TeaCache, CacheQuant); "
        "Li et al. 2023 (Q-Diffusion); Shang et al. 2023 (PTQ4DM)"
    )
    benchmarks: Mapping[str, Any] = {"accel": _bench_accel, "accel-cuda": _bench_accel_cuda}

    def load(self, device: str = "cpu") -> Any:
        from diffcore.zoo import load_tinysd

        return load_tinysd(device=device)

    def smoke(self, loaded: Any) -> Mapping[str, float]:
        from diffcore.lab.variants import compare

        r = compare("ddim", 6, "DeepCache N=2", "none", seed=0, n=1, size=64)
        return {"psnr_vs_full": r["psnr"], "rel_l2": r["rel_l2"], "seconds": r["t_fast"]}

    def build_demo(self) -> Any:
        from diffcore.lab.ui import build_demo

        return build_demo()

    def train(self, argv: list[str]) -> None:
        from diffcore.lab.schedules import main

        main(argv)


domain = LabDomain()
