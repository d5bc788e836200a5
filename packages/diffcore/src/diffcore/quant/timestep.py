"""Which timestep group a model call belongs to: a top-level diffusers hook and a ``ContextVar``.

Activation ranges of a diffusion model drift with the timestep (Q-Diffusion, Li
et al. 2023; TDQ, So et al. 2023). One activation scale per group of
timesteps — a piecewise-constant form of TDQ's time-dependent scale — follows
the drift. The model's top-level hook reads the ``timestep`` argument and
publishes its group in a :class:`contextvars.ContextVar`, which every layer hook
reads; each thread (each Gradio request) has its own context, so concurrent
calls at different timesteps never see each other's group.
"""

from __future__ import annotations

import contextvars
import numbers
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import torch
from diffusers.hooks import ModelHook

from diffcore.errors import InvalidInputError

TIMESTEP_HOOK = "diffcore_quant_timestep"


@dataclass(frozen=True)
class StepState:
    """What the current model call's layer hooks need to know."""

    group: int  # timestep group of this call
    collect: bool  # calibration: record activations at this call


#: the state of the model call in progress in this context (None outside a quantized model's forward)
CURRENT: contextvars.ContextVar[StepState | None] = contextvars.ContextVar("diffcore_quant_step", default=None)


def timestep_value(t: Any) -> float | None:
    """A model call's timestep as a float: the first entry of a (B,) tensor (samplers pass one t per call)."""
    if t is None:
        return None
    if isinstance(t, torch.Tensor):
        if t.numel() == 0:
            return None
        return float(t.detach().flatten()[0])
    if isinstance(t, numbers.Real) and not isinstance(t, bool):
        return float(t)
    raise InvalidInputError(f"timestep must be a number or a tensor, got {type(t).__name__}")


def timestep_group(t: float, groups: int, num_train_timesteps: int) -> int:
    """Group ``⌊t·G/T⌋`` of timestep ``t`` among ``G`` equal intervals of ``[0, T)``, clamped to ``[0, G)``."""
    return min(max(int(t * groups // num_train_timesteps), 0), groups - 1)


class TimestepHook(ModelHook):
    """Top-level hook: sets :data:`CURRENT` around the model's forward from its ``timestep`` argument.

    The timestep is positional argument 1 or keyword ``timestep`` (every diffusers
    denoiser: ``UNet2DModel``, ``UNet2DConditionModel``, DiT transformers). With
    ``collect`` (calibration) only calls whose rounded timestep is in it record
    activations, the rest still run so the sampling trajectory advances.
    """

    def __init__(self, groups: int, num_train_timesteps: int, collect: Collection[int] | None = None) -> None:
        super().__init__()
        self.groups = groups
        self.num_train_timesteps = num_train_timesteps
        self.collect = None if collect is None else frozenset(int(c) for c in collect)

    def new_forward(self, module: torch.nn.Module, *args: Any, **kwargs: Any) -> Any:
        t = timestep_value(kwargs["timestep"] if "timestep" in kwargs else args[1] if len(args) > 1 else None)
        if t is None and self.groups > 1:
            raise InvalidInputError(
                f"{type(module).__name__} was called without a timestep; timestep-group quantization "
                "(timestep_groups > 1) needs model(x, t, …)"
            )
        group = 0 if t is None else timestep_group(t, self.groups, self.num_train_timesteps)
        collect = self.collect is None or (t is not None and round(t) in self.collect)
        token = CURRENT.set(StepState(group=group, collect=collect))
        try:
            return self.fn_ref.original_forward(*args, **kwargs)
        finally:
            CURRENT.reset(token)
