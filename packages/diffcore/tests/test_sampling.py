"""diffcore.sampling against an analytic Gaussian mixture with an exact denoiser.

Data: a 3-component isotropic Gaussian mixture in 4-D (std ``S = 0.3``), shaped
as latents (B, 4, 1, 1) so every scheduler runs its real code path. At VE noise
``σ`` its posterior mean is exact (Karras et al. 2022, eq. 3, for a mixture):

    E[x0 | x̃] = Σ_k γ_k(x̃)·(S²·x̃ + σ²·μ_k) / (S² + σ²),  γ_k ∝ w_k·N(x̃; μ_k, (S² + σ²)·I)

and is exposed as an ε-prediction VP denoiser on SD's discrete 1000-step schedule
(fractional ``t``: ``σ_t`` linear in ``t``, as the flow bridge assumes). The
reference for deterministic samplers is the probability-flow ODE
``dx̃/dσ = (x̃ − D(x̃, σ))/σ`` from ``x̃(σ_max) = x_T·sqrt(1 + σ_max²)`` to ``σ = 0``,
integrated with RK4 in ``log σ`` (500 steps: 3e-8 from the 1000-step solution).

Errors are RMS over 256 samples × 4 coordinates (data scale: component means
~1.2 from the origin, within-component std 0.3).
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from contextlib import contextmanager

import pytest
import torch
from diffusers import (
    DDPMScheduler,
    EulerAncestralDiscreteScheduler,
    FlowMatchEulerDiscreteScheduler,
    UNet2DConditionModel,
    UNet2DModel,
)

from diffcore.errors import InvalidInputError, UnknownNameError
from diffcore.prior.models import SCHEDULER_CONFIG
from diffcore.sampling import SAMPLERS, list_samplers, make_scheduler, register_sampler, sample
from diffcore.sampling.flow import VPFlowBridge

MU = torch.tensor([[1.0, 0.5, -0.5, 0.0], [-1.0, 0.5, 0.5, 0.5], [0.0, -1.0, 0.0, -0.5]], dtype=torch.float64)
W = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
S = 0.3
MEAN = (W[:, None] * MU).sum(0)  # (4,)
_AC = DDPMScheduler.from_config(SCHEDULER_CONFIG).alphas_cumprod.double()
SIGMAS = ((1 - _AC) / _AC).sqrt()  # (1000,) VE sigma of each VP timestep
SIGMA_MAX = SIGMAS[-1].item()

DETERMINISTIC = ["ddim", "dpmpp_2m", "unipc", "euler", "heun", "flow_euler"]
STEPS = (10, 50, 200, 1000)
#: measured RMS error vs the ODE at 10 / 50 / 200 / 1000 steps (CPU, float32 latents):
#:   ddim 1.15e-1 3.49e-2 1.14e-2 2.90e-3 | dpmpp_2m 1.03e-1 2.71e-2 6.51e-3 1.25e-3
#:   unipc 1.04e-1 2.70e-2 6.73e-3 1.34e-3 | euler = ddim | heun 9.88e-2 2.66e-2 7.17e-3 1.47e-3
#:   flow_euler 7.16e-2 1.34e-2 4.04e-3 1.87e-3
#: The floor is the schedule, not the solvers: trailing spacing ends with one
#: first-order jump from σ_last (t = 1000/N − 1) to 0, which alone costs 1.02e-1
#: at N = 10 and 1.48e-3 at t_last = 0 (σ = 0.029); see test_dpmpp_beats_ddim.
TOL_AT_1000 = {
    "ddim": 3.2e-3,
    "euler": 3.2e-3,
    "dpmpp_2m": 1.4e-3,
    "unipc": 1.5e-3,
    "heun": 1.7e-3,
    "flow_euler": 2.1e-3,
}


def posterior_mean(x: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
    """Exact ``E[x0 | x̃ = x0 + σ·ε]`` of the mixture; x (B, 4) float64, sigma scalar or (B,)."""
    sigma = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1, 1).expand(x.shape[0], 1)  # (B, 1)
    var = S**2 + sigma**2  # (B, 1)
    d2 = ((x[:, None, :] - MU[None]) ** 2).sum(-1)  # (B, K)
    gamma = torch.softmax(W.log()[None] - d2 / (2 * var), dim=1)  # (B, K)
    means = (S**2 * x[:, None, :] + sigma[:, :, None] ** 2 * MU[None]) / var[:, :, None]  # (B, K, 4)
    return (gamma[..., None] * means).sum(1)


def sigma_at(t: torch.Tensor) -> torch.Tensor:
    """VE sigma at a (fractional) VP timestep: linear between integer t."""
    t = t.double().clamp(0, len(SIGMAS) - 1)
    lo = t.floor().long().clamp(max=len(SIGMAS) - 2)
    w = t - lo
    return (1 - w) * SIGMAS[lo] + w * SIGMAS[lo + 1]


def gmm_denoiser(prediction_type: str = "epsilon"):
    """The mixture's exact VP denoiser, predicting ε, v or x0."""

    def denoise(x: torch.Tensor, t: torch.Tensor, cond: object = None) -> torch.Tensor:  # x: (B, 4, 1, 1)
        b = x.shape[0]
        sigma = sigma_at(t.reshape(-1).expand(b))[:, None]  # (B, 1)
        x_ve = x.reshape(b, -1).double() * (1 + sigma**2).sqrt()  # (B, 4)
        x0 = posterior_mean(x_ve, sigma)
        eps = (x_ve - x0) / sigma
        alpha, sigma_vp = (1 + sigma**2).rsqrt(), sigma * (1 + sigma**2).rsqrt()
        out = {"epsilon": eps, "sample": x0, "v_prediction": alpha * eps - sigma_vp * x0}[prediction_type]
        return out.reshape(x.shape).to(x.dtype)

    return denoise


gmm_eps = gmm_denoiser()


def ode(x: torch.Tensor, sigma_start: float, sigma_end: float, *, n: int = 500) -> torch.Tensor:
    """The probability-flow ODE on VE states x (B, 4) from ``sigma_start`` to ``sigma_end``, RK4 in ``u = log σ``.

    In ``u`` the ODE is ``dx̃/du = x̃ − D(x̃, e^u)``.
    """
    us = torch.linspace(math.log(sigma_start), math.log(sigma_end), n + 1, dtype=torch.float64).tolist()

    def f(x: torch.Tensor, u: float) -> torch.Tensor:
        return x - posterior_mean(x, math.exp(u))

    for u0, u1 in itertools.pairwise(us):
        h = u1 - u0
        k1 = f(x, u0)
        k2 = f(x + h / 2 * k1, u0 + h / 2)
        k3 = f(x + h / 2 * k2, u0 + h / 2)
        k4 = f(x + h * k3, u1)
        x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return x


def pf_ode(x_T: torch.Tensor, sigma_end: float = 1e-4, *, n: int = 500, denoise_last: bool = True) -> torch.Tensor:
    """Probability-flow ODE from ``σ_max`` to ``sigma_end``, then ``x0 = D(x̃, σ_end)`` (the last jump costs O(σ_end²))."""
    x = ode(x_T.reshape(x_T.shape[0], -1).double() * math.sqrt(1 + SIGMA_MAX**2), SIGMA_MAX, sigma_end, n=n)  # (B, 4)
    return posterior_mean(x, sigma_end) if denoise_last else x


def rms(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.reshape(b.shape).double() - b).pow(2).mean().sqrt().item()


@pytest.fixture(scope="module")
def x_T() -> torch.Tensor:
    return torch.randn(256, 4, 1, 1, generator=torch.Generator().manual_seed(0))  # (B, 4, 1, 1)


@pytest.fixture(scope="module")
def reference(x_T: torch.Tensor) -> torch.Tensor:
    return pf_ode(x_T)  # (B, 4)


def run(scheduler: object, x: torch.Tensor, steps: int, **kwargs: object) -> torch.Tensor:
    return sample(kwargs.pop("denoiser", gmm_eps), scheduler, x, steps=steps, progress=False, **kwargs)


# -- registry ------------------------------------------------------------------------------------


def test_registry_lists_and_builds_every_sampler() -> None:
    assert list_samplers() == sorted(["ddpm", "ddim", "dpmpp_2m", "unipc", "euler", "heun", "flow_euler", "lcm"])
    for name in list_samplers():
        spec = SAMPLERS[name]
        sched = make_scheduler(name, SCHEDULER_CONFIG)
        assert type(sched) is spec.cls and spec.description
        assert spec.deterministic == (name in DETERMINISTIC)
    dpm = make_scheduler("dpmpp_2m", SCHEDULER_CONFIG)
    assert (dpm.config.algorithm_type, dpm.config.solver_order) == ("dpmsolver++", 2)
    assert dpm.config.beta_schedule == "scaled_linear" and dpm.config.timestep_spacing == "trailing"


def test_register_sampler_adds_a_usable_name(x_T: torch.Tensor) -> None:
    register_sampler("euler_a", EulerAncestralDiscreteScheduler, deterministic=False, description="Euler ancestral")
    try:
        assert "euler_a" in list_samplers()
        out = run("euler_a", x_T[:8], 10, generator=torch.Generator().manual_seed(0))
        assert out.shape == (8, 4, 1, 1) and torch.isfinite(out).all()
        with pytest.raises(InvalidInputError, match="already registered"):
            register_sampler("euler_a", EulerAncestralDiscreteScheduler)
        with pytest.raises(InvalidInputError, match="diffusers scheduler class"):
            register_sampler("not_a_scheduler", dict)
    finally:
        SAMPLERS.pop("euler_a", None)


# -- deterministic samplers: convergence to the probability-flow ODE ------------------------------


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_deterministic_sampler_converges_to_the_ode(name: str, x_T: torch.Tensor, reference: torch.Tensor) -> None:
    errors = [rms(run(name, x_T, n), reference) for n in STEPS]
    assert all(a > b for a, b in itertools.pairwise(errors)), f"{name}: error does not decrease with steps: {errors}"
    assert errors[-1] < TOL_AT_1000[name], f"{name}: {errors[-1]:.2e} at 1000 steps"


@pytest.mark.parametrize("steps", [10, 50])
def test_euler_matches_ddim(steps: int, x_T: torch.Tensor) -> None:
    """Euler in σ is DDIM (Song et al. 2021, eq. 14) once both start from the same x_T (see _init_noise_scale)."""
    torch.testing.assert_close(run("euler", x_T, steps), run("ddim", x_T, steps), atol=1e-5, rtol=0)


def test_dpmpp_beats_ddim_at_10_steps(x_T: torch.Tensor, reference: torch.Tensor) -> None:
    """DPM-Solver++(2M) beats DDIM at 10 steps, overall and on the ODE part proper.

    Both end with the same first-order jump ``x0 = D(x̃, σ_99)`` (trailing, t_last = 99),
    which dominates the overall error (1.03e-1 vs 1.15e-1). Measured against the
    exact ODE to σ_99 followed by that same jump, the solvers' own error is
    2.4e-2 (DPM++) vs 5.8e-2 (DDIM).
    """
    dpm, ddim = run("dpmpp_2m", x_T, 10), run("ddim", x_T, 10)
    assert rms(dpm, reference) < rms(ddim, reference) < 0.12
    sigma_last = SIGMAS[99].item()
    best = posterior_mean(pf_ode(x_T, sigma_last, denoise_last=False), sigma_last)
    assert rms(dpm, best) < 0.5 * rms(ddim, best)
    assert rms(dpm, best) < 0.03


# -- the flow bridge ------------------------------------------------------------------------------


def test_flow_bridge_maps_flow_time_onto_vp_timesteps() -> None:
    bridge = VPFlowBridge(make_scheduler("flow_euler", SCHEDULER_CONFIG), SCHEDULER_CONFIG)
    bridge.set_timesteps(20)
    s = bridge.sigmas.double()[:-1]  # (20,) flow sigmas
    assert bridge.sigmas[-1] == 0 and len(bridge.timesteps) == 20
    assert bridge.timesteps[0].item() == pytest.approx(999, abs=1e-3)
    assert bridge.timesteps[-1].item() == pytest.approx(0, abs=1e-3)
    torch.testing.assert_close(sigma_at(bridge.timesteps), s / (1 - s), rtol=1e-5, atol=0)
    assert bridge.init_noise_sigma == pytest.approx(math.sqrt(1 + SIGMA_MAX**2) / (1 + SIGMA_MAX), rel=1e-5)


@pytest.mark.parametrize("prediction_type", ["v_prediction", "sample"])
def test_flow_bridge_converts_every_prediction_type(prediction_type: str, x_T: torch.Tensor) -> None:
    config = {**SCHEDULER_CONFIG, "prediction_type": prediction_type}
    out = run("flow_euler", x_T, 20, denoiser=gmm_denoiser(prediction_type), base_config=config)
    torch.testing.assert_close(out, run("flow_euler", x_T, 20), atol=1e-5, rtol=0)


def test_flow_bridge_refuses_a_shifted_schedule(x_T: torch.Tensor) -> None:
    with pytest.raises(InvalidInputError, match="shift"):
        run(FlowMatchEulerDiscreteScheduler(shift=3.0), x_T[:2], 5)


# -- stochastic samplers: the distribution --------------------------------------------------------


def mixture_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Fraction of samples nearest each component, sample mean, within-component std."""
    x = x.reshape(x.shape[0], -1).double()  # (N, 4)
    nearest = ((x[:, None] - MU[None]) ** 2).sum(-1).argmin(1)  # (N,)
    frac = torch.bincount(nearest, minlength=len(W)).double() / len(x)
    return frac, x.mean(0), (x - MU[nearest]).pow(2).mean().sqrt().item()


def test_ddpm_samples_the_mixture() -> None:
    """DDPM is stochastic (fresh noise each step), so it is tested on distribution, not against the ODE.

    4000 samples at 100 steps: component fractions within 0.03 of the weights
    (measured 0.007; 4 binomial std = 0.03), sample mean within 0.05 (measured
    0.012). Few-step DDPM with "fixed_small" variance is under-dispersed (within-
    component std 0.269 at 100 steps); 2000 samples at 1000 steps give 0.292,
    asserted within 0.015 of S (fractions 0.016 off, asserted < 0.04).
    """
    x = torch.randn(4000, 4, 1, 1, generator=torch.Generator().manual_seed(1))
    frac, mean, _ = mixture_stats(run("ddpm", x, 100, generator=torch.Generator().manual_seed(2)))
    assert (frac - W).abs().max() < 0.03 and (mean - MEAN).abs().max() < 0.05
    frac, mean, std = mixture_stats(run("ddpm", x[:2000], 1000, generator=torch.Generator().manual_seed(3)))
    assert (frac - W).abs().max() < 0.04 and abs(std - S) < 0.015


def test_lcm_on_distribution() -> None:
    """LCM is stochastic too, and exact only for a consistency-distilled model (Luo et al. 2023).

    With an exact *denoiser* each LCM step replaces x_t by ``E[x0 | x_t]`` and re-
    noises it. One step returns ``E[x0 | x_T]``: its average is the data mean
    (tower rule; measured 5e-4 off, asserted < 0.01) while every sample sits near
    that mean (per-coordinate std 0.067, asserted < 0.1). At 4 steps the samples
    are biased towards the heaviest component: fractions 0.055 off, mean 0.056 off
    (0.06-0.07 over other seeds), asserted < 0.1: tolerances for this sampler's
    known bias, not for an exact sampler of the mixture.
    """
    x = torch.randn(4000, 4, 1, 1, generator=torch.Generator().manual_seed(1))
    one = run("lcm", x, 1, generator=torch.Generator().manual_seed(2)).reshape(4000, -1).double()
    assert (one.mean(0) - MEAN).abs().max() < 0.01 and one.std(0).max() < 0.1
    frac, mean, _ = mixture_stats(run("lcm", x, 4, generator=torch.Generator().manual_seed(2)))
    assert (frac - W).abs().max() < 0.1 and (mean - MEAN).abs().max() < 0.1


def test_stochastic_samplers_follow_the_generator(x_T: torch.Tensor) -> None:
    for name in ("ddpm", "lcm"):
        a, b = (run(name, x_T[:8], 4, generator=torch.Generator().manual_seed(s)) for s in (5, 5))
        c = run(name, x_T[:8], 4, generator=torch.Generator().manual_seed(6))
        assert torch.equal(a, b) and not torch.equal(a, c)


# -- SDEdit, inpainting and x0 predictions -------------------------------------------------------


@pytest.fixture(scope="module")
def labelled_init() -> tuple[torch.Tensor, torch.Tensor]:
    """256 clean mixture samples (B, 4, 1, 1) and the component each was drawn from."""
    labels = torch.multinomial(W.float(), 256, replacement=True, generator=torch.Generator().manual_seed(1))
    x = MU[labels] + S * torch.randn(256, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    return x.float().reshape(256, 4, 1, 1), labels


def test_sdedit_runs_the_tail_of_the_schedule_from_the_noised_init(x_T: torch.Tensor, labelled_init: tuple) -> None:
    """strength 0.5 of 10 trailing DDIM steps: the last 5 timesteps, the first input ``√ᾱ·x0 + √(1−ᾱ)·ε`` at t = 499."""
    init, _ = labelled_init
    seen: list[tuple[int, torch.Tensor]] = []

    def spy(x: torch.Tensor, t: torch.Tensor, cond: object) -> torch.Tensor:
        seen.append((int(t[0]), x))
        return gmm_eps(x, t)

    run("ddim", x_T, 10, denoiser=spy, init=init, strength=0.5)
    assert [t for t, _ in seen] == [499, 399, 299, 199, 99]
    a = _AC[499].float()
    torch.testing.assert_close(seen[0][1], a.sqrt() * init + (1 - a).sqrt() * x_T, atol=1e-6, rtol=0)


SDEDIT_TOL_AT_200 = {"ddim": 1.2e-2, "euler": 1.2e-2, "dpmpp_2m": 7e-3, "unipc": 7e-3, "heun": 7.5e-3, "flow_euler": 4e-3}


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_sdedit_converges_to_the_ode_from_the_noised_init(name: str, x_T: torch.Tensor, labelled_init: tuple) -> None:
    """Every sampler's SDEdit is the probability-flow ODE from ``x0 + σ·ε`` at its own start level.

    strength 0.5 of 200 steps starts at t = 499 (σ = 1.96) for the VP/VE samplers and
    at the flow bridge's half-way ``s`` (t = 329.9, σ = 0.923), whose sigmas are linear
    in ``s``. Measured RMS error at 10 / 50 / 200 steps: ddim = euler 1.08e-1 3.45e-2
    1.12e-2, dpmpp_2m 1.02e-1 2.64e-2 6.37e-3, unipc 1.02e-1 2.63e-2 6.59e-3, heun
    9.86e-2 2.61e-2 7.02e-3, flow_euler 1.18e-1 1.75e-2 3.53e-3.
    """
    init, _ = labelled_init
    if name == "flow_euler":
        bridge = VPFlowBridge(make_scheduler("flow_euler", SCHEDULER_CONFIG), SCHEDULER_CONFIG)
        bridge.set_timesteps(200)
        s = bridge.sigmas[100].double().item()
        sigma = s / (1 - s)
    else:
        sigma = SIGMAS[499].item()
    start = (init + sigma * x_T).reshape(256, 4).double()  # VE state
    reference = posterior_mean(ode(start, sigma, 1e-4), 1e-4)
    errors = [rms(run(name, x_T, n, init=init, strength=0.5), reference) for n in (10, 50, 200)]
    assert errors[0] > errors[1] > errors[2] and errors[2] < SDEDIT_TOL_AT_200[name], errors


def test_sdedit_strength_moves_away_from_the_init(x_T: torch.Tensor, labelled_init: tuple) -> None:
    """RMS distance of the result from the init at strength 0.1 / 0.3 / 0.6 / 1.0: measured 0.258 0.449 0.740 0.901."""
    init, _ = labelled_init
    d = [rms(run("ddim", x_T, 50, init=init, strength=st), init.reshape(256, 4).double()) for st in (0.1, 0.3, 0.6, 1.0)]
    assert d[0] < 0.3 and d[0] < d[1] < d[2] < d[3] and d[3] > 0.85, d


@pytest.mark.parametrize("name", ["ddim", "euler", "dpmpp_2m", "flow_euler"])
def test_inpainting_keeps_the_known_region_and_completes_the_rest(name: str, x_T: torch.Tensor, labelled_init: tuple) -> None:
    """Keep coordinates 0, 1 of each mixture sample and generate 2, 3 (mask 1 there).

    The kept half is reproduced exactly. The known half identifies the component
    (means ≥ 1.8 apart, std 0.3), so the generated half should come from it: the
    nearest component over all four coordinates is the true one for 98.8 % (ddim,
    euler, dpmpp_2m) / 99.2 % (flow_euler), and the generated coordinates sit
    0.37-0.40 RMS from that component's mean (its std is 0.3; RePaint without
    resampling is known to harmonise imperfectly).
    """
    init, labels = labelled_init
    mask = torch.tensor([0.0, 0.0, 1.0, 1.0]).reshape(1, 4, 1, 1)
    out = run(name, x_T, 50, init=init, mask=mask)
    assert torch.equal(out[:, :2], init[:, :2])
    o = out.reshape(256, 4).double()
    nearest = ((o[:, None] - MU[None]) ** 2).sum(-1).argmin(1)
    assert (nearest == labels).double().mean() > 0.97
    assert rms(o[:, 2:], MU[labels][:, 2:]) < 0.45


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_x0_predictions_are_the_posterior_means(prediction_type: str, x_T: torch.Tensor) -> None:
    """With the exact denoiser every x̂0 is ``E[x0 | x_t]``, whatever the model predicts; DDIM's last one is its result.

    (5 trailing steps end at t = 199, whose DDIM step lands on ᾱ = 1; 6 would end at t = 166 → ᾱ_0.)
    """
    config = {**SCHEDULER_CONFIG, "prediction_type": prediction_type}
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    den = gmm_denoiser(prediction_type)

    def spy(x: torch.Tensor, t: torch.Tensor, cond: object) -> torch.Tensor:
        seen.append((x, t))
        return den(x, t)

    final, trajectory, x0s = run("ddim", x_T[:32], 5, denoiser=spy, base_config=config, return_trajectory=True, return_x0=True)
    assert len(x0s) == len(trajectory) == 5 and torch.equal(trajectory[-1], final)
    for (x, t), x0 in zip(seen, x0s):
        sigma = sigma_at(t[:1]).item()
        want = posterior_mean(x.reshape(32, 4).double() * math.sqrt(1 + sigma**2), sigma)
        assert rms(x0, want) < 1e-5
    torch.testing.assert_close(x0s[-1], final, atol=1e-5, rtol=0)
    only_x0 = run("ddim", x_T[:32], 5, denoiser=den, base_config=config, return_x0=True)
    assert len(only_x0) == 2 and torch.equal(only_x0[0], final)


# -- the loop's contract --------------------------------------------------------------------------


def test_concurrent_calls_share_no_scheduler_state(x_T: torch.Tensor) -> None:
    """Two threads with one multistep scheduler instance give the sequential results."""
    shared = make_scheduler("dpmpp_2m", SCHEDULER_CONFIG)
    inputs = (x_T[:16], x_T[16:32])
    sequential = [run(shared, x, 15) for x in inputs]
    barrier = threading.Barrier(2)

    def slow(x: torch.Tensor, t: torch.Tensor, cond: object) -> torch.Tensor:
        time.sleep(1e-3)  # hand over the GIL mid-loop, so the two loops interleave
        return gmm_eps(x, t, cond)

    results: list[torch.Tensor | None] = [None, None]

    def worker(i: int) -> None:
        barrier.wait()
        results[i] = run(shared, inputs[i], 15, denoiser=slow)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for got, want in zip(results, sequential):
        assert got is not None and torch.equal(got, want)
    assert shared.num_inference_steps is None  # the caller's instance was never set up


def test_classifier_free_guidance_batches_and_combines() -> None:
    b, g = 3, 4.5
    x = torch.randn(b, 4, 2, 2, generator=torch.Generator().manual_seed(0))
    cond = torch.randn(b, 4, generator=torch.Generator().manual_seed(1))
    uncond = torch.zeros(b, 4)
    calls: list[torch.Tensor] = []

    def toy(x: torch.Tensor, t: torch.Tensor, c: torch.Tensor) -> torch.Tensor:  # x: (N, 4, 2, 2)
        calls.append(c)
        return 0.1 * x + c[:, :, None, None] * (1 + t[:, None, None, None] / 1000)

    def guided_by_hand(x: torch.Tensor, t: torch.Tensor, _: object) -> torch.Tensor:
        u, c = 0.1 * x + uncond[:, :, None, None] * (1 + t[:, None, None, None] / 1000), toy(x, t, cond)
        return u + g * (c - u)

    want = sample(guided_by_hand, "ddim", x, steps=5, progress=False)
    calls.clear()
    got = sample(toy, "ddim", x, steps=5, cond=(cond, uncond), guidance=g, progress=False)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-6)
    assert len(calls) == 5 and all(torch.equal(c, torch.cat([cond, uncond])) for c in calls)


@pytest.mark.parametrize(("name", "calls"), [("ddim", 6), ("heun", 11)])
def test_callback_and_trajectory(name: str, calls: int, x_T: torch.Tensor) -> None:
    seen: list[tuple[int, float, torch.Tensor]] = []
    final, trajectory = sample(
        gmm_eps,
        name,
        x_T[:4],
        steps=6,
        progress=False,
        callback=lambda i, t, x: seen.append((i, float(t), x)),
        return_trajectory=True,
    )
    assert [i for i, _, _ in seen] == list(range(calls)) and len(trajectory) == calls
    assert seen[0][1] == 999 and torch.equal(trajectory[-1], final) and torch.equal(seen[-1][2], final)
    assert torch.equal(final, run(name, x_T[:4], 6))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"steps": 0}, InvalidInputError, "positive int"),
        ({"steps": -1}, InvalidInputError, "positive int"),
        ({"steps": 2.5}, InvalidInputError, "positive int"),
        ({"steps": True}, InvalidInputError, "positive int"),
        ({"steps": 1001}, InvalidInputError, "num_train_timesteps=1000"),
        ({"scheduler": "dpm++"}, UnknownNameError, "choose one of .*ddim.*dpmpp_2m"),
        ({"scheduler": 3}, InvalidInputError, "sampler name"),
        ({"scheduler": "lcm", "steps": 51}, InvalidInputError, "original_inference_steps=50"),
        ({"latents": torch.randn(2, 4, 8)}, InvalidInputError, "4-D float tensor"),
        ({"latents": torch.ones(2, 4, 1, 1, dtype=torch.long)}, InvalidInputError, "4-D float tensor"),
        ({"guidance": 3.0}, InvalidInputError, r"cond=\(cond, uncond\)"),
        ({"cond": (torch.ones(2, 4), torch.zeros(2, 4))}, InvalidInputError, "needs guidance"),
        ({"cache": object()}, InvalidInputError, "context manager"),
        ({"strength": 0.5}, InvalidInputError, "need init"),
        ({"mask": torch.ones(2, 1, 1, 1)}, InvalidInputError, "need init"),
        ({"init": torch.zeros(2, 4, 2, 1)}, InvalidInputError, "shaped like latents"),
        ({"init": torch.zeros(2, 4, 1, 1), "strength": 0.0}, InvalidInputError, r"\(0, 1\]"),
        ({"init": torch.zeros(2, 4, 1, 1), "strength": 1.5}, InvalidInputError, r"\(0, 1\]"),
        ({"init": torch.zeros(2, 4, 1, 1), "strength": True}, InvalidInputError, r"\(0, 1\]"),
        ({"init": torch.zeros(2, 4, 1, 1), "strength": 0.1}, InvalidInputError, "leaves no step of 5"),
        ({"init": torch.zeros(2, 4, 1, 1), "mask": torch.ones(3, 1, 1, 1)}, InvalidInputError, "broadcastable"),
        ({"init": torch.zeros(2, 4, 1, 1), "mask": torch.ones(2, 4)}, InvalidInputError, "4-D float"),
        ({"init": torch.zeros(2, 4, 1, 1), "mask": torch.full((2, 1, 1, 1), 2.0)}, InvalidInputError, r"\[0, 1\]"),
        ({"return_x0": True, "base_config": {**SCHEDULER_CONFIG, "prediction_type": "flow"}}, InvalidInputError, "in \\("),
    ],
)
def test_bad_inputs_raise_typed_errors(kwargs: dict, error: type[Exception], match: str) -> None:
    args = {"scheduler": "ddim", "latents": torch.randn(2, 4, 1, 1), "steps": 5, **kwargs}
    with pytest.raises(error, match=match):
        sample(gmm_eps, args.pop("scheduler"), args.pop("latents"), progress=False, **args)


# -- diffusers models and caches ------------------------------------------------------------------


def test_diffusers_models_are_called_directly() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    blocks = dict(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(8, 8), layers_per_block=1)
    unet = UNet2DModel(
        **blocks, down_block_types=("DownBlock2D",) * 2, up_block_types=("UpBlock2D",) * 2, norm_num_groups=4, num_class_embeds=3
    ).eval()
    labels = torch.tensor([0, 2])
    by_hand = sample(lambda x, t, c: unet(x, t, class_labels=c).sample, "ddim", x, steps=3, cond=labels, progress=False)
    assert torch.equal(sample(unet, "ddim", x, steps=3, cond=labels, progress=False), by_hand)

    text_unet = UNet2DConditionModel(
        **blocks,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        norm_num_groups=4,
        cross_attention_dim=8,
        attention_head_dim=2,
    ).eval()
    text, empty = torch.randn(2, 3, 8), torch.zeros(2, 3, 8)

    def text_by_hand(x: torch.Tensor, t: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return text_unet(x, t, encoder_hidden_states=c).sample

    got = sample(text_unet, "dpmpp_2m", x, steps=3, cond=(text, empty), guidance=2.0, progress=False)
    want = sample(text_by_hand, "dpmpp_2m", x, steps=3, cond=(text, empty), guidance=2.0, progress=False)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    with pytest.raises(InvalidInputError, match="encoder_hidden_states"):
        sample(text_unet, "ddim", x, steps=2, progress=False)


class CacheMixinLike:
    """A denoiser with diffusers ``CacheMixin``'s context API, recording what the loop does."""

    def __init__(self) -> None:
        self.contexts: list[tuple[str, dict]] = []
        self.active: str | None = None
        self.resets = 0

    @contextmanager
    def cache_context(self, name: str, **where: object):
        self.contexts.append((name, where))
        self.active = name
        try:
            yield
        finally:
            self.active = None

    def _reset_stateful_cache(self) -> None:
        self.resets += 1

    def __call__(self, x: torch.Tensor, t: torch.Tensor, cond: object) -> torch.Tensor:
        assert self.active is not None, "model called outside cache_context"
        return gmm_eps(x, t)


def test_cache_contexts_wrap_every_model_call(x_T: torch.Tensor) -> None:
    model = CacheMixinLike()
    run("euler", x_T[:4], 5, denoiser=model)
    assert [name for name, _ in model.contexts] == ["cond"] * 5 and model.resets == 1
    assert [w["step_index"] for _, w in model.contexts] == list(range(5))
    assert model.contexts[0][1]["num_inference_steps"] == 5
    assert model.contexts[0][1]["sigma"] == pytest.approx(SIGMA_MAX, rel=1e-5)

    guided = CacheMixinLike()
    cond = (torch.ones(4, 1), torch.zeros(4, 1))
    run("ddim", x_T[:4], 3, denoiser=guided, cond=cond, guidance=2.0)
    assert [name for name, _ in guided.contexts] == ["cond_uncond"] * 3 and guided.resets == 1


def test_generic_cache_is_held_around_the_whole_loop(x_T: torch.Tensor) -> None:
    events: list[str] = []

    class Cache:
        def __enter__(self) -> Cache:
            events.append("enter")
            return self

        def __exit__(self, *exc: object) -> None:
            events.append("exit")

    def denoiser(x: torch.Tensor, t: torch.Tensor, cond: object) -> torch.Tensor:
        events.append("call")
        return gmm_eps(x, t)

    run("unipc", x_T[:4], 4, denoiser=denoiser, cache=Cache())
    assert events == ["enter"] + ["call"] * 4 + ["exit"]


def test_scheduler_instances_are_accepted_and_left_untouched(x_T: torch.Tensor) -> None:
    euler, dpm = make_scheduler("euler", SCHEDULER_CONFIG), make_scheduler("dpmpp_2m", SCHEDULER_CONFIG)
    assert torch.equal(run(euler, x_T[:8], 10), run("euler", x_T[:8], 10))
    assert torch.equal(run(dpm, x_T[:8], 10), run("dpmpp_2m", x_T[:8], 10))
    assert euler.num_inference_steps is None and dpm.num_inference_steps is None
