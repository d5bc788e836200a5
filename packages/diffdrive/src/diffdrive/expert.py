"""The IDM/MOBIL expert: highway-env's own rule-based driver put in the ego's seat.

The other vehicles of highway-env already drive with IDM (longitudinal, Treiber
et al. 2000) and MOBIL (lane changes, Kesting et al. 2007). The expert replaces
the ego by an ``IDMVehicle`` with the same state and a desired speed drawn per
episode, so demonstrations cover cautious and brisk driving. It ignores the
actions passed to ``env.step``.
"""

from __future__ import annotations

import numpy as np

SPEED_RANGE = (21.0, 31.0)  # desired speeds (m/s) drawn per episode


def install_expert(env, rng: np.random.Generator) -> None:
    """Swap ``env``'s ego for an IDM/MOBIL vehicle with a random desired speed (call after ``reset``)."""
    from highway_env.vehicle.behavior import IDMVehicle

    u = env.unwrapped
    old = u.vehicle
    new = IDMVehicle(
        u.road,
        old.position,
        heading=old.heading,
        speed=old.speed,
        target_lane_index=old.lane_index,
        target_speed=float(rng.uniform(*SPEED_RANGE)),
    )
    u.road.vehicles[u.road.vehicles.index(old)] = new
    u.controlled_vehicles[0] = new
