"""The image codec as a domain plugin: ``diffcore serve codec``, ``bench codec``, ``train codec``.

Importing this module loads no model and does not import gradio:
everything is imported when it is called.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: the smoke input: a centre crop of a holdout photo (never trained on)
SMOKE_SOURCE, SMOKE_CROP = "coffee", 128


def _bench_codec(out_dir: Path, quick: bool = False) -> Path:
    from diffcodec.bench import run

    return run(out_dir, quick=quick)


class CodecDomain:
    name = "codec"
    title = "Image codec"
    paper = (
        "Guo et al. 2025, OSCAR: One-Step Diffusion Codec Across Multiple Bit-rates; "
        "Li et al. 2024, RDEIC: Accelerating Diffusion-Based Extreme Image Compression with Relay Residual Diffusion"
    )
    benchmarks: Mapping[str, Any] = {"codec": _bench_codec}

    def load(self, device: str = "cpu") -> Any:
        from diffcodec.codec import Codec

        return Codec.load("oscar", device=device)

    def smoke(self, loaded: Any) -> Mapping[str, float]:
        """Compress and decompress a 128 px holdout crop at the lowest rate: its real bpp and PSNR (dB)."""
        import numpy as np
        import torch

        from diffcore.data import load_pool
        from diffcore.metrics import psnr

        photo = next(p.pixels for p in load_pool("holdout") if p.source == SMOKE_SOURCE)
        h, w = photo.shape[:2]
        top, left = (h - SMOKE_CROP) // 2, (w - SMOKE_CROP) // 2
        crop = np.ascontiguousarray(photo[top : top + SMOKE_CROP, left : left + SMOKE_CROP])
        blob = loaded.compress(crop, rate=0)
        out = np.array(loaded.decompress(blob))  # a writable copy for torch
        x, y = (torch.from_numpy(a).permute(2, 0, 1).float() for a in (crop, out))  # (3, H, W)
        return {"bpp": 8.0 * len(blob) / crop.shape[0] / crop.shape[1], "psnr": float(psnr(x, y, data_range=255.0))}

    def build_demo(self) -> Any:
        from diffcodec.ui import build_demo

        return build_demo()

    def train(self, argv: list[str]) -> None:
        from diffcodec.train import main

        main(argv)


domain = CodecDomain()
