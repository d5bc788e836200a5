"""The one sampling loop: any registered sampler, any denoiser, optional CFG and caching.

It is the loop of diffusers' pipelines (``init_noise_sigma`` →
``scale_model_input`` → model → ``step``), written once for every sampler, with
classifier-free guidance (Ho & Salimans 2022, eq. 6) batched into one model call.
It starts from pure noise, or from a clean latent noised part-way (SDEdit, Meng et
al. 2022; diffusers' img2img ``get_timesteps``), optionally keeping a known region
(inpainting with an unconditional model, Lugmayr et al. 2022 without resampling,
as diffusers' SD inpaint pipeline does for a 4-channel UNet).
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Mapping
from contextlib import ExitStack, nullcontext
from typing import Any

import numpy as np
import torch
from diffusers import DDPMScheduler, FlowMatchEulerDiscreteScheduler, LCMScheduler
from diffusers.models.modeling_utils import ModelMixin
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from tqdm.auto import tqdm

from diffcore.cache.core import active as active_cache
from diffcore.errors import InvalidInputError
from diffcore.prior.models import SCHEDULER_CONFIG
from diffcore.sampling.flow import PREDICTION_TYPES, VPFlowBridge
from diffcore.sampling.registry import from_base_config, make_scheduler

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


def _check_edit(latents: torch.Tensor, init: Any, strength: Any, mask: Any) -> float | None:
    """Validate SDEdit / inpainting arguments; the strength to use (``None``: sample from pure noise)."""
    if init is None:
        if strength is not None or mask is not None:
            raise InvalidInputError("strength= and mask= need init=<clean latents> (SDEdit / inpainting start from them)")
        return None
    if not isinstance(init, torch.Tensor) or init.shape != latents.shape or not init.is_floating_point():
        got = f"shape {tuple(init.shape)}, {init.dtype}" if isinstance(init, torch.Tensor) else type(init).__name__
        raise InvalidInputError(f"init must be a float tensor shaped like latents {tuple(latents.shape)}, got {got}")
    strength = 1.0 if strength is None else strength
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0 < strength <= 1:
        raise InvalidInputError(f"strength must be a float in (0, 1] (1: start from pure noise), got {strength!r}")
    if mask is not None:
        ok = isinstance(mask, torch.Tensor) and mask.ndim == 4 and mask.is_floating_point()
        try:
            ok = ok and torch.broadcast_shapes(mask.shape, latents.shape) == latents.shape
        except RuntimeError:
            ok = False
        if not ok:
            got = f"shape {tuple(mask.shape)}, {mask.dtype}" if isinstance(mask, torch.Tensor) else type(mask).__name__
            raise InvalidInputError(f"mask must be a 4-D float tensor broadcastable to {tuple(latents.shape)}, got {got}")
        if mask.min() < 0 or mask.max() > 1:
            raise InvalidInputError("mask values must lie in [0, 1] (1: generate, 0: keep init)")
    return float(strength)


def _edit_timesteps(scheduler: Any, steps: int, strength: float) -> torch.Tensor:
    """The last ``int(steps·strength)`` steps of the schedule (diffusers' img2img ``get_timesteps``)."""
    n = min(int(steps * strength), steps)
    if n < 1:
        raise InvalidInputError(f"strength={strength} leaves no step of {steps}; raise strength or steps (steps·strength >= 1)")
    order = getattr(scheduler, "order", 1)
    begin = (steps - n) * order
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(begin)
    return scheduler.timesteps[begin:]


class _X0Estimate:
    """The clean-latent estimate ``x̂0`` a VP model output implies at a (fractional) timestep.

    ``x_vp = √ᾱ·x0 + √(1−ᾱ)·ε`` (Ho et al. 2020, eq. 4); ``v = √ᾱ·ε − √(1−ᾱ)·x0``
    (Salimans & Ho 2022). Fractional ``t`` (flow samplers) interpolates ``σ_t``
    linearly, as :class:`VPFlowBridge` does.

    Args:
        base_config: the denoiser's training schedule (betas and ``prediction_type``).
    """

    def __init__(self, base_config: Mapping[str, Any]) -> None:
        vp = from_base_config(DDPMScheduler, base_config)
        self.kind: str = vp.config.prediction_type
        if self.kind not in PREDICTION_TYPES:
            raise InvalidInputError(f"return_x0 needs prediction_type in {PREDICTION_TYPES}, got {self.kind!r}")
        ac = vp.alphas_cumprod.double().numpy()  # (T,)
        self.vp_sigmas: np.ndarray = np.sqrt((1 - ac) / ac)  # (T,)

    def __call__(self, out: torch.Tensor, x_vp: torch.Tensor, t: torch.Tensor) -> torch.Tensor:  # out, x_vp: (B, C, H, W)
        sigma = float(np.interp(float(t), np.arange(len(self.vp_sigmas)), self.vp_sigmas))
        alpha, sigma_vp = (1 + sigma**2) ** -0.5, sigma * (1 + sigma**2) ** -0.5
        if self.kind == "epsilon":
            return (x_vp - sigma_vp * out) / alpha
        if self.kind == "v_prediction":
            return alpha * x_vp - sigma_vp * out
        return out


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
    init: torch.Tensor | None = None,
    strength: float | None = None,
    mask: torch.Tensor | None = None,
    cond: Any = None,
    guidance: float | None = None,
    cache: Any = None,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    progress: bool = True,
    return_trajectory: bool = False,
    return_x0: bool = False,
    base_config: Mapping[str, Any] | None = None,
) -> torch.Tensor | tuple[torch.Tensor, ...]:
    """Sample with any sampler: diffusers' pipeline loop, with CFG (Ho & Salimans 2022, eq. 6), SDEdit and inpainting.

    >>> x0 = sample(unet, "ddim", torch.randn_like(z), steps=20)                       # from pure noise
    >>> x0 = sample(unet, "ddim", torch.randn_like(z), steps=20, init=z, strength=0.5)  # SDEdit: 10 steps from z noised
    >>> x0 = sample(unet, "ddim", torch.randn_like(z), steps=20, init=z, mask=m)        # inpaint where m = 1

    Args:
        denoiser: ``denoiser(x, t, cond) -> output`` (ε, v or x0 as the schedule's
            ``prediction_type`` says), or a diffusers model, called with
            ``encoder_hidden_states=cond`` (or ``class_labels=cond``).
        scheduler: a sampler name (:func:`list_samplers`) or a diffusers
            scheduler; either way this call works on its own fresh copy, so
            concurrent calls never share state.
        latents: ``x_T ~ N(0, I)``, (B, C, H, W); scaled by ``init_noise_sigma`` here
            (by ``sqrt(σ_max² + 1)`` for k-diffusion-style schedulers, see
            :func:`_init_noise_scale`). With ``init`` it is the noise ``ε`` added to it.
        steps: number of sampler steps over the whole schedule (Heun takes two
            model calls per step but the last); with ``strength`` only the last
            ``int(steps·strength)`` of them run.
        init: clean latents ``x0`` (B, C, H, W) to start from (SDEdit, Meng et al.
            2022): noised with ``scheduler.add_noise(init, latents, t_start)`` to the
            first timestep kept, in the sampler's own state (VP, VE or flow).
        strength: in (0, 1], how far ``init`` is pushed towards noise (default 1.0
            with ``init``); the step count and start follow diffusers' img2img
            ``get_timesteps``: ``t_start = steps − int(steps·strength)``.
        mask: with ``init``, (B or 1, 1 or C, H, W) in [0, 1], 1 where to generate and
            0 where to keep ``init``: after every step the kept region is replaced by
            ``init`` noised with the same ``latents`` to the next step's level, and by
            ``init`` itself after the last (RePaint's known-region update, Lugmayr et
            al. 2022, eq. 8, without resampling; diffusers' SD inpaint for 4-channel UNets).
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
        return_x0: also return the clean-latent estimate ``x̂0`` of every model
            call (after guidance), computed from the output with ``base_config``'s
            schedule and ``prediction_type`` (see :class:`_X0Estimate`).
        base_config: the denoiser's training schedule, a diffusers scheduler
            config (default tinysd's ``SCHEDULER_CONFIG``); builds named samplers,
            maps flow samplers onto VP timesteps and turns outputs into ``x̂0``.

    Returns:
        The final latents (B, C, H, W); with ``return_trajectory`` / ``return_x0`` a
        tuple ``(final, trajectory, x0s)`` holding those asked for, in that order.
    """
    _check_latents(latents)
    _check_guidance(cond, guidance)
    strength = _check_edit(latents, init, strength, mask)
    if cache is not None and not hasattr(cache, "__enter__"):
        raise InvalidInputError(f"cache must be a context manager or None, got {type(cache).__name__}")
    base_config = SCHEDULER_CONFIG if base_config is None else base_config
    sched = _fresh_scheduler(scheduler, base_config)
    _check_steps(steps, sched)
    x0_estimate = _X0Estimate(base_config) if return_x0 else None
    model = denoiser
    call = ModelDenoiser(denoiser) if isinstance(denoiser, ModelMixin) else denoiser
    if not callable(call):
        raise InvalidInputError(f"denoiser must be callable as denoiser(x, t, cond), got {type(denoiser).__name__}")
    step_takes_generator = "generator" in inspect.signature(sched.step).parameters
    step_kwargs = {"generator": generator} if step_takes_generator else {}

    sched.set_timesteps(steps, device=latents.device)
    if strength is None:
        timesteps = sched.timesteps
        x = latents * _init_noise_scale(sched)  # (B, C, H, W)
    else:
        timesteps = _edit_timesteps(sched, steps, strength)
        x = sched.add_noise(init, latents, timesteps[:1].repeat(latents.shape[0]))  # (B, C, H, W)
    sigmas = getattr(sched, "sigmas", None)
    offset = len(sched.timesteps) - len(timesteps)  # steps SDEdit skipped: sigmas stay indexed by the full schedule
    b = x.shape[0]
    trajectory: list[torch.Tensor] = []
    x0s: list[torch.Tensor] = []

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
                    sigma=float(sigmas[offset + i]) if sigmas is not None and len(sigmas) > offset + i else None,
                )
                if guidance is None:
                    with _cache_context(model, "cond", **where):
                        out = call(x_in, t.expand(b), cond)
                else:
                    with _cache_context(model, "cond_uncond", **where):
                        both = call(torch.cat([x_in, x_in]), t.expand(2 * b), torch.cat(cond))  # (2B, C, H, W)
                    out_c, out_u = both.chunk(2)
                    out = out_u + guidance * (out_c - out_u)
                if x0_estimate is not None:
                    x0s.append(x0_estimate(out, x_in, t))
                x = sched.step(out, t, x, return_dict=False, **step_kwargs)[0]
                if mask is not None:
                    last = i == len(timesteps) - 1
                    known = init if last else sched.add_noise(init, latents, timesteps[i + 1 : i + 2].repeat(b))
                    x = mask * x + (1 - mask) * known
                if callback is not None:
                    callback(i, t, x)
                if return_trajectory:
                    trajectory.append(x)
        finally:
            if callable(getattr(model, "cache_context", None)) and hasattr(model, "_reset_stateful_cache"):
                model._reset_stateful_cache()  # as DiffusionPipeline.maybe_free_model_hooks: next call starts cold
    if not (return_trajectory or return_x0):
        return x
    return (x, *([trajectory] if return_trajectory else []), *([x0s] if return_x0 else []))
