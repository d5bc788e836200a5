"""Tracking a planned trajectory with highway-env's ``ContinuousAction`` (acceleration, steering).

Longitudinal: the constant acceleration that best fits the plan's first
2 s, least squares over its poses at 0.5, 1, 1.5 and 2 s
(``x(t) ≈ v·t + a·t²/2``): fitting four poses rather than hitting one makes
the command robust to a few decimetres of error in any single pose, which
otherwise becomes metres per second squared of jitter. Lateral: pure pursuit (Coulter 1992) on
the first planned pose at least ``max(MIN_LOOKAHEAD, v·LOOKAHEAD_S)`` ahead:
curvature ``κ = 2·y / d²`` of the arc through it, steering
``δ = atan(κ·L)`` for highway-env's kinematic bicycle of length ``L``.
Both are mapped to the action's [-1, 1] range and clipped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

DT = 0.5  # s between planned poses
FIT_POSES = 4  # the acceleration is fitted to the plan's first 2 s


@dataclass(frozen=True)
class TrackingController:
    """Turns an ego-frame plan (H, 3) into a normalised ``ContinuousAction`` [acceleration, steering].

    Args:
        wheelbase: the bicycle model's length (highway-env ``Vehicle.LENGTH`` = 5 m).
        lookahead_s: pure-pursuit look-ahead time.
        min_lookahead: pure-pursuit minimum look-ahead distance (m).
        accel_range: highway-env's ``ContinuousAction`` acceleration range (m/s²).
        steer_range: its steering range (rad).
    """

    wheelbase: float = 5.0
    lookahead_s: float = 1.0
    min_lookahead: float = 8.0
    accel_range: tuple[float, float] = (-5.0, 5.0)
    steer_range: tuple[float, float] = (-math.pi / 4, math.pi / 4)

    def controls(self, plan: np.ndarray, speed: float) -> tuple[float, float]:
        """(acceleration m/s², steering rad) that track ``plan`` from the current ``speed``."""
        plan = np.asarray(plan, dtype=np.float64)
        t = DT * np.arange(1, FIT_POSES + 1)
        basis = 0.5 * t**2
        accel = float(np.sum(basis * (plan[:FIT_POSES, 0] - speed * t)) / np.sum(basis**2))
        ahead = max(self.min_lookahead, speed * self.lookahead_s)
        dist = np.hypot(plan[:, 0], plan[:, 1])
        i = int(np.argmax(dist >= ahead)) if (dist >= ahead).any() else len(plan) - 1
        x, y = plan[i, 0], plan[i, 1]
        d2 = max(x * x + y * y, 1e-6)
        steer = math.atan(2.0 * y / d2 * self.wheelbase)
        return (float(np.clip(accel, *self.accel_range)), float(np.clip(steer, *self.steer_range)))

    def action(self, plan: np.ndarray, speed: float) -> np.ndarray:
        """The normalised ``ContinuousAction`` array (2,) in [-1, 1]."""
        a, s = self.controls(plan, speed)
        lo_a, hi_a = self.accel_range
        lo_s, hi_s = self.steer_range
        return np.array([2 * (a - lo_a) / (hi_a - lo_a) - 1, 2 * (s - lo_s) / (hi_s - lo_s) - 1], dtype=np.float32)
