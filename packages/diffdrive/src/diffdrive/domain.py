"""The driving planner as a domain: ``diffcore serve drive``, ``bench drive``, ``train drive``, ``smoke drive``."""

from diffcore.plugins import Domain

domain = Domain(
    name="drive",
    title="Driving planner",
    paper="Liao et al. 2025, DiffusionDrive: Truncated Diffusion Model for End-to-End Autonomous Driving (CVPR)",
    module="diffdrive",
    load="diffdrive.planner:Planner.load",
    benchmarks={"drive": "diffdrive.bench:run", "drive-cuda": "diffdrive.bench:run_cuda"},
)
