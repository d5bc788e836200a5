"""DeepCache (Ma, Fang & Wang, CVPR 2024): recompute the UNet's deep features every N steps.

Adjacent denoising steps change the UNet's high-level (deep) features little.
DeepCache runs the full UNet at "full" steps and caches what the deep branch
produced; at the steps in between only the shallow branch runs (the first
down layers and the last up layers), reading the cached deep features through
the skip connection (paper eq. 4 and 5). Branch ``(block, layer)`` names the
skip branch kept: every layer deeper than it is served from the cache.

Our implementation attaches diffusers hooks to the same layers the reference
``DeepCacheSDHelper`` wraps and follows its skip rule exactly, so at equal
interval and branch the two give the same outputs (the benchmark checks this).
The schedule counts model calls, not timestep values, so samplers that repeat
a timestep (Heun, DPM-2) are cached by call, not confused by the repeat.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch

from diffcore.cache.core import CacheHandle, register_cache
from diffcore.cache.reuse import ReusePolicy, apply_reuse, top_level_blocks
from diffcore.errors import InvalidInputError

#: DeepCache numbers branches ``block * 3 + layer`` (SD's up blocks have three layers)
DEEPCACHE_LAYERS_PER_BLOCK = 3


@dataclass(frozen=True)
class DeepCacheConfig:
    """DeepCache settings.

    Args:
        interval: N, a full UNet call every N steps (1 = no caching: exact).
        branch: DeepCache's ``cache_branch_id``: block ``branch // 3``, layer
            ``branch % 3``; 0 keeps the shallowest branch (the most reuse).
        schedule: ``"uniform"`` (full steps 0, N, 2N …) or ``"quadratic"``,
            DeepCache's non-uniform 1:N strategy: the same number of full
            steps, packed around ``center`` (a fraction of the run) with
            spacing growing as ``|u|**power`` away from it.
        center: where quadratic full steps are densest (fraction of the run).
        power: how fast quadratic spacing grows away from the centre (> 1).
    """

    interval: int = 3
    branch: int = 0
    schedule: str = "uniform"
    center: float = 0.3
    power: float = 1.4

    def __post_init__(self) -> None:
        if isinstance(self.interval, bool) or not isinstance(self.interval, int) or self.interval < 1:
            raise InvalidInputError(f"interval must be an int >= 1 (1 disables caching), got {self.interval!r}")
        if isinstance(self.branch, bool) or not isinstance(self.branch, int) or self.branch < 0:
            raise InvalidInputError(f"branch must be an int >= 0 (DeepCache's cache_branch_id), got {self.branch!r}")
        if self.schedule not in ("uniform", "quadratic"):
            raise InvalidInputError(f"schedule must be 'uniform' or 'quadratic', got {self.schedule!r}")
        if not 0.0 <= self.center <= 1.0 or self.power <= 1.0:
            raise InvalidInputError(f"need 0 <= center <= 1 and power > 1, got center={self.center}, power={self.power}")

    @property
    def block(self) -> int:
        return self.branch // DEEPCACHE_LAYERS_PER_BLOCK

    @property
    def layer(self) -> int:
        return self.branch % DEEPCACHE_LAYERS_PER_BLOCK

    def full_steps(self, num_calls: int) -> tuple[int, ...]:
        """The calls that run the whole UNet in a run of ``num_calls`` calls."""
        if self.schedule == "uniform":
            return tuple(range(0, num_calls, self.interval))
        return quadratic_full_steps(num_calls, math.ceil(num_calls / self.interval), self.center, self.power)

    def bind(self, model: torch.nn.Module) -> ReusePolicy:
        return _DeepCachePolicy(self, deep_branch(model, self.block, self.layer))


class _DeepCachePolicy(ReusePolicy):
    def __init__(self, config: DeepCacheConfig, deep: tuple[str, ...]) -> None:
        self.config, self.modules, self._deep = config, deep, frozenset(deep)

    def check_run(self, num_calls: int | None, sampler: str | None) -> None:
        if self.config.schedule == "quadratic" and num_calls is None:
            raise InvalidInputError("the quadratic schedule needs the run length: open the session with num_calls=…")

    def reuse_at(self, call: int, num_calls: int | None) -> frozenset[str]:
        cfg = self.config
        if cfg.interval == 1:
            return frozenset()
        full = call % cfg.interval == 0 if cfg.schedule == "uniform" else call in cfg.full_steps(int(num_calls))
        return frozenset() if full else self._deep


@functools.lru_cache(maxsize=64)
def quadratic_full_steps(num_calls: int, n_full: int, center: float, power: float) -> tuple[int, ...]:
    """``n_full`` distinct call indices in ``[0, num_calls)``, 0 included, densest near ``center``.

    Positions ``c + sign(u)·|u|**power`` for ``u`` evenly spaced over the
    range that maps onto ``[0, num_calls − 1]`` (DeepCache's non-uniform
    schedule). Where rounding merges positions the power is lowered in steps
    of 0.02, as the reference does, down to 1 (even spacing, always distinct).
    """
    n_full = max(1, min(n_full, num_calls))
    c = center * (num_calls - 1)
    p = power
    while True:
        lo, hi = -(c ** (1 / p)), (num_calls - 1 - c) ** (1 / p)
        u = torch.linspace(lo, hi, n_full, dtype=torch.float64)
        steps = {0, *(round(c + float(torch.sign(v)) * abs(float(v)) ** p) for v in u)}
        if len(steps) >= n_full or p == 1.0:
            return tuple(sorted(steps))
        p = max(1.0, p - 0.02)


def deep_branch(model: torch.nn.Module, block: int, layer: int) -> tuple[str, ...]:
    """The layers DeepCache serves from the cache when it keeps branch ``(block, layer)``.

    DeepCache's rule: a down layer ``(i, j)`` (resnets and attentions by index,
    downsamplers after them, and the block itself as layer 0) is cached when
    ``i > block`` or ``i == block and j >= layer``; the mid block always; an up
    layer, numbered from the output end (up block ``i`` counted from the last,
    layer ``j`` counted from its last resnet), when ``i > block`` or
    ``i == block and j > layer``.
    """
    top_level_blocks(model)
    n_down, n_up = len(model.down_blocks), len(model.up_blocks)
    if block >= min(n_down, n_up):
        raise InvalidInputError(
            f"branch block {block} does not exist: {type(model).__name__} has {n_down} down blocks "
            f"(branch ids 0..{DEEPCACHE_LAYERS_PER_BLOCK * min(n_down, n_up) - 1})"
        )
    names: list[str] = []
    for i, blk in enumerate(model.down_blocks):
        pre = f"down_blocks.{i}"

        def cached(j: int, i: int = i) -> bool:
            return i > block or (i == block and j >= layer)

        names += [f"{pre}.attentions.{j}" for j in range(len(getattr(blk, "attentions", None) or [])) if cached(j)]
        n_res = len(blk.resnets)
        names += [f"{pre}.resnets.{j}" for j in range(n_res) if cached(j)]
        names += [f"{pre}.downsamplers.{k}" for k in range(len(blk.downsamplers or [])) if cached(n_res)]
        if cached(0):
            names.append(pre)
    if model.mid_block is not None:
        names.append("mid_block")
    for k, blk in enumerate(model.up_blocks):
        pre, i = f"up_blocks.{k}", n_up - k - 1
        n_res = len(blk.resnets)

        def cached_up(j: int, i: int = i) -> bool:
            return i > block or (i == block and j > layer)

        names += [f"{pre}.attentions.{j}" for j in range(len(getattr(blk, "attentions", None) or [])) if cached_up(n_res - j - 1)]
        names += [f"{pre}.resnets.{j}" for j in range(n_res) if cached_up(n_res - j - 1)]
        names += [f"{pre}.upsamplers.{k2}" for k2 in range(len(blk.upsamplers or [])) if cached_up(0)]
        if cached_up(0):
            names.append(pre)
    return tuple(names)


@register_cache(DeepCacheConfig)
def _apply(model: torch.nn.Module, config: DeepCacheConfig, handle: CacheHandle) -> None:
    apply_reuse(model, config.bind(model), handle)
