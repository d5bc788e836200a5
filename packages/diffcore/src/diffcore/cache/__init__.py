"""Feature caches for diffusion models, behind one verb: ``apply(model, config)``.

UNet caches (diffusers has none): :class:`DeepCacheConfig` (DeepCache),
:class:`EncoderPropagationConfig` (Faster Diffusion) and searched
:class:`CacheSchedule` artifacts (see :mod:`diffcore.cache.search`). DiT caches:
diffusers' own hooks under the same verb, and TeaCache (:mod:`diffcore.cache.dit`).
"""

from diffusers.hooks import (
    FasterCacheConfig,
    FirstBlockCacheConfig,
    MagCacheConfig,
    PyramidAttentionBroadcastConfig,
    TaylorSeerCacheConfig,
)

from diffcore.cache.core import CacheHandle, CallState, active, apply, register_cache, remove
from diffcore.cache.deepcache import DeepCacheConfig
from diffcore.cache.dit import dit_cache_suite
from diffcore.cache.faster import EncoderPropagationConfig
from diffcore.cache.reuse import fraction_computed, top_level_blocks
from diffcore.cache.teacache import TeaCacheConfig, fit_teacache

_SEARCH = ("CacheSchedule", "Calibration", "Profile", "dp_schedule", "evolve_schedules", "fit_correction", "profile")


def __getattr__(name: str) -> object:
    # search needs the sampling loop, which needs cache.core: import it on first use
    if name in _SEARCH:
        from diffcore.cache import search

        return getattr(search, name)
    raise AttributeError(f"module 'diffcore.cache' has no attribute {name!r}")


__all__ = [
    *_SEARCH,
    "CacheHandle",
    "CallState",
    "DeepCacheConfig",
    "EncoderPropagationConfig",
    "FasterCacheConfig",
    "FirstBlockCacheConfig",
    "MagCacheConfig",
    "PyramidAttentionBroadcastConfig",
    "TaylorSeerCacheConfig",
    "TeaCacheConfig",
    "dit_cache_suite",
    "fit_teacache",
    "active",
    "apply",
    "fraction_computed",
    "register_cache",
    "remove",
    "top_level_blocks",
]
