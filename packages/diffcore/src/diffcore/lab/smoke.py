"""The Sampler lab's smoke run: DeepCache N=2 against full compute, 6 DDIM steps."""

from __future__ import annotations

from typing import Any


def smoke(_tinysd: Any) -> dict[str, float]:
    """PSNR and relative L2 of DeepCache N=2 against full compute, and the cached run's seconds.

    The lab compares on the process's shared tinysd (what its tab uses), so the
    loaded model is not needed here.
    """
    from diffcore.lab.variants import compare

    r = compare("ddim", 6, "DeepCache N=2", "none", seed=0, n=1, size=64)
    return {"psnr_vs_full": float(r["psnr"]), "rel_l2": float(r["rel_l2"]), "seconds": float(r["t_fast"])}
