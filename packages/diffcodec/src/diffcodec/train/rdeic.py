"""RDEIC's two stages (Li et al. 2024) and the rate–distortion helpers the pixel baseline shares.

1. ``rdeic-hyper`` — the latent hyperprior compression modules, one per λ
   (rate + λ·latent MSE, compressai's entropy models), then each one's relay
   start ``N`` from its measured latent error.
2. ``rdeic-lora`` — fixed-step fine-tuning: the 2–5-step relay sampler is
   unrolled with gradients and its final latent decoded by tinysd's frozen
   decoder; the loss is the pixel loss of OSCAR's second stage (L1 +
   w·(1 − MS-SSIM) against the photo) plus the relay noise target at the start
   step, which keeps the first step an ordinary denoising step.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

from diffcodec.diffusion import ddim_from, relay_noise, relay_start, relay_target, timestep_for_error
from diffcodec.models import LatentHyperprior
from diffcodec.train.data import PairedCrops, codec_latents, decode_pixels, holdout_pairs, pixel_loss
from diffcodec.train.oscar import calibration_crops
from diffcodec.train.recipe import CodecRecipe, lora_parameters, stage_card, train_config, unet_with_lora
from diffcore.train import Run, TrainingCard, count_parameters, train


def _bpp(likelihoods: dict, pixels: int) -> torch.Tensor:
    return sum(torch.log(v).sum() for v in likelihoods.values()) / (-math.log(2) * pixels)


class RDObjective(nn.Module):
    """Rate + λ·distortion for several hyperprior models at once (one per λ), plus compressai's aux loss."""

    def __init__(self, models: list, lambdas: tuple[float, ...], pixel_scale: int) -> None:
        super().__init__()
        self.models, self.lambdas, self.pixel_scale = nn.ModuleList(models), lambdas, pixel_scale

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        pixels = x.shape[0] * x.shape[-2] * x.shape[-1] * self.pixel_scale
        loss, out = 0.0, {}
        for i, (m, lam) in enumerate(zip(self.models, self.lambdas)):
            o = m(x)
            rec = o["c"] if "c" in o else o["x_hat"]
            mse = F.mse_loss(rec, x)
            bpp = _bpp(o["likelihoods"], pixels)
            loss = loss + bpp + lam * mse + m.aux_loss()
            out[f"bpp{i}"], out[f"mse{i}"] = bpp.detach(), mse.detach()
        return {"loss": loss, **out}


def save_compression_model(model: nn.Module, path: Path, config: dict, card: TrainingCard) -> Path:
    """compressai model -> safetensors (parameters in float16, CDF tables included, after ``update``) + config + card.

    The metrics in the card are measured before the float16 rounding; encoder and decoder both run the
    rounded weights, so bitstreams stay decodable.
    """
    model.update(force=True)
    path.mkdir(parents=True, exist_ok=True)
    tmp = path / "model.safetensors.tmp"
    params = dict(model.named_parameters())  # stored as float16; buffers (CDF tables, scale table) as they are
    state = {k: (v.half() if k in params else v).contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(tmp))
    os.replace(tmp, path / "model.safetensors")
    (path / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    card.write(path)
    return path


@torch.no_grad()
def real_rd(model, x: torch.Tensor, pixel_scale: int) -> tuple[float, float]:
    """(real bpp from rANS string lengths, MSE) of ``model`` on ``x`` (B, C, h, w), one item at a time."""
    model.update(force=True)
    bits, mse = 0, 0.0
    for i in range(len(x)):
        xi = x[i : i + 1]
        ys, ws, shape = model.compress(xi)
        rec = model.decompress(ys, ws, shape)
        bits += 8 * (len(ys[0]) + len(ws[0]))
        mse += F.mse_loss(rec, xi).item()
    return bits / (x.shape[0] * x.shape[-2] * x.shape[-1] * pixel_scale), mse / len(x)


def train_rdeic_hyper(recipe: CodecRecipe, run: Run) -> Path:
    """Stage ``rdeic-hyper``: one latent hyperprior per λ, then each one's relay start ``N``."""
    from diffcore.data import LatentCrops

    _, maps, hold, desc = codec_latents(run, recipe.crop, recipe.jitter_copies, recipe.seed)
    torch.manual_seed(recipe.seed)
    models = [LatentHyperprior() for _ in recipe.rdeic_lambdas]
    cfg = train_config(recipe.rdeic_steps, recipe.rdeic_batch, recipe.rdeic_lr, recipe.seed, clip=None)
    ds = LatentCrops(maps, size=recipe.crop, length=cfg.steps * cfg.batch_size, seed=recipe.seed + 2)
    result = train(RDObjective(models, recipe.rdeic_lambdas, 16), ds, cfg, run.out / "rdeic-hyper")
    calib = calibration_crops(maps, recipe.crop)
    for i, (m, lam) in enumerate(zip(result.objective.models, recipe.rdeic_lambdas)):
        m.eval()
        with torch.no_grad():
            c_mse = F.mse_loss(m(calib)["c"], calib).item()
        bpp, mse = real_rd(m, hold, 16)
        n = timestep_for_error(c_mse)
        metrics = {
            "train_latent_mse": round(c_mse, 4),
            "holdout_real_bpp": round(bpp, 4),
            "holdout_latent_mse": round(mse, 4),
            "relay_start": n,
        }
        what = f"RDEIC latent hyperprior (compressai entropy models), lambda={lam}"
        card = stage_card(what, desc, count_parameters(m), cfg, recipe, run, "rdeic-hyper", metrics)
        save_compression_model(
            m, run.weights / "rdeic" / f"hyper{i}", {"N": m.N, "M": m.M, "lambda": lam, "relay_start": n}, card
        )
    return run.weights / "rdeic"


class RelayObjective(nn.Module):
    """Fixed-step fine-tuning: unroll the K-step relay sampler (K drawn per batch from 2…max), the loss on pixels."""

    def __init__(self, unet, hypers: list, starts: list[int], max_steps: int, vae: nn.Module, structural_weight: float):
        super().__init__()
        self.unet, self.hypers, self.starts, self.max_steps = unet, nn.ModuleList(hypers), starts, max_steps
        self._vae, self.structural_weight = [vae], structural_weight  # frozen, not a submodule

    def train(self, mode: bool = True) -> RelayObjective:
        super().train(mode)
        self.hypers.eval()  # frozen: real rounding, not the training noise proxy
        return self

    def forward(self, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        z0, x = batch
        r = int(torch.randint(0, len(self.hypers), ()))
        k = int(torch.randint(2, self.max_steps + 1, ()))
        n = self.starts[r]
        with torch.no_grad():
            c = self.hypers[r](z0)["c"]
        eps = torch.randn_like(z0)
        x_n = relay_start(c, n, eps)
        final = ddim_from(self.unet, x_n, n, k)
        tt = torch.full((z0.shape[0],), n, dtype=torch.long, device=z0.device)
        eps_loss = F.mse_loss(self.unet(x_n, tt).sample, relay_target(eps, c, z0, n))
        pix, parts = pixel_loss(decode_pixels(self._vae[0], final), x, self.structural_weight)
        return {"loss": pix + 0.1 * eps_loss, **parts, "eps_loss": eps_loss.detach()}


def _load_hypers(weights: Path) -> tuple[list, list[int]]:
    from diffcodec.codec import load_compression_model

    hypers, starts = [], []
    for d in sorted((weights / "rdeic").glob("hyper*")):
        m, cfg = load_compression_model(LatentHyperprior, d)
        hypers.append(m.eval().requires_grad_(False))
        starts.append(int(cfg["relay_start"]))
    return hypers, starts


def train_rdeic_lora(recipe: CodecRecipe, run: Run) -> Path:
    """Stage ``rdeic-lora``: fixed-step fine-tuning of a LoRA through the unrolled relay sampler and the decoder."""
    from diffcodec.lora import save_lora
    from diffcore.zoo import load_autoencoder

    images, maps, _, desc = codec_latents(run, recipe.crop, recipe.jitter_copies, recipe.seed)
    z_hold, x_hold = holdout_pairs(run.data, recipe.crop)
    hypers, starts = _load_hypers(run.weights)
    torch.manual_seed(recipe.seed)
    unet = unet_with_lora(recipe.lora_rank)
    vae = load_autoencoder().requires_grad_(False)
    cfg = train_config(recipe.relay_steps, recipe.relay_batch, recipe.relay_lr, recipe.seed)
    ds = PairedCrops(images, maps, size=recipe.crop, length=cfg.steps * cfg.batch_size, seed=recipe.seed + 3)
    objective = RelayObjective(unet, hypers, starts, recipe.relay_max_steps, vae, recipe.structural_weight)
    unet = train(objective, ds, cfg, run.out / "rdeic-lora").objective.unet
    metrics = {}
    with torch.no_grad():
        for r, (h, n) in enumerate(zip(hypers, starts)):
            c = h(z_hold)["c"]
            for k in (2, 5):
                z = ddim_from(unet, relay_start(c, n, relay_noise(tuple(c.shape))), n, k)
                _, parts = pixel_loss(decode_pixels(vae, z).clamp(-1, 1), x_hold, recipe.structural_weight)
                metrics[f"holdout_l1_r{r}_k{k}"] = round(parts["l1"].item(), 4)
                metrics[f"holdout_ms_ssim_r{r}_k{k}"] = round(parts["ms_ssim"].item(), 4)
    out = save_lora(unet, run.weights / "rdeic" / "lora", {"rank": recipe.lora_rank, "relay_starts": starts})
    what = "RDEIC relay LoRA on tinysd's UNet (fixed-step fine-tuned on decoded pixels, 2-5 steps), shared by all rates"
    stage_card(what, desc, lora_parameters(unet), cfg, recipe, run, "rdeic-lora", metrics).write(out)
    return out
