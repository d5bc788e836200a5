"""Bridge: a flow-matching Euler scheduler driving a VP ε/v/x0-prediction denoiser.

Ours: diffusers has no such bridge (its flow schedulers expect a model that
predicts velocity). Rectified flow (Liu et al. 2023), in the form of SD3
(Esser et al. 2024) that diffusers' flow schedulers implement, interpolates
``x_s = (1 − s)·x0 + s·ε`` and integrates the velocity ``v = ε − x0`` from
``s = 1`` to ``0``. Our denoisers are VP models trained on a
discrete DDPM schedule (Ho et al. 2020). Both describe the same marginals up to a
scale and a change of time (Karras et al. 2022, eq. 4):

* VE noise level ``σ = s / (1 − s)`` and VE state ``x̃ = x0 + σ·ε = x_s / (1 − s)``;
* VP timestep ``t`` with ``σ_t = sqrt((1 − ᾱ_t) / ᾱ_t) = σ``, found by inverting the
  scheduler's sigma table with linear interpolation between integer ``t`` (the
  convention of diffusers' ``EulerDiscreteScheduler`` for fractional timesteps);
* VP state ``x_vp = x̃ / sqrt(1 + σ²) = x_s / sqrt((1 − s)² + s²)``.

A VP denoiser can only be queried on its training range, so the flow sigmas run
linearly (the flow scheduler's own spacing) from ``s_max = σ_max / (1 + σ_max)``
(t = T − 1) down to ``s_min = σ_min / (1 + σ_min)`` (t = 0), then the scheduler's
terminal ``s = 0``; its last Euler step lands exactly on the predicted ``x0``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from diffusers import DDPMScheduler, FlowMatchEulerDiscreteScheduler

from diffcore.errors import InvalidInputError
from diffcore.sampling.registry import from_base_config

PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")


class VPFlowBridge:
    """A flow-matching Euler scheduler seen through a VP denoiser's eyes.

    It quacks like a diffusers scheduler for the sampling loop: ``timesteps`` are
    the (fractional) VP timesteps the denoiser is called with,
    ``init_noise_sigma`` maps VP noise ``x_T ~ N(0, I)`` to the flow state,
    ``scale_model_input`` maps the flow state to ``x_vp`` and ``step`` turns the
    denoiser's output into a velocity for the wrapped scheduler's step.

    Args:
        flow: a ``FlowMatchEulerDiscreteScheduler`` (fresh: its state is driven here).
        vp_config: the denoiser's training schedule, a diffusers scheduler config
            (betas and ``prediction_type``).
    """

    def __init__(self, flow: FlowMatchEulerDiscreteScheduler, vp_config: Mapping[str, Any]) -> None:
        vp = from_base_config(DDPMScheduler, vp_config)
        if vp.config.prediction_type not in PREDICTION_TYPES:
            raise InvalidInputError(
                f"prediction_type must be one of {PREDICTION_TYPES} to drive {type(flow).__name__}, "
                f"got {vp.config.prediction_type!r}"
            )
        ac = vp.alphas_cumprod.double().numpy()  # (T,)
        self.flow = flow
        self.config = flow.config
        self.prediction_type: str = vp.config.prediction_type
        self.vp_sigmas: np.ndarray = np.sqrt((1 - ac) / ac)  # (T,), increasing in t
        self.timesteps: torch.Tensor | None = None
        self._index = 0

    def vp_timestep(self, sigma: np.ndarray) -> np.ndarray:
        """Fractional VP timestep ``t`` with ``σ_t = sigma`` (piecewise-linear inverse of the table)."""
        return np.interp(sigma, self.vp_sigmas, np.arange(len(self.vp_sigmas), dtype=np.float64))

    def set_timesteps(self, num_inference_steps: int, device: str | torch.device | None = None) -> None:
        """Flow sigmas linear from ``s_max`` to ``s_min`` (then 0), and the VP timesteps they map to."""
        s_max, s_min = (float(x / (1 + x)) for x in (self.vp_sigmas[-1], self.vp_sigmas[0]))
        self.flow.set_timesteps(sigmas=np.linspace(s_max, s_min, num_inference_steps).tolist(), device=device)
        s = self.flow.sigmas.double().cpu().numpy()[:-1]  # (N,), what the flow scheduler will step through
        if abs(s[0] - s_max) > 1e-5:
            raise InvalidInputError(
                f"{type(self.flow).__name__} moved its first sigma to {s[0]:.6f} (expected {s_max:.6f}): "
                "shifting (shift != 1, use_dynamic_shifting, shift_terminal) cannot drive a VP denoiser; "
                "build it without them"
            )
        self._s = s
        self.timesteps = torch.from_numpy(self.vp_timestep(s / (1 - s))).float().to(device)
        self._index = 0

    @property
    def init_noise_sigma(self) -> float:
        """``x_s = x_T · (1 − s)·sqrt(1 + σ²)`` at the first flow sigma, for VP noise ``x_T``."""
        return self._scale(0)

    @property
    def sigmas(self) -> torch.Tensor:
        """The wrapped scheduler's flow sigmas (``N + 1``, ending at 0)."""
        return self.flow.sigmas

    def _scale(self, i: int) -> float:
        s = float(self._s[i])
        return float(np.hypot(1 - s, s))  # (1 − s)·sqrt(1 + σ²) with σ = s/(1 − s)

    def set_begin_index(self, begin_index: int = 0) -> None:
        """Start at step ``begin_index`` (SDEdit skips the first steps, as diffusers' img2img pipelines do)."""
        self._index = begin_index
        self.flow.set_begin_index(begin_index)

    def add_noise(self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """Flow state ``x_s = (1 − s)·x0 + s·ε`` at the current step (diffusers' ``scale_noise``).

        Like diffusers' Euler ``add_noise`` after ``set_begin_index``, the level is
        the current step's, whatever ``timesteps`` says: the begin index before the
        loop, the next step's after a step (inpainting re-noises the known region).
        """
        s = float(self._s[self._index])
        return (1 - s) * original_samples + s * noise.to(original_samples)

    def scale_model_input(self, sample: torch.Tensor, timestep: float | torch.Tensor | None = None) -> torch.Tensor:
        """Flow state to VP state: ``x_vp = x_s / sqrt((1 − s)² + s²)``."""
        return sample / self._scale(self._index)

    def step(
        self,
        model_output: torch.Tensor,
        timestep: float | torch.Tensor,
        sample: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
        return_dict: bool = True,
    ) -> Any:
        """One flow Euler step, with the VP model output converted to velocity ``ε̂ − x̂0``.

        In VP terms ``x_vp = α·x0 + σ_vp·ε`` with ``α = (1 − s)/c``, ``σ_vp = s/c``,
        ``c = sqrt((1 − s)² + s²)``; ``v_prediction`` is ``α·ε − σ_vp·x0``.
        """
        s, c = float(self._s[self._index]), self._scale(self._index)
        alpha, sigma = (1 - s) / c, s / c
        x = sample / c  # x_vp
        if self.prediction_type == "epsilon":
            eps = model_output
            x0 = (x - sigma * eps) / alpha
        elif self.prediction_type == "v_prediction":
            x0 = alpha * x - sigma * model_output
            eps = sigma * x + alpha * model_output
        else:
            x0 = model_output
            eps = (x - alpha * x0) / sigma
        velocity = (eps - x0).to(model_output.dtype)
        flow_t = self.flow.timesteps[self._index]
        self._index += 1
        return self.flow.step(velocity, flow_t, sample, generator=generator, return_dict=return_dict)
