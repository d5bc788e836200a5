"""Bjøntegaard deltas: identities, exact answers on curves where PCHIP is exact, overlap and input rules."""

from __future__ import annotations

import math

import numpy as np
import pytest

from diffcodec.rd import bd_quality, bd_rate
from diffcore.errors import InvalidInputError

# a codec-like curve: PSNR concave in log-rate, unevenly spaced points
REF = [(0.05, 24.1), (0.1, 26.3), (0.2, 28.9), (0.4, 31.2), (0.8, 33.8), (1.6, 36.0)]


def test_a_curve_against_itself_is_zero():
    assert bd_rate(REF, REF) == pytest.approx(0.0, abs=1e-12)
    assert bd_quality(REF, REF) == pytest.approx(0.0, abs=1e-12)


def test_halved_rates_are_minus_fifty_percent():
    half = [(r / 2, q) for r, q in REF]
    assert bd_rate(REF, half) == pytest.approx(-50.0)
    assert bd_rate(half, REF) == pytest.approx(100.0)  # and the other way round, twice the bits


def test_shifted_quality():
    up = [(r, q + 1.0) for r, q in REF]
    assert bd_quality(REF, up) == pytest.approx(1.0)
    assert bd_quality(up, REF) == pytest.approx(-1.0)
    assert bd_rate(REF, up) < 0  # better quality at each rate: fewer bits at each quality


def test_exact_on_straight_lines_in_log_rate():
    """PSNR = 10·ln(bpp) + c is reproduced exactly by PCHIP: a +2 dB test curve saves 1 − e^(−0.2) of the rate."""
    rates = [0.1, 0.2, 0.35, 0.6, 1.0]
    ref = [(r, 10 * math.log(r) + 30) for r in rates]
    test = [(r, 10 * math.log(r) + 32) for r in rates]
    assert bd_rate(ref, test) == pytest.approx(100 * (math.exp(-0.2) - 1))  # −18.13 %
    assert bd_quality(ref, test) == pytest.approx(2.0)


def test_only_the_overlap_counts():
    """A test curve that covers only part of the reference is compared there alone, nothing extrapolated."""
    line = [(r, 10 * math.log(r) + 30) for r in (0.05, 0.1, 0.2, 0.4, 0.8, 1.6)]
    part = [(r, 10 * math.log(r) + 32) for r in (0.3, 0.5, 0.7)]  # +2 dB, inside the reference's range
    assert bd_rate(line, part) == pytest.approx(100 * (math.exp(-0.2) - 1))
    assert bd_quality(line, part) == pytest.approx(2.0)
    half = [(r / 2, q) for r, q in REF[2:5]]  # interpolated from fewer points: nearly, not exactly, half
    assert bd_rate(REF, half) == pytest.approx(-50.0, abs=1.0)
    far = [(r, q + 50) for r, q in REF]  # qualities beyond the reference's: no shared quality interval
    assert bd_rate(REF, far) is None
    cheap = [(r / 1000, q) for r, q in REF]  # rates below the reference's: no shared rate interval
    assert bd_quality(REF, cheap) is None
    assert bd_rate(REF, REF[:1]) is None  # one point is no curve
    assert bd_rate(REF, [(0.1, 27.0), (0.1, 27.0)]) is None  # two equal points neither
    assert bd_quality([], REF) is None


def test_order_and_dominated_points_do_not_matter():
    shuffled = [REF[i] for i in np.random.default_rng(0).permutation(len(REF))]
    half = [(r / 2, q) for r, q in REF]
    assert bd_rate(shuffled, half) == pytest.approx(-50.0)
    # more bits for less quality, and a repeat: not on the curve, dropped
    noisy = [*half, (0.3, 25.0), (half[2][0], half[2][1] - 0.5), half[3]]
    assert bd_rate(REF, noisy) == pytest.approx(-50.0)
    assert bd_quality(REF, noisy) == pytest.approx(bd_quality(REF, half))


def test_sign_and_order_of_magnitude_on_real_shapes():
    """A test codec 20 % cheaper at low rates and 5 % cheaper at high ones lands in between."""
    test = [(r * (0.8 + 0.15 * i / (len(REF) - 1)), q) for i, (r, q) in enumerate(REF)]
    d = bd_rate(REF, test)
    assert -20.0 < d < -5.0


@pytest.mark.parametrize(
    "bad, match",
    [
        ([(0.0, 30.0), (0.1, 31.0)], "bpp"),
        ([(-0.1, 30.0), (0.1, 31.0)], "bpp"),
        ([(float("nan"), 30.0), (0.1, 31.0)], "bpp"),
        ([(float("inf"), 30.0), (0.1, 31.0)], "bpp"),
        ([(0.1, float("nan")), (0.2, 31.0)], "quality"),
        ([(0.1, 30.0, 1.0)], "pairs"),
        ([("a", "b")], "pairs"),
    ],
)
def test_bad_points(bad, match):
    for f in (bd_rate, bd_quality):
        with pytest.raises(InvalidInputError, match=match):
            f(REF, bad)
        with pytest.raises(InvalidInputError, match=match):
            f(bad, REF)
