import math

import numpy as np
import pytest

from diffdrive import TrackingController


def _line(v: float, a: float = 0.0, curv: float = 0.0) -> np.ndarray:
    t = 0.5 * np.arange(1, 9)
    x = v * t + 0.5 * a * t**2
    return np.stack([x, 0.5 * curv * x**2, curv * x], 1)


def test_constant_speed_straight_plan_needs_no_input():
    a, s = TrackingController().controls(_line(20.0), 20.0)
    assert a == pytest.approx(0.0, abs=1e-9) and s == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("accel", [-3.0, -1.0, 0.5, 2.0])
def test_acceleration_fit_recovers_the_plans_acceleration(accel):
    a, _ = TrackingController().controls(_line(20.0, accel), 20.0)
    assert a == pytest.approx(accel, abs=1e-6)


def test_pure_pursuit_steers_toward_the_plan():
    ctl = TrackingController()
    _, right = ctl.controls(_line(20.0, curv=0.002), 20.0)
    _, left = ctl.controls(_line(20.0, curv=-0.002), 20.0)
    assert right > 0 > left and right == pytest.approx(-left)
    # an arc of curvature k is followed with steering atan(k L)
    assert right == pytest.approx(math.atan(0.002 * 5.0), rel=0.05)


def test_actions_are_normalised_and_clipped():
    act = TrackingController().action(_line(0.0, 30.0, 0.5), 5.0)
    assert act.shape == (2,) and np.all(np.abs(act) <= 1.0) and act[0] == 1.0
