"""Bjøntegaard deltas: one number for how far apart two rate–distortion curves are.

G. Bjøntegaard, "Calculation of average PSNR differences between RD-curves",
ITU-T SG16 Q.6 (VCEG), document VCEG-M33, Austin, April 2001.

A curve is a sequence of ``(bpp, quality)`` points; quality is any metric where
higher is better (PSNR in dB, MS-SSIM, …), the same one for both curves.

* :func:`bd_rate` — the average bitrate difference of ``test`` against
  ``reference`` at equal quality, in percent (negative: ``test`` needs fewer bits).
  Each curve's log-rate is interpolated as a function of quality, both are
  integrated over the quality interval the two curves share, and the mean
  log-rate difference ``d`` is reported as ``100 · (exp(d) − 1)``.
* :func:`bd_quality` — the average quality difference at equal rate (BD-PSNR when
  quality is PSNR): quality interpolated over log-rate, averaged over the shared
  log-rate interval, ``test`` minus ``reference``.

Bjøntegaard fitted a cubic polynomial through (typically four) points; like
modern Bjøntegaard implementations, this uses piecewise-cubic Hermite
interpolation (PCHIP, :class:`scipy.interpolate.PchipInterpolator`), which passes
through every point and does not overshoot between them, so curves with many or
unevenly spaced points give sensible numbers too. Nothing is extrapolated: where
the curves do not overlap the answer is ``None``.

Before interpolating, each curve is reduced to the points that are better than
every cheaper one (sorted by rate, a point whose quality does not exceed that of
all cheaper points is dropped): a point that costs more for no gain is not on
the codec's rate–distortion curve, and what remains has rate and quality both
strictly increasing, so each is a function of the other. A curve left with fewer
than two points gives ``None``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.interpolate import PchipInterpolator

from diffcore.errors import InvalidInputError

Curve = Sequence[tuple[float, float]]


def _curve(points: Curve, name: str) -> tuple[np.ndarray, np.ndarray] | None:
    """``points`` -> (log-rate, quality), both strictly increasing, or None when fewer than 2 points remain."""
    try:
        a = np.asarray(points, dtype=float)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name} must be a sequence of (bpp, quality) pairs of numbers") from None
    if a.size == 0:
        return None
    if a.ndim != 2 or a.shape[1] != 2:
        raise InvalidInputError(f"{name} must be a sequence of (bpp, quality) pairs, got an array of shape {a.shape}")
    rate, quality = a[:, 0], a[:, 1]
    if not (np.isfinite(rate).all() and (rate > 0).all()):
        raise InvalidInputError(f"{name}: every bpp must be finite and positive, got {rate.tolist()}")
    if not np.isfinite(quality).all():
        raise InvalidInputError(f"{name}: every quality must be finite, got {quality.tolist()}")
    order = np.lexsort((-quality, rate))  # by rate; at equal rate the best quality first
    keep: list[int] = []
    for i in order:
        if not keep or quality[i] > quality[keep[-1]]:
            keep.append(int(i))
    if len(keep) < 2:
        return None
    return np.log(rate[keep]), quality[keep]


def _mean_gap(x_ref: np.ndarray, y_ref: np.ndarray, x_test: np.ndarray, y_test: np.ndarray) -> float | None:
    """Mean of ``test(x) − ref(x)`` over the shared x interval (PCHIP of y over x), or None without overlap."""
    lo, hi = max(x_ref[0], x_test[0]), min(x_ref[-1], x_test[-1])
    if not hi > lo:
        return None
    ref = PchipInterpolator(x_ref, y_ref).integrate(lo, hi)
    test = PchipInterpolator(x_test, y_test).integrate(lo, hi)
    return float((test - ref) / (hi - lo))


def bd_rate(reference: Curve, test: Curve) -> float | None:
    """Bjøntegaard delta rate of ``test`` against ``reference``, in percent (negative: ``test`` saves bits).

    None when the curves share no quality interval or one has fewer than two
    useful points; see the module doc.
    """
    ref, tst = _curve(reference, "reference"), _curve(test, "test")
    if ref is None or tst is None:
        return None
    gap = _mean_gap(ref[1], ref[0], tst[1], tst[0])
    return None if gap is None else 100.0 * float(np.expm1(gap))


def bd_quality(reference: Curve, test: Curve) -> float | None:
    """Bjøntegaard delta quality (BD-PSNR for PSNR) of ``test`` against ``reference``: positive means ``test`` is better.

    The mean quality difference over the shared log-rate interval, in the
    metric's own unit; None as for :func:`bd_rate`.
    """
    ref, tst = _curve(reference, "reference"), _curve(test, "test")
    if ref is None or tst is None:
        return None
    return _mean_gap(ref[0], ref[1], tst[0], tst[1])
