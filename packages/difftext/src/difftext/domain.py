"""Text diffusion as a domain plugin: ``diffcore serve text``, ``bench text``, ``train text``.

Importing this module loads no model and imports neither transformers nor gradio.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

SMOKE_PROMPT = "The import statement"


def _bench_text(out_dir: Path, quick: bool = False) -> Path:
    from difftext.bench import run

    return run(out_dir, quick=quick)


class TextDomain:
    name = "text"
    title = "Text diffusion (SDAR)"
    paper = (
        "Cheng et al. 2025, SDAR: A Synergistic Diffusion-AutoRegression Paradigm for Scalable Sequence Generation; "
        "Ma et al. 2025, dKV-Cache: The Cache for Diffusion Language Models"
    )
    benchmarks: Mapping[str, Any] = {"text": _bench_text}

    def load(self, device: str = "cpu") -> Any:
        from difftext.lm import BlockDiffusionLM

        return BlockDiffusionLM.load(device=device)

    def smoke(self, loaded: Any) -> Mapping[str, float]:
        """Sixteen new tokens at block 4, threshold 0.9: tokens, forward passes per token, seconds."""
        r = loaded.generate(SMOKE_PROMPT, max_new_tokens=16, block_size=4, threshold=0.9, seed=0)
        return {"tokens": float(len(r.tokens)), "forwards_per_token": r.forwards_per_token, "seconds": r.seconds}

    def build_demo(self) -> Any:
        from difftext.ui import build_demo

        return build_demo()

    def train(self, argv: list[str]) -> None:
        from difftext.train import main

        main(argv)


domain = TextDomain()
