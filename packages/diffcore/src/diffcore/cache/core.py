"""One verb for every feature cache: ``apply(model, config)`` → a :class:`CacheHandle`.

A cache config (a frozen dataclass) says *what* to reuse; an applier registered
for its type attaches diffusers hooks (``diffusers.hooks.ModelHook`` on the
model's own modules, never a patched ``forward``) that do it. Every piece of
state a hook keeps across model calls (stored features, the call counter)
lives in a :class:`CallState` owned by one *session*: one sampling run. The
session is held in a ``contextvars.ContextVar``, so two threads (two Gradio
users) sampling through the same cached model each see their own state.
:func:`diffcore.sampling.sample` opens a fresh session per call; a hand-written
loop opens one with ``with handle.session(num_calls=…):``.

Removing the cache (``handle.remove()``, or leaving ``with apply(...)``)
removes every hook, so the model computes exactly what it computed before.
"""

from __future__ import annotations

import contextvars
import itertools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from diffusers.hooks import HookRegistry, ModelHook

from diffcore.errors import InvalidInputError
from diffcore.hooks import remove_hook

#: attribute under which a model keeps its active cache handle
_ATTR = "_diffcore_cache"
_APPLIERS: dict[type, Callable[[torch.nn.Module, Any, CacheHandle], None]] = {}
_ids = itertools.count()


def register_cache(config_cls: type) -> Callable:
    """Decorator: register ``applier(model, config, handle)`` for configs of ``config_cls``.

    The applier attaches its hooks with :meth:`CacheHandle.add_hook` and may
    set ``handle.check_run`` to validate a run's sampler and step count.
    """

    def deco(fn: Callable[[torch.nn.Module, Any, CacheHandle], None]) -> Callable:
        _APPLIERS[config_cls] = fn
        return fn

    return deco


@dataclass
class CallState:
    """What a cache remembers during one sampling run (one session).

    ``calls`` counts model calls so far; ``num_calls`` is the run's length
    when known. ``store`` maps a module name to its last computed output;
    ``reuse`` is the set of modules that return their stored output at the
    current call. ``log`` records, per call, the reused module names (for the
    benchmark's fraction-of-blocks-computed). ``extra`` is free space for a
    cache's hooks.
    """

    num_calls: int | None = None
    calls: int = 0
    store: dict[str, Any] = field(default_factory=dict)
    reuse: frozenset[str] = frozenset()
    log: list[frozenset[str]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


class CacheHandle:
    """An applied cache: its hooks, its per-session state, and how to remove it.

    Use it as a context manager to remove the cache on exit::

        with diffcore.cache.apply(unet, DeepCacheConfig(interval=3)):
            x = sample(unet, "ddim", noise, steps=50)
    """

    def __init__(self, model: torch.nn.Module, config: Any) -> None:
        self.model = model
        self.config = config
        self.hook_name = f"diffcore_cache_{next(_ids)}"
        self._state: contextvars.ContextVar[CallState | None] = contextvars.ContextVar(self.hook_name, default=None)
        self._hooked: list[torch.nn.Module] = []
        self.check_run: Callable[[int | None, str | None], None] | None = None
        #: held by sessions of caches whose state cannot be per-call (diffusers' own hooks)
        self.serialize: threading.Lock | None = None
        self.last_state: CallState | None = None

    def add_hook(self, module: torch.nn.Module, hook: ModelHook) -> None:
        """Register ``hook`` on ``module`` through diffusers' :class:`HookRegistry`."""
        HookRegistry.check_if_exists_or_initialize(module).register_hook(hook, self.hook_name)
        self._hooked.append(module)

    def state(self) -> CallState:
        """The current session's state; raises if the model is called outside a session."""
        st = self._state.get()
        if st is None:
            raise InvalidInputError(
                f"{type(self.model).__name__} has a {type(self.config).__name__} cache, which keeps state across the "
                "calls of one sampling run: sample with diffcore.sampling.sample(...), or wrap your own loop in "
                "`with handle.session(num_calls=len(timesteps)):`"
            )
        return st

    @contextmanager
    def session(self, *, num_calls: int | None = None, sampler: str | None = None) -> Iterator[CallState]:
        """One sampling run's fresh state. ``num_calls``/``sampler`` let the cache check the run fits it."""
        if self.check_run is not None:
            self.check_run(num_calls, sampler)
        lock = self.serialize
        if lock is not None:
            lock.acquire()
        state = CallState(num_calls=num_calls)
        token = self._state.set(state)
        try:
            yield state
        finally:
            self._state.reset(token)
            self.last_state = state
            if lock is not None:
                lock.release()

    @property
    def active(self) -> bool:
        return getattr(self.model, _ATTR, None) is self

    def remove(self) -> None:
        """Detach every hook; the model is back to its exact original computation."""
        for module in self._hooked:
            remove_hook(module, self.hook_name)
        self._hooked.clear()
        if getattr(self.model, _ATTR, None) is self:
            delattr(self.model, _ATTR)

    def __enter__(self) -> CacheHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def apply(model: torch.nn.Module, config: Any) -> CacheHandle:
    """Attach the cache ``config`` describes to ``model``; see the module doc.

    Args:
        model: a diffusers model (``UNet2DModel``, ``UNet2DConditionModel``, a DiT …).
        config: a cache config, e.g. :class:`~diffcore.cache.DeepCacheConfig`,
            :class:`~diffcore.cache.EncoderPropagationConfig`, a searched
            :class:`~diffcore.cache.CacheSchedule`, or a DiT cache config.

    Returns:
        The :class:`CacheHandle` (``.remove()`` it, or use it in ``with``).
    """
    if not isinstance(model, torch.nn.Module):
        raise InvalidInputError(f"apply() takes a torch/diffusers model, got {type(model).__name__}")
    applier = next((fn for cls, fn in _APPLIERS.items() if isinstance(config, cls)), None)
    if applier is None:
        known = ", ".join(sorted(c.__name__ for c in _APPLIERS))
        raise InvalidInputError(f"no cache applies configs of type {type(config).__name__}; use one of: {known}")
    if active(model) is not None:
        raise InvalidInputError(
            f"{type(model).__name__} already has a {type(active(model).config).__name__} cache; "
            "remove it (diffcore.cache.remove(model)) before applying another"
        )
    handle = CacheHandle(model, config)
    try:
        applier(model, config, handle)
    except BaseException:
        handle.remove()
        raise
    setattr(model, _ATTR, handle)
    return handle


def active(model: Any) -> CacheHandle | None:
    """The cache currently applied to ``model``, if any."""
    return getattr(model, _ATTR, None)


def remove(model: torch.nn.Module) -> None:
    """Remove the cache applied to ``model`` (no-op if none)."""
    handle = active(model)
    if handle is not None:
        handle.remove()
