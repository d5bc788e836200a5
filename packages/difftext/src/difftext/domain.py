"""Text diffusion as a domain: ``diffcore serve text``, ``bench text``, ``train text``, ``smoke text``."""

from diffcore.plugins import Domain

domain = Domain(
    name="text",
    title="Text diffusion (SDAR)",
    paper=(
        "Cheng et al. 2025, SDAR: A Synergistic Diffusion-AutoRegression Paradigm for Scalable Sequence Generation; "
        "Ma et al. 2025, dKV-Cache: The Cache for Diffusion Language Models"
    ),
    load="difftext.lm:BlockDiffusionLM.load",
    smoke="difftext.smoke:smoke",
    demo="difftext.ui:build_demo",
    train="difftext.train:main",
    benchmarks={"text": "difftext.bench:run"},
)
