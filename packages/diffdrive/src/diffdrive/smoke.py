"""The planner's smoke run: a few closed-loop planning steps of a held-out highway episode, headless."""

from __future__ import annotations

from typing import Any

#: the smoke episode: held-out highway traffic, a few planning steps
SMOKE_SEED, SMOKE_STEPS = 300_000, 6


def smoke(planner: Any) -> dict[str, float]:
    """Collided (0/1), progress (m) and the number of candidate modes of the first plan."""
    from diffdrive.closed_loop import PlannerDriver, run_episode

    ep = run_episode("highway", PlannerDriver(planner), SMOKE_SEED, max_steps=SMOKE_STEPS)
    return {"collided": float(ep.collided), "progress_m": float(ep.progress_m), "modes": float(len(ep.plans[0].confidences))}
