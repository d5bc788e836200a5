"""``diffcore bench prior``: how good tinysd is at its two jobs, on holdout photos.

1. Autoencoder: PSNR / MS-SSIM of full-resolution reconstructions of the
   holdout photos (never trained on), against bicubic ×4 down/up-sampling as a
   no-learning reference at the same spatial grid.
2. Denoiser: ε-prediction MSE on holdout latents across timesteps, against the
   no-skill baseline (the best denoiser that only knows latents have unit
   variance).
3. Samplers: every registered sampler on the same noise, timed paired and
   interleaved against DDIM-50, with FLOPs and the latent distance to a
   reference solution of the probability-flow ODE (DPM-Solver++ at 250 steps).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from diffcore.bench import Report, count_flops, time_paired  # noqa: E402
from diffcore.data import load_pool, to_tensor  # noqa: E402
from diffcore.metrics import ms_ssim, psnr, relative_l2  # noqa: E402
from diffcore.prior.autoencode import decode, encode, reconstruct  # noqa: E402
from diffcore.prior.generate import initial_noise  # noqa: E402
from diffcore.prior.recipe import evaluate_denoiser  # noqa: E402
from diffcore.sampling import SAMPLERS, sample  # noqa: E402
from diffcore.zoo import load_tinysd  # noqa: E402

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


def _autoencoder_rows(vae) -> list[dict]:
    rows = []
    for im in load_pool("holdout"):
        x = to_tensor(im.pixels)[None]  # (1, 3, H, W)
        h, w = x.shape[-2:]
        rec = reconstruct(vae, x)
        small = F.interpolate(x, size=((h + 3) // 4, (w + 3) // 4), mode="bicubic", align_corners=False, antialias=True)
        bic = F.interpolate(small, size=(h, w), mode="bicubic", align_corners=False).clamp(-1, 1)
        a, r, b = (x + 1) / 2, (rec + 1) / 2, (bic + 1) / 2
        rows.append(
            {
                "photo": im.name,
                "size": f"{w}x{h}",
                "tinysd PSNR dB": psnr(a, r).item(),
                "tinysd MS-SSIM": ms_ssim(a, r).item(),
                "bicubic x4 PSNR dB": psnr(a, b).item(),
                "bicubic x4 MS-SSIM": ms_ssim(a, b).item(),
            }
        )
    mean = {"photo": "**mean**", "size": ""}
    for k in rows[0]:
        if k not in mean:
            mean[k] = float(np.mean([r[k] for r in rows]))
    return rows + [mean]


def _holdout_latent_crops(vae, size: int = 32, per_image: int = 4, seed: int = 0) -> torch.Tensor:
    g = np.random.default_rng(seed)
    crops = []
    for im in load_pool("holdout"):
        z = encode(vae, to_tensor(im.pixels)[None])[0]  # (4, h, w), scaled
        h, w = z.shape[-2:]
        for _ in range(per_image):
            top, left = g.integers(0, h - size + 1), g.integers(0, w - size + 1)
            crops.append(z[:, top : top + size, left : left + size])
    return torch.stack(crops)


def run(out_dir: str | Path, *, quick: bool = False) -> Path:
    torch.manual_seed(0)
    model = load_tinysd()
    report = Report(
        "prior",
        "tinysd prior: autoencoder, denoiser and samplers on holdout photos",
        Path(out_dir),
        command="diffcore bench prior" + (" --quick" if quick else ""),
        intro=__doc__.split("\n\n", 1)[1].strip(),
    )

    # 1. autoencoder
    ae_rows = _autoencoder_rows(model.vae)
    report.table(
        "Autoencoder reconstruction (holdout photos, full resolution)",
        ae_rows,
        "RGB in [0, 1]. Goal: ≥ 28 dB PSNR. Bicubic keeps 3 values per 4×4 block, tinysd's latent 4.",
    )

    # 2. denoiser
    lat = _holdout_latent_crops(model.vae, per_image=1 if quick else 4)
    with torch.no_grad():
        d = evaluate_denoiser(model.unet, lat)
    ts = sorted({int(k.rsplit("t", 1)[1]) for k in d})
    den_rows = [
        {
            "t": t,
            "UNet ε-MSE": d[f"eps_mse_t{t}"],
            "no-skill ε-MSE": d[f"baseline_eps_mse_t{t}"],
            "UNet / no-skill": d[f"eps_mse_t{t}"] / d[f"baseline_eps_mse_t{t}"],
        }
        for t in ts
    ]
    report.table(
        "Denoiser error on holdout latents",
        den_rows,
        f"{lat.shape[0]} random 32×32 latent crops (128×128 px) of the holdout photos, one noise draw per t.",
    )
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(ts, [r["UNet ε-MSE"] for r in den_rows], "o-", label="tinysd UNet")
    ax.plot(ts, [r["no-skill ε-MSE"] for r in den_rows], "s--", label="no-skill baseline")
    ax.set(xlabel="timestep t", ylabel="ε-prediction MSE", yscale="log", title="Denoising error, holdout latents")
    ax.legend()
    fig.tight_layout()
    fig.savefig(report.plot_path("denoiser"), dpi=120)
    plt.close(fig)
    report.image("Denoiser error plot", report.plot_path("denoiser"))

    # 3. samplers
    runs = SAMPLER_RUNS[:4] if quick else SAMPLER_RUNS
    noise = initial_noise(4, 128, seed=0)  # (4, 4, 32, 32)
    cfg = model.scheduler_config

    def job(name: str, steps: int):
        return lambda: sample(
            model.unet, name, noise, steps=steps, base_config=cfg, generator=torch.Generator().manual_seed(1), progress=False
        )

    jobs = {f"{n}@{s}": job(n, s) for n, s in runs}
    reference = job("dpmpp_2m", 250 if not quick else 50)()
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
                "IQR": f"{timing[key].ratio_iqr[0]:.3f}–{timing[key].ratio_iqr[1]:.3f}",
                "seconds (4 imgs)": timing[key].seconds,
                "GFLOPs (4 imgs)": count_flops(jobs[key]) / 1e9,
                "rel. L2 vs ODE ref": relative_l2(outputs[key], reference).mean().item() if spec.deterministic else "stochastic",
            }
        )
    report.table(
        "Samplers (4 images of 128×128, same noise)",
        rows,
        "Time ratios are medians of per-repeat ratios, interleaved in one process. "
        "The ODE reference is DPM-Solver++ at 250 steps; stochastic samplers solve the reverse SDE instead.",
    )

    grid = np.concatenate(
        [
            np.concatenate(list(((decode(model.vae, outputs[k]) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()), axis=1)
            for k in jobs
        ],
        axis=0,
    )
    fig, ax = plt.subplots(figsize=(6, 1.5 * len(jobs)))
    ax.imshow(grid)
    ax.set_yticks([64 + 128 * i for i in range(len(jobs))], list(jobs))
    ax.set_xticks([])
    ax.set_title("tinysd samples (same noise per column)")
    fig.tight_layout()
    fig.savefig(report.plot_path("samples"), dpi=72)
    plt.close(fig)
    report.image("Samples", report.plot_path("samples"))
    return report.write()
