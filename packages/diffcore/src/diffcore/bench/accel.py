"""``diffcore bench accel``: every cache and quantizer on tinysd (and tinydit), with peers, in one run.

Each row samples the same seeds with the same sampler as the full-compute row
and reports, against it: wall-clock ratio (paired and interleaved, median of
per-repeat ratios), FLOP ratio (``torch.utils.flop_counter`` over the whole
run), the fraction of UNet blocks computed, and the error — latent relative
L2, and PSNR / SSIM of the decoded images (MS-SSIM over the mosaic of all
images, since one 64-px image is below MS-SSIM's 176-px minimum). Peers run in
the same process: the ``DeepCache`` package from PyPI on tinysd itself, and
diffusers' own FirstBlockCache and TaylorSeer on tinydit. Schedules are searched
and quantizers calibrated on calibration seeds disjoint from the evaluation
seeds. Fake-quant rows (W8A8, W4A8) simulate integer arithmetic in float, so
their wall-clock is not a speed claim; the ``int8`` rows run real int8 kernels.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from diffcore import cache  # noqa: E402
from diffcore.bench.report import Report  # noqa: E402
from diffcore.bench.timing import time_paired  # noqa: E402
from diffcore.cache import search  # noqa: E402
from diffcore.metrics import ms_ssim, psnr, relative_l2, ssim  # noqa: E402
from diffcore.prior.autoencode import decode  # noqa: E402
from diffcore.sampling import make_scheduler, sample  # noqa: E402
from diffcore.zoo import load_tinysd  # noqa: E402

EVAL_SEED, CALIB_SEED = 0, 1000
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


def _images(vae: torch.nn.Module, latents: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return (decode(vae, latents) + 1) / 2  # (B, 3, H, W) in [0, 1]


def _mosaic(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) -> (1, 3, r·H, r·W) with r = √B (B a square)."""
    r = int(round(x.shape[0] ** 0.5))
    b, c, h, w = x[: r * r].shape
    return x[: r * r].view(r, r, c, h, w).permute(2, 0, 3, 1, 4).reshape(1, c, r * h, r * w)


def _quality(vae: torch.nn.Module, out: torch.Tensor, ref: torch.Tensor, ref_img: torch.Tensor) -> dict[str, Any]:
    img = _images(vae, out).cpu()
    out, ref = out.cpu(), ref.cpu()
    m_img, m_ref = _mosaic(img), _mosaic(ref_img)
    return {
        "latent rel. L2": float(relative_l2(out, ref).mean()),
        "PSNR dB": float(psnr(img, ref_img).clamp(max=99).mean()),
        "SSIM": float(ssim(img, ref_img).mean()),
        "MS-SSIM (mosaic)": float(ms_ssim(m_img, m_ref)) if min(m_img.shape[-2:]) >= 176 else "n/a",
    }


def _count(fn: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, int]:
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        out = fn()
    return out, int(counter.get_total_flops())


def _measure(vae: torch.nn.Module, variants: list[Variant], *, repeats: int) -> list[dict[str, Any]]:
    """Run every variant once (outputs, FLOPs), then time them all paired against the first."""
    results = {}
    for v in variants:
        out, flops = _count(v.run)
        results[v.name] = (out, flops)
    ref, ref_flops = results[variants[0].name]
    ref_img = _images(vae, ref).cpu()
    sync = torch.cuda.synchronize if ref.is_cuda else None
    timing = time_paired({v.name: v.run for v in variants}, baseline=variants[0].name, repeats=repeats, warmup=1, sync=sync)
    rows = []
    for v in variants:
        out, flops = results[v.name]
        t = timing[v.name]
        rows.append(
            {
                "variant": v.name,
                "kind": v.kind,
                "speed-up": t.speedup,
                "time ratio IQR": f"{t.ratio_iqr[0]:.3f}–{t.ratio_iqr[1]:.3f}",
                # FlopCounterMode does not see quantized kernels: an int8 row's count would be meaningless
                "FLOP ratio": "n/a" if v.kind == "int8" else flops / ref_flops,
                "blocks computed": v.frac[0] if v.frac else "n/a",
                **_quality(vae, out, ref, ref_img),
                "seconds": t.seconds,
                "note": v.note,
            }
        )
    return rows


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


def _unet_variants(
    sd: Any, sampler: str, steps: int, noise: torch.Tensor, calib: torch.Tensor, *, full_suite: bool, evolve: dict
):
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


def _dit_variants(sampler: str, steps: int, noise: torch.Tensor, calib: torch.Tensor, cfg: dict) -> list[Variant]:
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


def _pareto_plot(path: Path, groups: dict[str, list[dict[str, Any]]]) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    markers = {"cache": "o", "peer": "x", "search": "D", "quant": "s", "int8": "v", "cache+quant": "^", "peer (diffusers)": "P"}
    for gi, (title, rows) in enumerate(groups.items()):
        for r in rows:
            if r["kind"] == "baseline":
                continue
            ax.scatter(min(r["PSNR dB"], 60), r["speed-up"], marker=markers.get(r["kind"], "o"), color=f"C{gi}", alpha=0.8)
            ax.annotate(r["variant"], (min(r["PSNR dB"], 60), r["speed-up"]), fontsize=5, alpha=0.8)
        ax.scatter([], [], color=f"C{gi}", label=title)
    ax.axhline(1.0, color="grey", lw=0.5)
    ax.axvline(30.0, color="grey", lw=0.5, ls="--")
    ax.set(xlabel="PSNR vs full compute (dB, capped at 60)", ylabel="wall-clock speed-up", title="Speed-up vs fidelity")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def _search_plot(path: Path, unet: torch.nn.Module, artifacts: dict[str, Any]) -> list[dict[str, Any]]:
    """FLOPs vs calibration error: uniform DeepCache, the DP schedule and the evolved front."""
    prof = artifacts["profile"]
    n = prof.num_calls
    rows = []
    for interval in (2, 3, 4, 5, 6, 8):
        mask = search.uniform_mask(n, interval)
        k = sum(mask)
        dp = search.dp_schedule(prof, k)
        rows.append(
            {
                "uniform N": interval,
                "recomputes": k,
                "FLOP ratio": prof.flops_ratio(mask),
                "uniform error": search.schedule_error(unet, prof, mask),
                "DP error": search.schedule_error(unet, prof, dp.recompute),
            }
        )
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([r["FLOP ratio"] for r in rows], [r["uniform error"] for r in rows], "o-", label="uniform DeepCache")
    ax.plot([r["FLOP ratio"] for r in rows], [r["DP error"] for r in rows], "D-", label="DP schedule")
    front = artifacts.get("front", [])
    if front:
        ax.plot([s.meta["flops_ratio"] for s in front], [s.meta["error"] for s in front], "^--", label="evolved Pareto front")
    ax.set(
        xlabel="FLOP ratio vs full compute", ylabel="latent rel. L2 (calibration seeds)", yscale="log", title="Schedule search"
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return rows


def run(out_dir: str | Path, *, quick: bool = False, command: str | None = None, device: str = "cpu") -> Path:
    """The benchmark; on ``device="cuda"`` the caches and schedules only (the quantizer rows are CPU rows).

    ``command``: the command line the report names (``diffcore bench`` passes it).
    """
    torch.manual_seed(0)
    sd = load_tinysd(device=device)  # raises a typed error when CUDA is asked for and absent
    cuda = sd.unet.device.type == "cuda"
    n_seeds = 4 if quick else 16
    g = torch.Generator().manual_seed(EVAL_SEED)
    noise = torch.randn(n_seeds, 4, 16, 16, generator=g).to(sd.unet.device)  # 64×64-px images
    calib = torch.randn(4, 4, 16, 16, generator=torch.Generator().manual_seed(CALIB_SEED)).to(sd.unet.device)
    repeats = 1 if quick else (10 if cuda else 5)
    name = "accel_cuda" if cuda else "accel"
    report = Report(
        name,
        "diffcore acceleration: caches, schedule search and quantization on tinysd" + (" (CUDA)" if cuda else ""),
        Path(out_dir),
        command=command,
        quick=quick,
        intro=__doc__.split("\n\n", 1)[1].strip()
        + f"\n\n{n_seeds} evaluation seeds (64×64 px, one batch), 4 calibration seeds; "
        + f"{repeats} timed repeats after one warm-up.",
    )
    runs = [("ddim", 20 if quick else 50), ("dpmpp_2m", 10 if quick else 20)]
    groups: dict[str, list[dict[str, Any]]] = {}
    search_rows = []
    for i, (sampler, steps) in enumerate(runs):
        evolve = {} if i else dict(population=6 if quick else 12, generations=1 if quick else 6, seed=0)
        vs, artifacts = _unet_variants(sd, sampler, steps, noise, calib, full_suite=(i == 0 and not cuda), evolve=evolve)
        title = f"tinysd UNet, {sampler} {steps} steps"
        groups[title] = _measure(sd.vae, vs, repeats=repeats)
        report.table(title, groups[title])
        if i == 0:
            search_rows = _search_plot(report.plot_path("search"), sd.unet, artifacts)
    report.table(
        "Schedule search (calibration seeds, " + f"{runs[0][0]} {runs[0][1]} steps)",
        search_rows,
        "Same number of recomputes: uniform DeepCache vs the DP schedule; error is the final-latent relative L2.",
    )
    report.image("Schedule search plot", report.plot_path("search"))
    dit_title = f"tinydit (DiT), {runs[0][0]} {runs[0][1]} steps"
    groups[dit_title] = _measure(sd.vae, _dit_variants(*runs[0], noise, calib, sd.scheduler_config), repeats=repeats)
    report.table(dit_title, groups[dit_title])
    _pareto_plot(report.plot_path("pareto"), groups)
    report.image("Pareto plot", report.plot_path("pareto"), "Speed-up vs PSNR for every row above (dashed line: 30 dB).")
    return report.write()


def run_cuda(out_dir: str | Path, *, quick: bool = False, **kwargs: Any) -> Path:
    """``diffcore bench accel-cuda``: :func:`run` on ``device="cuda"``."""
    return run(out_dir, quick=quick, device="cuda", **kwargs)
