"""The sampler registry: diffusers schedulers under short names.

Every sampler is a stock diffusers scheduler built from the denoiser's training
schedule (a diffusers scheduler config such as tinysd's ``SCHEDULER_CONFIG``)
plus a few fixed keyword arguments, so ``make_scheduler("dpmpp_2m", cfg)`` is
exactly ``DPMSolverMultistepScheduler.from_config(cfg, algorithm_type=
"dpmsolver++", solver_order=2)``. Users add their own with
:func:`register_sampler`.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    EulerDiscreteScheduler,
    FlowMatchEulerDiscreteScheduler,
    HeunDiscreteScheduler,
    LCMScheduler,
    UniPCMultistepScheduler,
)
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from diffcore.errors import InvalidInputError, UnknownNameError


@dataclass(frozen=True)
class SamplerSpec:
    """How to build one named sampler.

    Args:
        cls: a diffusers scheduler class (``SchedulerMixin`` + ``ConfigMixin``).
        kwargs: fixed constructor arguments, applied over the base config.
        deterministic: ``True`` if the sampler integrates the probability-flow
            ODE (same noise in, same sample out, no fresh noise per step).
        description: one line naming the algorithm and its paper.
    """

    cls: type[SchedulerMixin]
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    deterministic: bool = False  # no promise unless stated
    description: str = ""

    def __post_init__(self) -> None:
        is_scheduler = isinstance(self.cls, type) and issubclass(self.cls, SchedulerMixin)
        if not (is_scheduler and hasattr(self.cls, "from_config")):
            raise InvalidInputError(
                f"a sampler must be a diffusers scheduler class (SchedulerMixin with from_config), got {self.cls!r}"
            )


#: name -> spec; extend with :func:`register_sampler`
SAMPLERS: dict[str, SamplerSpec] = {
    "ddpm": SamplerSpec(DDPMScheduler, deterministic=False, description="DDPM ancestral sampling (Ho et al. 2020, alg. 2)."),
    "ddim": SamplerSpec(DDIMScheduler, deterministic=True, description="DDIM with eta=0 (Song et al. 2021, eq. 12)."),
    "dpmpp_2m": SamplerSpec(
        DPMSolverMultistepScheduler,
        {"algorithm_type": "dpmsolver++", "solver_order": 2},
        deterministic=True,
        description="DPM-Solver++(2M), second-order multistep in data prediction (Lu et al. 2022b, alg. 2).",
    ),
    "unipc": SamplerSpec(
        UniPCMultistepScheduler,
        deterministic=True,
        description="UniPC, unified predictor-corrector, bh2 order 2 (Zhao et al. 2023).",
    ),
    "euler": SamplerSpec(
        EulerDiscreteScheduler,
        deterministic=True,
        description="Euler on the probability-flow ODE in sigma (Karras et al. 2022, alg. 1 without the 2nd order).",
    ),
    "heun": SamplerSpec(
        HeunDiscreteScheduler,
        deterministic=True,
        description="Heun's second-order method in sigma (Karras et al. 2022, alg. 1).",
    ),
    "flow_euler": SamplerSpec(
        FlowMatchEulerDiscreteScheduler,
        deterministic=True,
        description="Euler on the rectified-flow ODE (Liu et al. 2023; Esser et al. 2024); VP denoisers via flow.py.",
    ),
    "lcm": SamplerSpec(
        LCMScheduler,
        deterministic=False,
        description="Latent consistency multistep sampling (Luo et al. 2023, alg. 1), for distilled models.",
    ),
}


def list_samplers() -> list[str]:
    """Names of all registered samplers, sorted."""
    return sorted(SAMPLERS)


def get_spec(name: str) -> SamplerSpec:
    """The spec registered under ``name``; :class:`UnknownNameError` lists the valid names."""
    try:
        return SAMPLERS[name]
    except (KeyError, TypeError):
        raise UnknownNameError(f"unknown sampler {name!r}; choose one of {', '.join(list_samplers())}") from None


def register_sampler(
    name: str,
    cls: type[SchedulerMixin],
    *,
    deterministic: bool = False,
    description: str = "",
    overwrite: bool = False,
    **kwargs: Any,
) -> SamplerSpec:
    """Register a diffusers scheduler class under ``name``.

    Args:
        name: the new sampler's name.
        cls: a diffusers scheduler class, built with ``cls.from_config(base_config, **kwargs)``.
        deterministic: whether it solves the probability-flow ODE (no fresh noise).
        description: one line naming the algorithm and its paper.
        overwrite: allow replacing an existing name (default ``False``).
        **kwargs: fixed constructor arguments.
    """
    if not isinstance(name, str) or not name:
        raise InvalidInputError(f"a sampler name must be a non-empty string, got {name!r}")
    if name in SAMPLERS and not overwrite:
        raise InvalidInputError(f"sampler {name!r} is already registered; pass overwrite=True to replace it")
    spec = SamplerSpec(cls, dict(kwargs), deterministic=deterministic, description=description)
    SAMPLERS[name] = spec
    return spec


def from_base_config(cls: type[SchedulerMixin], base_config: Mapping[str, Any], **kwargs: Any) -> SchedulerMixin:
    """``cls.from_config(base_config, **kwargs)`` without the keys ``cls`` does not take.

    diffusers would keep those keys as hidden config and warn about them on
    every build; dropping them lets one training schedule serve every sampler.
    """
    accepted = inspect.signature(cls.__init__).parameters
    return cls.from_config({k: v for k, v in dict(base_config).items() if k in accepted}, **kwargs)


def make_scheduler(name: str, base_config: Mapping[str, Any]) -> SchedulerMixin:
    """A fresh scheduler for sampler ``name``, built from the denoiser's training schedule."""
    spec = get_spec(name)
    return from_base_config(spec.cls, base_config, **spec.kwargs)
