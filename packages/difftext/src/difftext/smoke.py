"""The text domain's smoke run: SDAR continues a prompt, then the AR model does."""

from __future__ import annotations

from typing import Any

SMOKE_PROMPT = "The import statement"


def smoke(sdar: Any) -> dict[str, float]:
    """Sixteen new SDAR tokens at block 4, threshold 0.9 (tokens, forward passes per token, seconds), and 8 AR tokens."""
    from difftext.lm import ARLM

    r = sdar.generate(SMOKE_PROMPT, max_new_tokens=16, block_size=4, threshold=0.9, seed=0)
    ar = ARLM.load(device=str(sdar.model.device)).generate(SMOKE_PROMPT, max_new_tokens=8)
    return {
        "tokens": float(len(r.tokens)),
        "forwards_per_token": float(r.forwards_per_token),
        "seconds": float(r.seconds),
        "ar_tokens": float(len(ar.tokens)),
    }
