"""diffdrive's test fixtures: headless envs and the shipped planners."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def highway_scene() -> np.ndarray:
    """The scene of a held-out highway episode's first step."""
    from diffdrive import make_env

    env = make_env("highway")
    obs, _ = env.reset(seed=300_000)
    env.close()
    return obs


@pytest.fixture(scope="session")
def planner():
    from diffdrive import Planner

    return Planner.load()
