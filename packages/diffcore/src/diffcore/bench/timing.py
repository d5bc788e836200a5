"""Paired, interleaved timing: speed as ratios measured side by side.

Absolute times on a shared 2-core machine drift by tens of percent between
minutes; ratios of runs made back to back drift far less. Each repeat runs
every variant once, in an order rotated per repeat (so no variant always runs
first, or always after the baseline), and records each variant's time divided
by the baseline's time *in the same repeat*. The reported ratio is the median of
those per-pair ratios, with its interquartile range as the spread.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from diffcore.errors import InvalidInputError


@dataclass(frozen=True)
class PairedTiming:
    """One variant's timing against the baseline.

    ``ratio`` is time(variant) / time(baseline) (median of per-repeat ratios);
    ``speedup`` is its inverse. ``ratio_iqr`` is the (25th, 75th) percentile
    of the per-repeat ratios; ``seconds`` the median absolute time.
    """

    name: str
    seconds: float
    ratio: float
    ratio_iqr: tuple[float, float]
    repeats: int

    @property
    def speedup(self) -> float:
        return 1.0 / self.ratio


def _quantile(xs: list[float], q: float) -> float:
    s = sorted(xs)
    pos = q * (len(s) - 1)
    lo, hi = int(pos), min(int(pos) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def time_paired(
    variants: Mapping[str, Callable[[], object]],
    *,
    baseline: str,
    repeats: int = 5,
    warmup: int = 1,
    sync: Callable[[], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, PairedTiming]:
    """Time every variant against ``baseline``, interleaved; see the module doc.

    Args:
        variants: name -> zero-argument callable doing the work once.
        baseline: the name all ratios are taken against.
        repeats: measured rounds (each runs every variant once).
        warmup: unmeasured rounds first (allocator, caches, lazy init).
        sync: called before reading the clock (``torch.cuda.synchronize`` on GPU).
    """
    if baseline not in variants:
        raise InvalidInputError(f"baseline {baseline!r} is not one of {list(variants)}")
    if repeats < 1 or warmup < 0:
        raise InvalidInputError(f"need repeats >= 1 and warmup >= 0, got {repeats}, {warmup}")
    names = list(variants)
    for _ in range(warmup):
        for n in names:
            variants[n]()
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        order = names[r % len(names) :] + names[: r % len(names)]
        for n in order:
            if sync:
                sync()
            t0 = clock()
            variants[n]()
            if sync:
                sync()
            times[n].append(clock() - t0)
    base = times[baseline]
    out = {}
    for n in names:
        ratios = [t / b for t, b in zip(times[n], base)]
        out[n] = PairedTiming(
            name=n,
            seconds=statistics.median(times[n]),
            ratio=statistics.median(ratios),
            ratio_iqr=(_quantile(ratios, 0.25), _quantile(ratios, 0.75)),
            repeats=repeats,
        )
    return out
