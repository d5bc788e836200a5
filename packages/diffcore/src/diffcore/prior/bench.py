"""``diffcore bench prior``: how good the shipped tinysd is at its two jobs, on holdout photos.

1. Autoencoder: full-resolution reconstructions of the holdout photos (never
   trained on) against bicubic ×4 down/up-sampling, the no-learning reference
   with the same ×4 spatial reduction: PSNR, MS-SSIM and the mean CIEDE2000
   colour error ΔE, per photo, the versions side by side (see
   ``diffcore.prior.reconstruction``), with a figure of the photos.
2. Denoiser: ε-prediction MSE on holdout latents across timesteps, against the
   no-skill baseline (the best denoiser that only knows latents have unit
   variance); each version on its own autoencoder's latents.
3. Decode time of a 512×512 image (median of repeats; with several versions,
   paired and interleaved against the first).
4. Samplers: every registered sampler on the same noise with the last version,
   timed paired and interleaved against DDIM-50, with FLOPs and the latent
   distance to a reference solution of the probability-flow ODE (DPM-Solver++
   at 250 steps).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from diffusers import AutoencoderKL

from diffcore.bench import PairedTiming, Report, count_flops, time_paired
from diffcore.data import load_pool, to_tensor
from diffcore.errors import InvalidInputError
from diffcore.metrics import relative_l2
from diffcore.prior.autoencode import decode, encode
from diffcore.prior.evaluate import evaluate_denoiser
from diffcore.prior.generate import initial_noise
from diffcore.prior.reconstruction import autoencode, bicubic_x4, fidelity
from diffcore.sampling import SAMPLERS, sample
from diffcore.zoo import AUTOENCODER_NAMES, TINYSD_NAMES, TinySD, load_autoencoder, load_tinysd

#: (sampler, steps) rows of the sampler table; the first is the timing baseline
SAMPLER_RUNS = [
    ("ddim", 50),
    ("ddim", 20),
    ("ddim", 10),
    ("dpmpp_2m", 20),
    ("dpmpp_2m", 10),
    ("unipc", 10),
    ("euler", 30),
    ("heun", 15),
    ("flow_euler", 30),
    ("ddpm", 50),
    ("lcm", 4),
]
#: the goals of issue 14 for every version's autoencoder
PSNR_MARGIN_DB, PSNR_WORST_DB, MS_SSIM_GOAL = 1.0, 0.5, 0.965
#: the side of the decode-time crop
DECODE_SIDE = 512


def _autoencoder(models: dict[str, AutoencoderKL], photos: list) -> tuple[list[dict[str, Any]], dict[str, list[np.ndarray]]]:
    """Per-photo rows (bicubic, then each version) plus a mean row; and the images for the figure."""
    rows, shown = [], {"original": [], "bicubic ×4": [], **{v: [] for v in models}}
    for im in photos:
        bic = bicubic_x4(im.pixels)
        f = fidelity(im.pixels, bic)
        row: dict[str, Any] = {"photo": im.name, "size": f"{im.pixels.shape[1]}x{im.pixels.shape[0]}"}
        row.update({"bicubic ×4 PSNR dB": f.psnr, "bicubic ×4 MS-SSIM": f.ms_ssim, "bicubic ×4 ΔE00": f.delta_e})
        shown["original"].append(im.pixels)
        shown["bicubic ×4"].append(bic)
        for v, m in models.items():
            rec = autoencode(m, im.pixels)
            g = fidelity(im.pixels, rec)
            row.update({f"{v} PSNR dB": g.psnr, f"{v} − bicubic dB": g.psnr - f.psnr, f"{v} MS-SSIM": g.ms_ssim})
            row[f"{v} ΔE00"] = g.delta_e
            shown[v].append(rec)
        rows.append(row)
    mean: dict[str, Any] = {"photo": "**mean**", "size": ""}
    mean.update({k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k not in mean})
    return [*rows, mean], shown


def _autoencoder_goals(report: Report, rows: list[dict[str, Any]], versions: Sequence[str]) -> None:
    """Issue 14's autoencoder goals for each version, from :func:`_autoencoder`'s rows."""
    per_photo, mean = rows[:-1], rows[-1]
    for v in versions:
        margin = mean[f"{v} − bicubic dB"]
        report.goal(
            f"{v}: mean PSNR ≥ bicubic ×4 + {PSNR_MARGIN_DB} dB",
            f"{mean[f'{v} PSNR dB']:.2f} vs {mean['bicubic ×4 PSNR dB']:.2f} dB ({margin:+.2f})",
            margin >= PSNR_MARGIN_DB,
        )
        worst = min(per_photo, key=lambda r: r[f"{v} − bicubic dB"])
        report.goal(
            f"{v}: no holdout photo more than {PSNR_WORST_DB} dB below bicubic ×4",
            f"worst {worst['photo']}: {worst[f'{v} − bicubic dB']:+.2f} dB",
            worst[f"{v} − bicubic dB"] >= -PSNR_WORST_DB,
        )
        worse = [r["photo"] for r in per_photo if r[f"{v} ΔE00"] >= r["bicubic ×4 ΔE00"]]
        report.goal(
            f"{v}: mean ΔE00 below bicubic ×4's on every photo",
            ", ".join(f"{r['photo']} {r[f'{v} ΔE00']:.2f} vs {r['bicubic ×4 ΔE00']:.2f}" for r in per_photo),
            not worse,
            f"not below on {', '.join(worse)}" if worse else "",
        )
        report.goal(f"{v}: mean MS-SSIM ≥ {MS_SSIM_GOAL}", f"{mean[f'{v} MS-SSIM']:.4f}", mean[f"{v} MS-SSIM"] >= MS_SSIM_GOAL)


def _colour_figure(path: Path, shown: dict[str, list[np.ndarray]], rows: list[dict[str, Any]]) -> None:
    """Originals beside bicubic ×4 and every version's reconstruction, one photo per row, ΔE00 in the titles."""
    cols, n = list(shown), len(rows) - 1
    fig, axes = plt.subplots(n, len(cols), figsize=(3.2 * len(cols), 2.6 * n), squeeze=False)
    for i in range(n):
        for j, c in enumerate(cols):
            ax = axes[i, j]
            ax.imshow(shown[c][i])
            ax.set_xticks([])
            ax.set_yticks([])
            err = "" if c == "original" else f"\nΔE00 {rows[i][f'{c} ΔE00']:.2f}, {rows[i][f'{c} PSNR dB']:.2f} dB"
            ax.set_title(f"{c}{err}", fontsize=8)
        axes[i, 0].set_ylabel(rows[i]["photo"], fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=60)  # photos: a PNG this size keeps the hue readable at ~0.5 MB
    plt.close(fig)


def _holdout_latent_crops(vae, photos: list, size: int = 32, per_image: int = 4, seed: int = 0) -> torch.Tensor:
    """Seeded random ``size``² crops of each photo's scaled latents (``per_image`` each)."""
    g = np.random.default_rng(seed)
    crops = []
    for im in photos:
        z = encode(vae, to_tensor(im.pixels)[None])[0]  # (C, h, w), scaled
        h, w = z.shape[-2:]
        for _ in range(per_image):
            top, left = g.integers(0, h - size + 1), g.integers(0, w - size + 1)
            crops.append(z[:, top : top + size, left : left + size])
    return torch.stack(crops)  # (N, C, size, size)


def _denoiser(report: Report, models: dict[str, TinySD], photos: list, per_image: int) -> None:
    """ε-MSE per t of every version against its no-skill baseline (the ratio is comparable across versions)."""
    ratios: dict[str, dict[int, float]] = {}
    rows: dict[int, dict[str, Any]] = {}
    n_crops = 0
    for v, m in models.items():
        lat = _holdout_latent_crops(m.vae, photos, per_image=per_image)
        n_crops = lat.shape[0]
        with torch.no_grad():
            d = evaluate_denoiser(m.unet, lat)
        ts = sorted({int(k.rsplit("t", 1)[1]) for k in d})
        ratios[v] = {t: d[f"eps_mse_t{t}"] / d[f"baseline_eps_mse_t{t}"] for t in ts}
        for t in ts:
            r = rows.setdefault(t, {"t": t})
            r.update({f"{v} ε-MSE": d[f"eps_mse_t{t}"], f"{v} no-skill ε-MSE": d[f"baseline_eps_mse_t{t}"]})
            r[f"{v} / no-skill"] = ratios[v][t]
    report.table(
        "Denoiser error on holdout latents",
        list(rows.values()),
        f"{n_crops} random 32×32 latent crops (128×128 px) of the holdout photos per version, each version on its own "
        "autoencoder's latents, one noise draw per t. The ratio to the no-skill baseline is comparable across versions.",
    )
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for i, (v, rs) in enumerate(ratios.items()):
        ax.plot(list(rs), [rows[t][f"{v} ε-MSE"] for t in rs], "o-", color=f"C{i}", label=f"{v} UNet")
        ax.plot(list(rs), [rows[t][f"{v} no-skill ε-MSE"] for t in rs], "s--", color=f"C{i}", alpha=0.5, label=f"{v} no-skill")
    ax.set(xlabel="timestep t", ylabel="ε-prediction MSE", yscale="log", title="Denoising error, holdout latents")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(report.plot_path("denoiser"), dpi=120)
    plt.close(fig)
    report.image("Denoiser error plot", report.plot_path("denoiser"))


def _decode_time(report: Report, models: dict[str, AutoencoderKL], photos: list, quick: bool) -> None:
    """Decode of one holdout crop (512×512 where a photo is that large); several versions are paired against the first."""
    photo = max(photos, key=lambda p: min(p.pixels.shape[:2])).pixels
    x = to_tensor(np.ascontiguousarray(photo[:DECODE_SIDE, :DECODE_SIDE]))[None]  # (1, 3, H, W)
    h, w = x.shape[-2:]
    with torch.no_grad():
        latents = {v: encode(m, x) for v, m in models.items()}
        jobs = {v: (lambda v=v: decode(models[v], latents[v])) for v in models}
        base = next(iter(models))
        repeats = 2 if quick else 10
        timing = time_paired(jobs, baseline=base, repeats=repeats, warmup=1)
    rows = []
    for v, t in timing.items():
        row: dict[str, Any] = {"version": v, "seconds (median)": t.seconds}
        if len(models) > 1:
            row.update({f"time / {base}": t.ratio, "ratio IQR": _iqr(t)})
        rows.append(row)
    note = f"Median of {repeats} decodes after one warm-up, on this run's machine."
    if len(models) > 1:
        note += f" Versions interleaved in this run; ratios are medians of the per-repeat ratios to {base}."
    report.table(f"Decode time, {w}×{h}", rows, note)


def _iqr(t: PairedTiming) -> str:
    return f"{t.ratio_iqr[0]:.3f}–{t.ratio_iqr[1]:.3f}"


def _samplers(report: Report, version: str, model: TinySD, quick: bool) -> None:
    """Every sampler on the same noise with ``model``: time and FLOPs against DDIM-50, distance to the ODE solution."""
    runs = SAMPLER_RUNS[:4] if quick else SAMPLER_RUNS
    noise = initial_noise(4, 128, seed=0, channels=model.unet.config.in_channels)  # (4, C, 32, 32)
    cfg = model.scheduler_config

    def job(name: str, steps: int):
        return lambda: sample(
            model.unet, name, noise, steps=steps, base_config=cfg, generator=torch.Generator().manual_seed(1), progress=False
        )

    jobs = {f"{n}@{s}": job(n, s) for n, s in runs}
    ref_steps = 50 if quick else 250
    reference = job("dpmpp_2m", ref_steps)()
    outputs = {k: f() for k, f in jobs.items()}
    timing = time_paired(jobs, baseline=f"{runs[0][0]}@{runs[0][1]}", repeats=2 if quick else 5, warmup=1)
    rows = []
    for (name, steps), key in zip(runs, jobs):
        spec = SAMPLERS[name]
        rows.append(
            {
                "sampler": name,
                "steps": steps,
                "time / DDIM-50": timing[key].ratio,
                "IQR": _iqr(timing[key]),
                "seconds (4 imgs)": timing[key].seconds,
                "GFLOPs (4 imgs)": count_flops(jobs[key]) / 1e9,
                "rel. L2 vs ODE ref": relative_l2(outputs[key], reference).mean().item() if spec.deterministic else "stochastic",
            }
        )
    report.table(
        f"Samplers ({version}, 4 images of 128×128, same noise)",
        rows,
        "Time ratios are medians of per-repeat ratios, interleaved in one process. "
        f"The ODE reference is DPM-Solver++ at {ref_steps} steps; stochastic samplers solve the reverse SDE instead.",
    )
    with torch.no_grad():
        strips = [((decode(model.vae, outputs[k]) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy() for k in jobs]
    grid = np.concatenate([np.concatenate(list(s), axis=1) for s in strips], axis=0)
    fig, ax = plt.subplots(figsize=(6, 1.5 * len(jobs)))
    ax.imshow(grid)
    ax.set_yticks([64 + 128 * i for i in range(len(jobs))], list(jobs))
    ax.set_xticks([])
    ax.set_title(f"{version} samples (same noise per column)")
    fig.tight_layout()
    fig.savefig(report.plot_path("samples"), dpi=72)
    plt.close(fig)
    report.image("Samples", report.plot_path("samples"))


def run(
    out_dir: str | Path, *, quick: bool = False, command: str | None = None, versions: Sequence[str] = AUTOENCODER_NAMES
) -> Path:
    """Write ``prior.md``, ``prior.json`` and the PNGs into ``out_dir``; returns the Markdown's path.

    ``versions``: the tinysd versions measured side by side (default: every shipped one,
    :data:`~diffcore.zoo.AUTOENCODER_NAMES`); the denoiser rows and the samplers need a version's UNet too
    (:data:`~diffcore.zoo.TINYSD_NAMES`), the samplers run on the last such version. A retired version's
    name raises :class:`~diffcore.errors.UnknownNameError`.
    ``quick``: fewer latent crops, repeats and samplers — a smoke run, not for reports.
    """
    if not versions:
        raise InvalidInputError(f"give at least one tinysd version; shipped: {', '.join(AUTOENCODER_NAMES)}")
    torch.manual_seed(0)
    models = {v: load_autoencoder(v) for v in versions}
    priors = {v: load_tinysd(v) for v in versions if v in TINYSD_NAMES}
    photos = load_pool("holdout")
    report = Report(
        "prior",
        "tinysd prior: autoencoder, denoiser and samplers on holdout photos, " + " vs ".join(models),
        Path(out_dir),
        command=command,
        quick=quick,
        intro=__doc__.split("\n\n", 1)[1].strip(),
    )

    ae_rows, shown = _autoencoder(models, photos)
    report.table(
        "Autoencoder reconstruction (holdout photos, full resolution)",
        ae_rows,
        "8-bit RGB against the original. Bicubic ×4: antialiased bicubic (float) to a quarter of each side and back; "
        "it keeps 3 values per 4×4 block, tinysd's latent 4. ΔE00: mean CIEDE2000 colour difference (lower is better).",
    )
    _autoencoder_goals(report, ae_rows, list(models))
    _colour_figure(report.plot_path("colour"), shown, ae_rows)
    report.image(
        "Holdout photos and reconstructions",
        report.plot_path("colour"),
        "Each holdout photo at full resolution: the original, bicubic ×4 and every version's reconstruction.",
    )

    if priors:
        _denoiser(report, priors, photos, per_image=1 if quick else 4)
    _decode_time(report, models, photos, quick)
    if priors:
        last = list(priors)[-1]
        _samplers(report, last, priors[last], quick)
    return report.write()
