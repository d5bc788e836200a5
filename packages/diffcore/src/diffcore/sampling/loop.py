"""The one sampling loop: any registered sampler, any denoiser, optional CFG and caching.

It is the loop of diffusers' pipelines (``init_noise_sigma`` →
``scale_model_input`` → model → ``step``), written once for every sampler, with
classifier-free guidance (Ho & Salimans 2022, eq. 6) batched into one model call.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Mapping
from contextlib import ExitStack, nullcontext
from typing import Any

import torch
from diffusers import FlowMatchEulerDiscreteScheduler, LCMScheduler
from diffusers.models.modeling_utils import ModelMixin
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from tqdm.auto import tqdm

from diffcore.cache.core import active as active_cache
from diffcore.errors import InvalidInputError
from diffcore.prior.models import SCHEDULER_CONFIG
from diffcore.sampling.flow import VPFlowBridge
from diffcore.sampling.registry import make_scheduler

#: ``denoiser(x, t, cond) -> model output``: x (B, C, H, W), t (B,), output like x
Denoiser = Callable[[torch.Tensor, torch.Tensor, Any], torch.Tensor]
#: ``callback(step_index, t, latents)``, called after every scheduler step
Callback = Callable[[int, torch.Tensor, torch.Tensor], None]


class ModelDenoiser:
    """A diffusers model (``UNet2DModel``, ``UNet2DConditionModel``, a DiT …) as a :data:`Denoiser`.

    ``cond`` goes to ``encoder_hidden_states`` if ``forward`` takes it (text
    models), else to ``class_labels`` (class-conditional UNets, DiT). A model with
    learned variance (twice the input channels out, as DiT) gives its first half,
    as ``DiTPipeline`` does.
    """

    def __init__(self, model: ModelMixin) -> None:
        self.model = model
        # read once: ModelMixin.dtype walks every submodule (~1.6 ms on tinysd), too slow per call
        self.dtype = model.dtype
        params = inspect.signature(model.forward).parameters
        key = next((k for k in ("encoder_hidden_states", "class_labels") if k in params), None)
        self.cond_key = key
        self.cond_required = key is not None and params[key].default is inspect.Parameter.empty

    def __call__(self, x: torch.Tensor, t: torch.Tensor, cond: Any) -> torch.Tensor:  # x: (B, C, H, W), t: (B,)
        name = type(self.model).__name__
        kwargs = {}
        if cond is not None:
            if self.cond_key is None:
                raise InvalidInputError(f"{name} takes no conditioning; call sample(..., cond=None)")
            kwargs[self.cond_key] = cond
        elif self.cond_required:
            raise InvalidInputError(f"{name} needs cond= (its {self.cond_key})")
        out = self.model(x.to(self.dtype), t, **kwargs).sample  # (B, C or 2C, H, W)
        if out.shape[1] == 2 * x.shape[1]:
            out = out[:, : x.shape[1]]  # drop learned-variance channels
        return out.to(x.dtype)


def _fresh_scheduler(scheduler: str | SchedulerMixin, base_config: Mapping[str, Any]) -> Any:
    """A scheduler no other call can see; flow schedulers come wrapped in the VP bridge."""
    if isinstance(scheduler, str):
        fresh = make_scheduler(scheduler, base_config)
    elif isinstance(scheduler, SchedulerMixin):
        fresh = copy.deepcopy(scheduler)
    else:
        raise InvalidInputError(
            f"scheduler must be a sampler name (see list_samplers()) or a diffusers scheduler, got {type(scheduler).__name__}"
        )
    if isinstance(fresh, FlowMatchEulerDiscreteScheduler):
        return VPFlowBridge(fresh, base_config)
    return fresh


def _check_steps(steps: Any, scheduler: Any) -> None:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps <= 0:
        raise InvalidInputError(f"steps must be a positive int (number of sampler steps, e.g. 25), got {steps!r}")
    if isinstance(scheduler, LCMScheduler) and steps > scheduler.config.original_inference_steps:
        raise InvalidInputError(
            f"LCM takes at most original_inference_steps={scheduler.config.original_inference_steps} steps, "
            f"got {steps}; lower steps or build the scheduler with a larger original_inference_steps"
        )
    n_train = scheduler.config.get("num_train_timesteps")
    if not isinstance(scheduler, VPFlowBridge) and n_train is not None and steps > n_train:
        raise InvalidInputError(f"steps must be at most num_train_timesteps={n_train}, got {steps}")


def _check_latents(latents: Any) -> None:
    if not isinstance(latents, torch.Tensor) or latents.ndim != 4 or not latents.is_floating_point():
        got = f"shape {tuple(latents.shape)}, {latents.dtype}" if isinstance(latents, torch.Tensor) else type(latents)
        raise InvalidInputError(f"latents must be a 4-D float tensor (B, C, H, W) of N(0, I) noise, got {got}")


def _check_guidance(cond: Any, guidance: float | None) -> None:
    if guidance is None:
        if isinstance(cond, tuple):
            raise InvalidInputError("cond=(cond, uncond) needs guidance=<scale>; for no guidance pass cond alone")
        return
    if isinstance(guidance, bool) or not isinstance(guidance, (int, float)):
        raise InvalidInputError(f"guidance must be a float scale (e.g. 7.5) or None, got {guidance!r}")
    if not (isinstance(cond, tuple) and len(cond) == 2 and all(isinstance(c, torch.Tensor) for c in cond)):
        raise InvalidInputError("guidance needs cond=(cond, uncond), two tensors with the same shape")
    if cond[0].shape != cond[1].shape:
        shapes = f"{tuple(cond[0].shape)} and {tuple(cond[1].shape)}"
        raise InvalidInputError(f"cond and uncond must have the same shape, got {shapes}")


def _init_noise_scale(scheduler: Any) -> float | torch.Tensor:
    """The factor taking ``x_T ~ N(0, I)`` to the scheduler's first state.

    diffusers' ``init_noise_sigma``, except where it follows k-diffusion's
    ``x = noise · σ_max`` (Euler, Heun … with "linspace" / "trailing" spacing):
    the VE state that ``scale_model_input`` maps back to ``x_T`` has std
    ``sqrt(σ_max² + 1)`` (VP scaling, Karras et al. 2022, table 1), 0.23 % more at
    SD's σ_max = 14.6.
    With it Euler coincides with DDIM, as it must (Song et al. 2021, eq. 14).
    """
    scale = scheduler.init_noise_sigma
    sigmas = getattr(scheduler, "sigmas", None)
    k_style = scheduler.config.get("timestep_spacing") in ("linspace", "trailing")
    if k_style and isinstance(sigmas, torch.Tensor) and float(scale) == float(sigmas.max()):
        return (scale**2 + 1) ** 0.5
    return scale


def _cache_context(model: Any, name: str, **where: Any) -> Any:
    """``model.cache_context(name, …)`` for diffusers ``CacheMixin`` models, else a no-op.

    Where the model's ``cache_context`` takes keyword fields (step index,
    timestep, sigma …, as in diffusers 0.42) they are passed too, as diffusers'
    Wan pipeline does; otherwise the name only.
    """
    ctx = getattr(model, "cache_context", None)
    if not callable(ctx):
        return nullcontext()
    params = inspect.signature(ctx).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return ctx(name, **where)
    return ctx(name)


@torch.no_grad()
def sample(
    denoiser: Denoiser | ModelMixin,
    scheduler: str | SchedulerMixin,
    latents: torch.Tensor,
    *,
    steps: int,
    cond: Any = None,
    guidance: float | None = None,
    cache: Any = None,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    progress: bool = True,
    return_trajectory: bool = False,
    base_config: Mapping[str, Any] | None = None,
) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
    """Sample with any sampler: diffusers' pipeline loop, with CFG (Ho & Salimans 2022, eq. 6).

    Args:
        denoiser: ``denoiser(x, t, cond) -> output`` (ε, v or x0 as the schedule's
            ``prediction_type`` says), or a diffusers model, called with
            ``encoder_hidden_states=cond`` (or ``class_labels=cond``).
        scheduler: a sampler name (:func:`list_samplers`) or a diffusers
            scheduler; either way this call works on its own fresh copy, so
            concurrent calls never share state.
        latents: ``x_T ~ N(0, I)``, (B, C, H, W); scaled by ``init_noise_sigma`` here
            (by ``sqrt(σ_max² + 1)`` for k-diffusion-style schedulers, see
            :func:`_init_noise_scale`).
        steps: number of sampler steps (Heun takes two model calls per step but the last).
        cond: conditioning passed to the denoiser, or ``(cond, uncond)`` with ``guidance``.
        guidance: classifier-free guidance scale ``g``: output ``u + g·(c − u)``,
            cond and uncond batched into one model call.
        cache: a context manager held open around the whole loop, or ``None``.
            Independently, a model with a :mod:`diffcore.cache` applied gets a
            fresh cache session for this run (per-call state), and a diffusers
            ``CacheMixin`` model gets each call wrapped in ``model.cache_context``
            and its cache state reset when the loop ends.
        generator: for stochastic samplers' per-step noise.
        callback: ``callback(step_index, t, latents)`` after every step.
        progress: show a tqdm bar.
        return_trajectory: also return the latents after every step, in the
            sampler's own state (VP for DDIM/DPM/UniPC/DDPM/LCM, VE ``x0 + σ·ε``
            for Euler/Heun, flow ``(1 − s)·x0 + s·ε`` for flow samplers).
        base_config: the denoiser's training schedule, a diffusers scheduler
            config (default tinysd's ``SCHEDULER_CONFIG``); builds named samplers
            and maps flow samplers onto VP timesteps.

    Returns:
        The final latents (B, C, H, W), or ``(final, trajectory)``.
    """
    _check_latents(latents)
    _check_guidance(cond, guidance)
    if cache is not None and not hasattr(cache, "__enter__"):
        raise InvalidInputError(f"cache must be a context manager or None, got {type(cache).__name__}")
    base_config = SCHEDULER_CONFIG if base_config is None else base_config
    sched = _fresh_scheduler(scheduler, base_config)
    _check_steps(steps, sched)

    model = denoiser
    call = ModelDenoiser(denoiser) if isinstance(denoiser, ModelMixin) else denoiser
    if not callable(call):
        raise InvalidInputError(f"denoiser must be callable as denoiser(x, t, cond), got {type(denoiser).__name__}")
    step_takes_generator = "generator" in inspect.signature(sched.step).parameters
    step_kwargs = {"generator": generator} if step_takes_generator else {}

    sched.set_timesteps(steps, device=latents.device)
    timesteps = sched.timesteps
    sigmas = getattr(sched, "sigmas", None)
    x = latents * _init_noise_scale(sched)  # (B, C, H, W)
    b = x.shape[0]
    trajectory: list[torch.Tensor] = []

    with ExitStack() as stack:
        if cache is not None:
            stack.enter_context(cache)
        feature_cache = active_cache(model)
        if feature_cache is not None:  # a diffcore.cache on the model: this run's own state
            name = scheduler if isinstance(scheduler, str) else type(sched).__name__
            stack.enter_context(feature_cache.session(num_calls=len(timesteps), sampler=name))
        try:
            for i, t in enumerate(tqdm(timesteps, desc=type(sched).__name__, disable=not progress, leave=False)):
                x_in = sched.scale_model_input(x, t)  # (B, C, H, W)
                where = dict(
                    step_index=i,
                    num_inference_steps=len(timesteps),
                    timestep=t,
                    sigma=float(sigmas[i]) if sigmas is not None and len(sigmas) > i else None,
                )
                if guidance is None:
                    with _cache_context(model, "cond", **where):
                        out = call(x_in, t.expand(b), cond)
                else:
                    with _cache_context(model, "cond_uncond", **where):
                        both = call(torch.cat([x_in, x_in]), t.expand(2 * b), torch.cat(cond))  # (2B, C, H, W)
                    out_c, out_u = both.chunk(2)
                    out = out_u + guidance * (out_c - out_u)
                x = sched.step(out, t, x, return_dict=False, **step_kwargs)[0]
                if callback is not None:
                    callback(i, t, x)
                if return_trajectory:
                    trajectory.append(x)
        finally:
            if callable(getattr(model, "cache_context", None)) and hasattr(model, "_reset_stateful_cache"):
                model._reset_stateful_cache()  # as DiffusionPipeline.maybe_free_model_hooks: next call starts cold
    return (x, trajectory) if return_trajectory else x
