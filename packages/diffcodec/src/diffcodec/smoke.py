"""The codec's smoke run: a 128 px crop of a holdout photo at the lowest rate."""

from __future__ import annotations

from typing import Any

#: the smoke input: a centre crop of a holdout photo (never trained on)
SMOKE_SOURCE, SMOKE_CROP = "coffee", 128


def smoke(codec: Any) -> dict[str, float]:
    """Compress and decompress the crop at the lowest rate: its real bpp and PSNR (dB)."""
    import numpy as np
    import torch

    from diffcore.data import load_pool
    from diffcore.metrics import psnr

    photo = next(p.pixels for p in load_pool("holdout") if p.source == SMOKE_SOURCE)
    h, w = photo.shape[:2]
    top, left = (h - SMOKE_CROP) // 2, (w - SMOKE_CROP) // 2
    crop = np.ascontiguousarray(photo[top : top + SMOKE_CROP, left : left + SMOKE_CROP])
    blob = codec.compress(crop, rate=0)
    out = np.array(codec.decompress(blob))  # a writable copy for torch
    x, y = (torch.from_numpy(a).permute(2, 0, 1).float() for a in (crop, out))  # (3, H, W)
    return {"bpp": 8.0 * len(blob) / crop.shape[0] / crop.shape[1], "psnr": float(psnr(x, y, data_range=255.0))}
