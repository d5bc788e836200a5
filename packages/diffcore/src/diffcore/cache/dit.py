"""diffusers' own DiT caches under diffcore's one verb: ``apply(model, FirstBlockCacheConfig(…))``.

Pass-through of diffusers' config objects (nothing re-implemented): First
Block Cache (ParaAttention), FasterCache (Lv et al. 2025), Pyramid Attention
Broadcast (Zhao et al. 2025), TaylorSeer (Liu et al. 2025) and MagCache (Ma et
al. 2025). Their values are checked first, with messages a user can act on;
then diffusers' own ``apply_*`` attaches its hooks, and diffcore takes them over
under the cache handle's name, so ``handle.remove()`` restores the exact model.
One more hook on the model itself:

* resets the hooks' state at the first call of every sampling run (diffusers
  resets it in its pipelines; a hand-written loop would carry it over);
* records the current timestep for PAB's and FasterCache's
  ``current_timestep_callback`` (diffusers reads it off the pipeline);
* gives a model without diffusers' ``CacheMixin`` (stock ``DiTTransformer2DModel``)
  the cache context the hooks need.

diffusers' hooks keep one state per hook, not per run, so concurrent runs of
one cached model are serialised (``handle.serialize``). TeaCache, which
diffusers lacks, is ours and keeps true per-run state: :mod:`diffcore.cache.teacache`.
"""

from __future__ import annotations

import copy
import math
import threading
from typing import Any

import torch
from diffusers.hooks import (
    FasterCacheConfig,
    FirstBlockCacheConfig,
    MagCacheConfig,
    ModelHook,
    PyramidAttentionBroadcastConfig,
    TaylorSeerCacheConfig,
    apply_faster_cache,
    apply_first_block_cache,
    apply_mag_cache,
    apply_pyramid_attention_broadcast,
    apply_taylorseer_cache,
)
from diffusers.hooks.hooks import CacheContext, HookRegistry, StateManager

from diffcore.cache.core import CacheHandle, register_cache
from diffcore.cache.teacache import TeaCacheConfig
from diffcore.errors import InvalidInputError
from diffcore.hooks import remove_hook

DIFFUSERS_CONFIGS = (
    FirstBlockCacheConfig,
    FasterCacheConfig,
    PyramidAttentionBroadcastConfig,
    TaylorSeerCacheConfig,
    MagCacheConfig,
)
_APPLY = {
    FirstBlockCacheConfig: apply_first_block_cache,
    FasterCacheConfig: apply_faster_cache,
    PyramidAttentionBroadcastConfig: apply_pyramid_attention_broadcast,
    TaylorSeerCacheConfig: apply_taylorseer_cache,
    MagCacheConfig: apply_mag_cache,
}
#: key of the current timestep in ``CallState.extra``
_TIMESTEP = "timestep"


def _need(ok: bool, message: str) -> None:
    if not ok:
        raise InvalidInputError(message)


def _is_int(v: Any, lo: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= lo


def _is_num(v: Any, lo: float) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= lo


def _is_range(r: Any) -> bool:
    return isinstance(r, (tuple, list)) and len(r) == 2 and all(_is_num(v, -math.inf) for v in r) and r[0] < r[1]


def check_config(config: Any) -> None:
    """Raise :class:`InvalidInputError` for values diffusers would accept and then misbehave on."""
    name = type(config).__name__
    if isinstance(config, (FirstBlockCacheConfig, MagCacheConfig)):
        _need(_is_num(config.threshold, 0.0), f"{name}.threshold must be a finite float >= 0, got {config.threshold!r}")
    if isinstance(config, MagCacheConfig):
        _need(
            _is_int(config.max_skip_steps, 1), f"MagCacheConfig.max_skip_steps must be an int >= 1, got {config.max_skip_steps!r}"
        )
        _need(
            _is_int(config.num_inference_steps, 1), "MagCacheConfig.num_inference_steps must be the run's step count (int >= 1)"
        )
        _need(
            _is_num(config.retention_ratio, 0.0) and config.retention_ratio <= 1,
            "MagCacheConfig.retention_ratio must be in [0, 1]",
        )
    if isinstance(config, TaylorSeerCacheConfig):
        _need(
            _is_int(config.cache_interval, 1),
            f"TaylorSeerCacheConfig.cache_interval must be an int >= 1, got {config.cache_interval!r}",
        )
        _need(_is_int(config.max_order, 0), f"TaylorSeerCacheConfig.max_order must be an int >= 0, got {config.max_order!r}")
        _need(_is_int(config.disable_cache_before_step, 0), "TaylorSeerCacheConfig.disable_cache_before_step must be an int >= 0")
    if isinstance(config, (PyramidAttentionBroadcastConfig, FasterCacheConfig)):
        for kind in ("spatial", "temporal") + (("cross",) if isinstance(config, PyramidAttentionBroadcastConfig) else ()):
            skip = getattr(config, f"{kind}_attention_block_skip_range")
            _need(
                skip is None or _is_int(skip, 1),
                f"{name}.{kind}_attention_block_skip_range must be an int >= 1 or None, got {skip!r}",
            )
            window = getattr(config, f"{kind}_attention_timestep_skip_range")
            _need(
                window is None or _is_range(window),
                f"{name}.{kind}_attention_timestep_skip_range must be (low, high) with low < high, got {window!r}",
            )
    if isinstance(config, FasterCacheConfig):
        _need(
            config.is_guidance_distilled,
            "FasterCacheConfig(is_guidance_distilled=True) is required: FasterCache's guidance-branch skip assumes "
            "batches ordered (uncond, cond), diffcore's sampler batches (cond, uncond); its attention reuse still applies",
        )


class _RootHook(ModelHook):
    """On the model: per-run reset, current timestep, a cache context where the caller set none.

    ``inner`` is a diffusers hook diffusers put on the model itself
    (FasterCache's denoiser hook); it runs inside this one.
    """

    def __init__(self, handle: CacheHandle, owned: list[tuple[torch.nn.Module, ModelHook]], inner: ModelHook | None) -> None:
        super().__init__()
        self.handle, self.owned, self.inner = handle, owned, inner
        hooks = [h for _, h in owned] + ([inner] if inner is not None else [])
        self.managers = [a for h in hooks for a in vars(h).values() if isinstance(a, StateManager)]

    def initialize_hook(self, module: torch.nn.Module) -> torch.nn.Module:
        return self.inner.initialize_hook(module) if self.inner is not None else module

    def new_forward(self, module: torch.nn.Module, *args: Any, **kwargs: Any) -> Any:
        st = self.handle.state()
        if st.calls == 0:  # a new sampling run: start cold, as diffusers' pipelines do
            for mod, hook in self.owned:
                if hook._is_stateful:
                    hook.reset_state(mod)
            if self.inner is not None:
                self.inner.reset_state(module)
        t = args[1] if len(args) > 1 else kwargs.get("timestep")
        st.extra[_TIMESTEP] = float(torch.as_tensor(t).flatten()[0]) if t is not None else None
        unset = [m for m in self.managers if m._context is None]
        for m in unset:
            m.set_context(CacheContext("cond", step_index=st.calls, timestep=st.extra[_TIMESTEP]))
        try:
            if self.inner is None:
                return self.fn_ref.original_forward(*args, **kwargs)
            self.inner.fn_ref = self.fn_ref  # the inner hook calls fn_ref.original_forward: the model's own forward
            return self.inner.new_forward(module, *args, **kwargs)
        finally:
            for m in unset:
                m.set_context(None)
            st.calls += 1


def _current_timestep(handle: CacheHandle) -> float:
    t = handle.state().extra.get(_TIMESTEP)
    if t is None:
        raise InvalidInputError("this cache needs the timestep: call the model as model(x, timestep, …)")
    return t


def _apply_diffusers(model: torch.nn.Module, config: Any, handle: CacheHandle) -> None:
    check_config(config)
    if getattr(model, "is_cache_enabled", False):
        raise InvalidInputError(f"{type(model).__name__} has a cache from enable_cache(); call model.disable_cache() first")
    config = copy.copy(config)  # diffusers fills in callbacks on the config it is given: keep the caller's untouched
    if getattr(config, "current_timestep_callback", False) is None:  # PAB, FasterCache
        config.current_timestep_callback = lambda: _current_timestep(handle)
    if isinstance(config, MagCacheConfig):
        steps = config.num_inference_steps

        def check_run(num_calls: int | None, sampler: str | None) -> None:
            if num_calls is not None and num_calls != steps:
                raise InvalidInputError(
                    f"MagCacheConfig(num_inference_steps={steps}) was set for {steps}-call runs, this run makes "
                    f"{num_calls} model calls; build the config with num_inference_steps={num_calls}"
                )

        handle.check_run = check_run
    modules = dict(model.named_modules())
    before = {n: set(m._diffusers_hook.hooks) if hasattr(m, "_diffusers_hook") else set() for n, m in modules.items()}
    try:
        _APPLY[type(config)](model, config)
    except (ValueError, KeyError, IndexError) as e:
        _drop_new_hooks(modules, before)
        raise InvalidInputError(f"{type(config).__name__} does not apply to {type(model).__name__}: {e}") from e
    owned: list[tuple[torch.nn.Module, ModelHook]] = []
    inner = None
    for n, m in modules.items():
        registry = getattr(m, "_diffusers_hook", None)
        new = [k for k in (registry.hooks if registry is not None else ()) if k not in before[n]]
        if n == "" and new:
            if len(new) > 1:
                _drop_new_hooks(modules, before)
                raise InvalidInputError(f"{type(config).__name__} put {len(new)} hooks on the model itself; diffcore wraps one")
            inner = registry.hooks[new[0]]
            remove_hook(m, new[0])
            continue
        if len(new) > 1:
            _drop_new_hooks(modules, before)
            raise InvalidInputError(f"{type(config).__name__} put {len(new)} hooks on {n!r}; diffcore takes over one per module")
        for k in new:
            hook = registry.hooks[k]
            remove_hook(m, k)  # re-registered under the handle's name: handle.remove() drops it
            handle.add_hook(m, hook)
            owned.append((m, hook))
    if not owned and inner is None:
        raise InvalidInputError(
            f"{type(config).__name__} found nothing to hook in {type(model).__name__}: it needs transformer blocks "
            "in `transformer_blocks` / `blocks` and diffusers Attention modules"
        )
    handle.add_hook(model, _RootHook(handle, owned, inner))
    handle.serialize = threading.Lock()  # one hook state per hook, not per run
    # hooks were added under the model: drop the cached child list cache_context walks
    HookRegistry.check_if_exists_or_initialize(model).invalidate_child_registries_cache()


def _drop_new_hooks(modules: dict[str, torch.nn.Module], before: dict[str, set[str]]) -> None:
    for n, m in modules.items():
        registry = getattr(m, "_diffusers_hook", None)
        for k in [k for k in (registry.hooks if registry is not None else ()) if k not in before[n]]:
            remove_hook(m, k)


for _cls in DIFFUSERS_CONFIGS:
    register_cache(_cls)(_apply_diffusers)


def dit_cache_suite(
    model: torch.nn.Module,
    *,
    steps: int = 25,
    teacache_coefficients: tuple[float, ...] | None = None,
    thresholds: tuple[float, float] = (0.05, 0.1),
) -> dict[str, Any]:
    """Name → cache config for the DiT benchmark (against full compute), for ``steps``-step runs.

    First Block Cache (threshold 0.05), TaylorSeer (first order on every
    block's attention and MLP, refreshed every 3rd call after 3 warm-up calls,
    float32 factors) and TeaCache at two ``thresholds``. TeaCache's polynomial
    is ``teacache_coefficients``, or, when ``None``, fitted here with
    :func:`~diffcore.cache.teacache.fit_teacache` on two DDIM calibration runs
    of ``model`` (batch 4, noise seed 1234: not the benchmark's inputs).
    """
    from diffcore.cache.teacache import fit_teacache
    from diffcore.sampling import sample

    _need(_is_int(steps, 2), f"steps must be an int >= 2, got {steps!r}")
    if teacache_coefficients is None:
        cfg = model.config
        g = torch.Generator().manual_seed(1234)
        noise = torch.randn(2, 4, cfg.in_channels, cfg.sample_size, cfg.sample_size, generator=g)  # two runs of batch 4

        def calibrate(m: torch.nn.Module) -> None:
            for x in noise:
                sample(m, "ddim", x.to(m.device, m.dtype), steps=steps, progress=False)

        teacache_coefficients = fit_teacache(model, calibrate, degree=4)
    return {
        "FirstBlockCache(0.05)": FirstBlockCacheConfig(threshold=0.05),
        "TaylorSeer(3, o1)": TaylorSeerCacheConfig(
            cache_interval=3,
            disable_cache_before_step=3,
            max_order=1,
            taylor_factors_dtype=torch.float32,
            cache_identifiers=[r"transformer_blocks\.\d+\.(attn1|ff)"],
        ),
        **{f"TeaCache({t:g})": TeaCacheConfig(threshold=t, coefficients=teacache_coefficients) for t in thresholds},
    }
