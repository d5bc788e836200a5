"""The non-diffusion baseline's stage: compressai's ScaleHyperprior on pixels, one per λ."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from diffcodec.models import PixelHyperprior
from diffcodec.train.rdeic import RDObjective, real_rd, save_compression_model
from diffcodec.train.recipe import CodecRecipe, stage_card, train_config
from diffcore.train import Run, count_parameters, train


def train_baseline(recipe: CodecRecipe, run: Run) -> Path:
    """Stage ``baseline``: compressai's ScaleHyperprior on pixels, one per λ (the non-diffusion baseline)."""
    from diffcore.data import RandomCrops, split_images, to_tensor

    train_imgs, holdout, desc = split_images(run.data)
    torch.manual_seed(recipe.seed)
    models = [PixelHyperprior(N=64, M=96) for _ in recipe.base_lambdas]
    cfg = train_config(recipe.base_steps, recipe.base_batch, recipe.base_lr, recipe.seed, clip=None)
    ds = RandomCrops([im.pixels for im in train_imgs], size=recipe.base_crop, length=cfg.steps * cfg.batch_size, seed=recipe.seed)
    result = train(RDObjective(models, recipe.base_lambdas, 1), ds, cfg, run.out / "baseline")
    hold = torch.stack([to_tensor(im.pixels[:128, :128]) for im in holdout])
    data = desc + f"; {recipe.base_crop}px crops of the training photos"
    for i, (m, lam) in enumerate(zip(result.objective.models, recipe.base_lambdas)):
        m.eval()
        bpp, mse = real_rd(m, hold, 1)
        metrics = {"holdout_crop_real_bpp": round(bpp, 4), "holdout_crop_psnr": round(10 * math.log10(4 / mse), 2)}
        what = f"compressai ScaleHyperprior(N=64, M=96) on pixels, lambda={lam} (non-diffusion baseline)"
        card = stage_card(what, data, count_parameters(m), cfg, recipe, run, "baseline", metrics)
        save_compression_model(m, run.weights / "baseline" / f"hyperprior{i}", {"N": 64, "M": 96, "lambda": lam}, card)
    return run.weights / "baseline"
