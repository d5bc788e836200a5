"""The driving planner as a domain plugin: ``diffcore serve drive``, ``bench drive``, ``train drive``.

Importing this module loads no model and does not import gradio or highway-env.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: the smoke episode: held-out highway traffic, a few planning steps
SMOKE_SEED, SMOKE_STEPS = 300_000, 6


def _bench_drive(out_dir: Path, quick: bool = False) -> Path:
    from diffdrive.bench import run

    return run(out_dir, quick=quick)


def _bench_drive_cuda(out_dir: Path, quick: bool = False) -> Path:
    from diffdrive.bench import run_cuda

    return run_cuda(out_dir, quick=quick)


class DriveDomain:
    name = "drive"
    title = "Driving planner"
    paper = "Liao et al. 2025, DiffusionDrive: Truncated Diffusion Model for End-to-End Autonomous Driving (CVPR)"
    benchmarks: Mapping[str, Any] = {"drive": _bench_drive, "drive-cuda": _bench_drive_cuda}

    def load(self, device: str = "cpu") -> Any:
        from diffdrive.planner import Planner

        return Planner.load("diffusiondrive", device=device)

    def smoke(self, loaded: Any) -> Mapping[str, float]:
        """A few planning steps of a held-out highway episode: collided (0/1), progress (m), mode count."""
        from diffdrive.closed_loop import PlannerDriver, run_episode

        ep = run_episode("highway", PlannerDriver(loaded), SMOKE_SEED, max_steps=SMOKE_STEPS)
        return {"collided": float(ep.collided), "progress_m": ep.progress_m, "modes": float(len(ep.plans[0].confidences))}

    def build_demo(self) -> Any:
        from diffdrive.ui import build_demo

        return build_demo()

    def train(self, argv: list[str]) -> None:
        from diffdrive.train import main

        main(argv)


domain = DriveDomain()
