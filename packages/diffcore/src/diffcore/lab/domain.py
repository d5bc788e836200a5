"""The Sampler lab as a domain: ``diffcore serve lab``, ``bench accel``, ``train lab``, ``smoke lab``."""

from diffcore.plugins import Domain

domain = Domain(
    name="lab",
    title="Sampler lab",
    paper=(
        "Ma et al. 2024 (DeepCache); Li et al. 2024 (Faster Diffusion); Liu et al. 2025 (TeaCache, CacheQuant); "
        "Li et al. 2023 (Q-Diffusion); Shang et al. 2023 (PTQ4DM)"
    ),
    module="diffcore.lab",
    load="diffcore.zoo:load_tinysd",
    train="diffcore.lab.schedules:main",
    benchmarks={"accel": "diffcore.bench.accel:run", "accel-cuda": "diffcore.bench.accel:run_cuda"},
)
