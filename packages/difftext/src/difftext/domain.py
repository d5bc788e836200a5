"""Text diffusion as a domain: ``diffcore serve text``, ``bench text``, ``train text``, ``smoke text``."""

from diffcore.plugins import Domain

domain = Domain(
    name="text",
    title="Text diffusion (SDAR)",
    paper=(
        "Cheng et al. 2025, SDAR: A Synergistic Diffusion-AutoRegression Paradigm for Scalable Sequence Generation; "
        "Ma et al. 2025, dKV-Cache: The Cache for Diffusion Language Models"
    ),
    module="difftext",
    load="difftext.lm:BlockDiffusionLM.load",
)
