"""Module-output reuse: the mechanism under every UNet cache (DeepCache, Faster Diffusion, searched schedules).

At each model call a :class:`ReusePolicy` names the modules that return the
output they computed at an earlier call instead of running; every other module
runs as usual and its output is stored. DeepCache (Ma et al. 2024) reuses the
deep branch of the UNet; Faster Diffusion (Li et al. 2024) reuses the whole
encoder; a searched schedule reuses any set at any call. Reuse is done by a
diffusers ``ModelHook`` with ``new_forward`` on each named module, as
diffusers' own FirstBlockCache skips transformer blocks, plus one hook on the
model that advances the call counter and asks the policy what to reuse.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from diffusers.hooks import ModelHook

from diffcore.cache.core import CacheHandle, CallState
from diffcore.errors import InvalidInputError, UnknownNameError


class ReusePolicy:
    """What to reuse when, bound to one model (a cache config builds it in ``bind``).

    ``modules`` names every module that may ever be reused (one nested in another
    listed module is served through that ancestor, so list sets that are reused together); override
    :meth:`reuse_at`, and optionally :meth:`check_run`,
    :meth:`transform_input` and :meth:`correct`.
    """

    modules: tuple[str, ...] = ()

    def reuse_at(self, call: int, num_calls: int | None) -> frozenset[str]:
        """Module names that reuse their stored output at model call ``call`` (0-based)."""
        raise NotImplementedError

    def check_run(self, num_calls: int | None, sampler: str | None) -> None:
        """Raise a typed error if a run of ``num_calls`` model calls with ``sampler`` does not fit."""

    def transform_input(self, state: CallState, sample: torch.Tensor, timestep: Any) -> torch.Tensor:
        """The model input at this call (identity; Faster Diffusion injects prior noise here)."""
        return sample

    def correct(self, name: str, call: int, out: Any) -> Any:
        """The reused output of ``name`` at ``call`` (as stored; a searched schedule may correct it, ERTACache)."""
        return out


def check_module_names(model: torch.nn.Module, names: Sequence[str]) -> None:
    """Raise :class:`UnknownNameError` for names that are not submodules of ``model``."""
    present = dict(model.named_modules())
    missing = [n for n in names if n not in present or n == ""]
    if missing:
        tops = [n for n, _ in model.named_children()]
        raise UnknownNameError(
            f"{type(model).__name__} has no module(s) {missing}; names are dotted paths from "
            f"model.named_modules(), e.g. {tops[:6]} or 'up_blocks.0.resnets.1'"
        )


class _StepHook(ModelHook):
    """On the model itself: pick the reuse set for this call, then advance the counter."""

    def __init__(self, handle: CacheHandle, policy: ReusePolicy) -> None:
        super().__init__()
        self.handle, self.policy = handle, policy

    def pre_forward(self, module: torch.nn.Module, *args: Any, **kwargs: Any) -> tuple[tuple, dict]:
        st = self.handle.state()
        if st.num_calls is not None and st.calls >= st.num_calls:
            raise InvalidInputError(
                f"the model was called {st.calls + 1} times in a session opened for {st.num_calls} calls; "
                "open one session per sampling run with the run's number of model calls"
            )
        wanted = self.policy.reuse_at(st.calls, st.num_calls)
        st.reuse = frozenset(n for n in wanted if n in st.store)  # the first call always computes
        st.log.append(st.reuse)
        if args:
            args = (self.policy.transform_input(st, args[0], args[1] if len(args) > 1 else kwargs.get("timestep")), *args[1:])
        elif "sample" in kwargs:
            kwargs["sample"] = self.policy.transform_input(st, kwargs["sample"], kwargs.get("timestep"))
        return args, kwargs

    def post_forward(self, module: torch.nn.Module, output: Any) -> Any:
        st = self.handle.state()
        st.calls += 1
        st.reuse = frozenset()
        return output


class _ReuseHook(ModelHook):
    """On one module: return the stored output when reused, else compute and store it."""

    def __init__(self, handle: CacheHandle, policy: ReusePolicy, name: str) -> None:
        super().__init__()
        self.handle, self.policy, self.name = handle, policy, name

    def new_forward(self, module: torch.nn.Module, *args: Any, **kwargs: Any) -> Any:
        st = self.handle.state()
        if self.name in st.reuse:
            return self.policy.correct(self.name, st.calls, st.store[self.name])
        out = self.fn_ref.original_forward(*args, **kwargs)
        st.store[self.name] = out
        return out


def topmost(names: Sequence[str]) -> tuple[str, ...]:
    """Names not nested inside another name of the set: the modules whose reuse actually short-circuits."""
    s = set(names)
    return tuple(n for n in names if not any(n.startswith(o + ".") for o in s if o != n))


def apply_reuse(model: torch.nn.Module, policy: ReusePolicy, handle: CacheHandle) -> None:
    """Attach the reuse hooks for ``policy`` to ``model`` (the applier of every reuse config)."""
    names = policy.modules
    check_module_names(model, names)
    handle.add_hook(model, _StepHook(handle, policy))
    modules = dict(model.named_modules())
    for name in topmost(names):  # a module inside a reused one is never called when it is reused
        handle.add_hook(modules[name], _ReuseHook(handle, policy, name))
    handle.check_run = policy.check_run


def top_level_blocks(model: torch.nn.Module) -> list[str]:
    """The UNet's blocks in execution order: ``down_blocks.i``, ``mid_block``, ``up_blocks.j``."""
    names = [f"down_blocks.{i}" for i in range(len(getattr(model, "down_blocks", [])))]
    if getattr(model, "mid_block", None) is not None:
        names.append("mid_block")
    names += [f"up_blocks.{j}" for j in range(len(getattr(model, "up_blocks", [])))]
    if not names:
        raise InvalidInputError(
            f"{type(model).__name__} has no down_blocks/mid_block/up_blocks: UNet caches need a diffusers UNet "
            "(UNet2DModel, UNet2DConditionModel); for transformers use a DiT cache config"
        )
    return names


def fraction_computed(model: torch.nn.Module, log: Sequence[frozenset[str]]) -> float:
    """Mean over calls of the fraction of top-level UNet blocks not served from the cache.

    A block counts as served from the cache when it, or the part of it a cache
    reused, is in the reuse set: a block with some sub-layers reused counts by
    the share of its direct layers reused.
    """
    blocks = top_level_blocks(model)
    modules = dict(model.named_modules())
    if not log:
        return 1.0
    total = 0.0
    for reused in log:
        served = 0.0
        for b in blocks:
            if b in reused:
                served += 1.0
                continue
            layers = {n for n, _ in modules[b].named_modules() if n.count(".") == 1}  # "resnets.0", "attentions.0" …
            inner = {n[len(b) + 1 :] for n in reused if n.startswith(b + ".")} & layers
            served += len(inner) / max(1, len(layers))
        total += 1.0 - served / len(blocks)
    return total / len(log)
