"""The rows of ``diffcore bench accel``: every cache, searched schedule and quantizer, configured on tinysd and tinydit.

Each :class:`Variant` samples the evaluation seeds once per call; caches are
applied to their own copy of the model outside the timed call, and schedules
are searched and quantizers calibrated on the calibration seeds only. The
measuring (timing, FLOPs, error) is :mod:`diffcore.bench.accel`'s.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import torch

from diffcore import cache
from diffcore.cache import search
from diffcore.sampling import make_scheduler, sample

#: activation scales per group of timesteps (Q-Diffusion), for every fake-quant row
TIMESTEP_GROUPS = 4


@dataclass
class Variant:
    """One row: ``run()`` samples the evaluation seeds and returns the final latents."""

    name: str
    run: Callable[[], torch.Tensor]
    kind: str = "cache"
    frac: list[float] | None = None  # fraction of UNet blocks computed: filled by our UNet caches; None: not measured
    note: str = ""


def _cached(
    model: torch.nn.Module,
    config: Any,
    run: Callable[[torch.nn.Module], Callable[[], torch.Tensor]],
    frac: list[float],
    *,
    own: bool = False,
) -> Callable[[], torch.Tensor]:
    """Sampling with ``config`` applied, once, to a copy of ``model`` (``own``: to ``model`` itself).

    Applying happens outside the timed call (a searched schedule hashes the
    weights when applied); each run opens its own cache session, as in serving.
    """
    target = model if own else copy.deepcopy(model)
    handle = cache.apply(target, config)
    fn = run(target)

    def timed() -> torch.Tensor:
        out = fn()
        log = handle.last_state.log if handle.last_state is not None else []
        if log and hasattr(target, "down_blocks"):
            frac[:] = [cache.fraction_computed(target, log)]
        return out

    return timed


def _deepcache_pkg(unet: torch.nn.Module, sampler: str, steps: int, cfg: dict, noise: torch.Tensor, interval: int, branch: int):
    """The PyPI ``DeepCache`` package's own helper driving a copy of tinysd (it needs only ``.unet`` and ``.scheduler``).

    Enabled once, like ours; its uniform schedule restarts at the first
    timestep of every run, so consecutive runs are independent.
    """
    from DeepCache import DeepCacheSDHelper

    copy_unet = copy.deepcopy(unet)
    sched = make_scheduler(sampler, cfg)
    sched.set_timesteps(steps, device=noise.device)
    helper = DeepCacheSDHelper(pipe=SimpleNamespace(unet=copy_unet, scheduler=sched))
    helper.set_params(cache_interval=interval, cache_branch_id=branch)
    helper.enable()
    return lambda: sample(lambda x, t, c: copy_unet(x, t[0]).sample, sched, noise, steps=steps, progress=False, base_config=cfg)


def _int8_variant(
    model: torch.nn.Module,
    calib: torch.Tensor,
    run: Callable[[torch.nn.Module], Callable[[], torch.Tensor]],
    *,
    max_rel_err: float,
    timesteps: tuple[int, ...],
) -> tuple[torch.nn.Module, Variant]:
    """``torch.ao`` dynamic int8 of ``model``'s Linear layers, probed at ``timesteps`` on two calibration latents."""
    from diffcore.quant import int8_dynamic

    x = calib[:2]

    def probe(m: torch.nn.Module) -> torch.Tensor:
        return torch.cat([m(x, torch.full((2,), t)).sample for t in timesteps])

    i8, rep = int8_dynamic(model, probe, max_rel_err=max_rel_err)
    note = f"{len(rep.int8)} Linear int8, {len(rep.kept_float)} kept float"
    return i8, Variant("int8 dynamic (torch.ao, real)", run(i8), kind="int8", frac=[1.0], note=note)


def unet_variants(sd: Any, sampler: str, steps: int, noise: torch.Tensor, calib: torch.Tensor, *, full_suite: bool, evolve: dict):
    """The variants on tinysd's UNet for one sampler; also returns the search artifacts for the plot."""
    from diffcore.quant import QuantConfig, quantize

    unet, cfg = sd.unet, sd.scheduler_config

    def run(model: torch.nn.Module, x: torch.Tensor = noise) -> Callable[[], torch.Tensor]:
        return lambda: sample(model, sampler, x, steps=steps, progress=False, base_config=cfg)

    vs = [Variant("full compute", run(unet), kind="baseline", frac=[1.0])]
    for n in (2, 3, 5):
        f: list[float] = []
        vs.append(Variant(f"DeepCache N={n} (ours)", _cached(unet, cache.DeepCacheConfig(interval=n), run, f), frac=f))
        vs.append(
            Variant(f"DeepCache N={n} (PyPI DeepCache)", _deepcache_pkg(unet, sampler, steps, cfg, noise, n, 0), kind="peer")
        )
    f = []
    vs.append(
        Variant(
            "DeepCache N=3 quadratic",
            _cached(unet, cache.DeepCacheConfig(interval=3, schedule="quadratic"), run, f),
            frac=f,
        )
    )
    f = []
    vs.append(Variant("Faster Diffusion enc. prop.", _cached(unet, cache.EncoderPropagationConfig(), run, f), frac=f))

    # schedule search on calibration seeds
    cal = search.Calibration(sampler, steps, calib, base_config=cfg)
    prof = search.profile(unet, cal, cache.DeepCacheConfig(branch=0))
    n_calls = prof.num_calls
    k3 = sum(search.uniform_mask(n_calls, 3))
    dp = search.dp_schedule(prof, k3)
    f = []
    vs.append(Variant(f"DP schedule K={k3} (=N=3 FLOPs)", _cached(unet, dp, run, f), frac=f, kind="search"))
    dpc = search.fit_correction(prof, dp)
    f = []
    vs.append(Variant(f"DP K={k3} + ERTACache corr.", _cached(unet, dpc, run, f), frac=f, kind="search"))
    artifacts: dict[str, Any] = {"profile": prof}
    if evolve:
        front = search.evolve_schedules(unet, prof, **evolve)
        artifacts["front"] = front
        uni3 = prof.flops_ratio(search.uniform_mask(n_calls, 3))
        uni5 = prof.flops_ratio(search.uniform_mask(n_calls, 5))
        for label, budget in (("N=3", uni3), ("N=5", uni5)):
            fits = [s for s in front if s.meta["flops_ratio"] <= budget + 1e-9]
            if fits:
                best = min(fits, key=lambda s: s.meta["error"])
                f = []
                vs.append(
                    Variant(
                        f"evolved, ≤ {label} FLOPs",
                        _cached(unet, best, run, f),
                        frac=f,
                        kind="search",
                        note=f"{sum(best.recompute)} recomputes",
                    )
                )
    if not full_suite:
        return vs, artifacts

    def calibrate(model: torch.nn.Module) -> Callable[[], Any]:
        return lambda: sample(model, sampler, calib, steps=steps, progress=False, base_config=cfg)

    for wb in (8, 4):
        q = copy.deepcopy(unet)
        qc = QuantConfig(weight_bits=wb, act_bits=8, timestep_groups=TIMESTEP_GROUPS)
        quantize(q, qc, calibrate=calibrate(q))
        vs.append(Variant(f"W{wb}A8 fake-quant", run(q), kind="quant", frac=[1.0], note="simulated: time not a speed claim"))
    # cache + quant: calibrated on full-compute trajectories (naive) vs on cached ones (joint, CacheQuant)
    dc3 = cache.DeepCacheConfig(interval=3)
    for wb in (8, 4):
        naive = copy.deepcopy(unet)
        quantize(naive, QuantConfig(weight_bits=wb, act_bits=8, timestep_groups=TIMESTEP_GROUPS), calibrate=calibrate(naive))
        joint = copy.deepcopy(unet)
        with cache.apply(joint, dc3):
            quantize(joint, QuantConfig(weight_bits=wb, act_bits=8, timestep_groups=TIMESTEP_GROUPS), calibrate=calibrate(joint))
        for label, model in (("naive", naive), ("joint", joint)):
            f = []
            vs.append(
                Variant(f"DeepCache N=3 + W{wb}A8 {label}", _cached(model, dc3, run, f, own=True), frac=f, kind="cache+quant")
            )
    vs.append(_int8_variant(unet, calib, run, max_rel_err=0.01, timesteps=(900, 500))[1])
    return vs, artifacts


def dit_variants(sampler: str, steps: int, noise: torch.Tensor, calib: torch.Tensor, cfg: dict) -> list[Variant]:
    """tinydit: diffusers' own DiT caches (peers) and our TeaCache, full compute and int8 (Linear-heavy)."""
    from diffcore.cache.dit import dit_cache_suite
    from diffcore.cache.teacache import fit_teacache
    from diffcore.zoo import load_tinydit

    dit = load_tinydit(device=noise.device)

    def run(model: torch.nn.Module, x: torch.Tensor = noise) -> Callable[[], torch.Tensor]:
        return lambda: sample(model, sampler, x, steps=steps, progress=False, base_config=cfg)

    coefs = fit_teacache(dit, lambda m: sample(m, sampler, calib, steps=steps, progress=False, base_config=cfg))
    vs = [Variant("tinydit full compute", run(dit), kind="baseline", frac=[1.0])]
    suite = dit_cache_suite(dit, steps=steps, teacache_coefficients=coefs)
    for name, conf in suite.items():
        kind = "cache" if "TeaCache" in name else "peer (diffusers)"
        vs.append(Variant(name, _cached(dit, conf, run, []), kind=kind))
    if noise.is_cuda:  # torch.ao's dynamic int8 kernels are CPU kernels
        return vs
    i8, row = _int8_variant(dit, calib, run, max_rel_err=0.02, timesteps=(900, 500, 100))
    vs.append(row)
    tea = next(name for name in suite if name.startswith("TeaCache"))
    vs.append(Variant(f"int8 + {tea}", _cached(i8, suite[tea], run, []), kind="int8"))
    return vs
