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

from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from torch.utils.flop_counter import FlopCounterMode

from diffcore.bench.accel_variants import Variant, dit_variants, unet_variants
from diffcore.bench.report import Report
from diffcore.bench.timing import time_paired
from diffcore.cache import search
from diffcore.metrics import ms_ssim, psnr, relative_l2, ssim
from diffcore.prior.autoencode import decode
from diffcore.zoo import load_tinysd

EVAL_SEED, CALIB_SEED = 0, 1000


def _images(vae: torch.nn.Module, latents: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return (decode(vae, latents) + 1) / 2  # (B, 3, H, W) in [0, 1]


def _mosaic(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) -> (1, 3, r·H, r·W) with r = √B (B a square)."""
    r = round(x.shape[0] ** 0.5)
    _b, c, h, w = x[: r * r].shape
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
        vs, artifacts = unet_variants(sd, sampler, steps, noise, calib, full_suite=(i == 0 and not cuda), evolve=evolve)
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
    groups[dit_title] = _measure(sd.vae, dit_variants(*runs[0], noise, calib, sd.scheduler_config), repeats=repeats)
    report.table(dit_title, groups[dit_title])
    _pareto_plot(report.plot_path("pareto"), groups)
    report.image("Pareto plot", report.plot_path("pareto"), "Speed-up vs PSNR for every row above (dashed line: 30 dB).")
    return report.write()


def run_cuda(out_dir: str | Path, *, quick: bool = False, **kwargs: Any) -> Path:
    """``diffcore bench accel-cuda``: :func:`run` on ``device="cuda"``."""
    return run(out_dir, quick=quick, device="cuda", **kwargs)
