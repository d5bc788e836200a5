"""OSCAR's two stages (Guo et al. 2025; github jp-guo/OSCAR).

1. ``oscar-hyper`` — the per-rate VQ hyper-encoders alone, on latent MSE plus
   the VQ losses, dead codes restarted from the batch; then ``t(rate)``
   calibrated by matching each rate's measured latent error to the forward
   process's noise-to-signal ratio. Written to the run folder, not shipped.
2. ``oscar-joint`` — the one-step LoRA on tinysd's UNet and the hyper-encoders
   trained together, the loss on decoded pixels: each crop gets a random rate,
   its straight-through VQ latent is norm-matched to ``t(rate)``, ONE UNet pass
   predicts the clean latent, tinysd's frozen decoder turns it into pixels, and
   the loss is L1 + w·(1 − MS-SSIM) against the photo's own pixels (not its
   autoencoder reconstruction), plus the VQ losses. L1 rather than MSE because
   it keeps edges sharper at equal PSNR (Zhao et al. 2017); MS-SSIM because it
   is the structural measure the benchmark reports and needs no downloaded
   network. Then each rate's index distribution is fitted on the training
   crops, for the rANS coder. Ships ``oscar/hyper`` and ``oscar/lora``.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from diffcodec.diffusion import channel_rms, one_step, timestep_for_error
from diffcodec.models import OscarHyperCodec
from diffcodec.train.data import PairedCrops, codec_latents, decode_pixels, holdout_pairs, pixel_loss
from diffcodec.train.recipe import CodecRecipe, lora_parameters, stage_card, train_config, unet_with_lora
from diffcore.errors import CheckpointError
from diffcore.train import Run, count_parameters, train


def stage1_folder(run: Run) -> Path:
    """Where ``oscar-hyper`` leaves the hyper-encoders that ``oscar-joint`` starts from."""
    return run.out / "oscar-hyper" / "hyper"


class VQObjective(nn.Module):
    """All OSCAR rates on the same batch; restarts dead codes from the batch's encoder outputs."""

    def __init__(self, codec: OscarHyperCodec, refresh_every: int = 50) -> None:
        super().__init__()
        self.codec, self.refresh_every = codec, refresh_every
        kmax = max(codec.config.codebook_sizes)
        self.register_buffer("usage", torch.zeros(len(codec.rates), kmax))
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def _refresh(self, r: int, idx: torch.Tensor, codes: torch.Tensor) -> None:
        rate = self.codec.rates[r]
        k = rate.codebook_size
        self.usage[r, :k] += torch.bincount(idx.flatten(), minlength=k).float()
        pool = codes.permute(0, 2, 3, 1).reshape(-1, codes.shape[1])
        first = int(self.calls) == 0
        if not first and int(self.calls) % self.refresh_every:
            return
        dead = torch.arange(k, device=idx.device) if first else (self.usage[r, :k] == 0).nonzero().flatten()
        if len(dead):
            pick = torch.randint(0, len(pool), (len(dead),), device=pool.device)
            rate.codebook.data[dead] = pool[pick] + 0.01 * pool.std() * torch.randn_like(pool[pick])
        self.usage[r].zero_()

    def forward(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        loss, out = 0.0, {}
        for r in range(len(self.codec.rates)):
            o = self.codec(z, r)
            mse = F.mse_loss(o["z_hat"], z)
            loss = loss + mse + o["vq_loss"]
            out[f"mse_r{r}"] = mse.detach()
            if self.training:
                self._refresh(r, o["indices"], o["codes"])
        if self.training:
            self.calls += 1
        return {"loss": loss, **out}


@torch.no_grad()
def oscar_errors(codec: OscarHyperCodec, latents: torch.Tensor) -> list[float]:
    """Latent MSE of each rate's decoded latent on ``latents`` (eval mode, real quantization)."""
    out = []
    for r in range(len(codec.rates)):
        idx = codec.encode(latents, r)
        out.append(F.mse_loss(codec.decode(idx, r, tuple(latents.shape[-2:])), latents).item())
    return out


def calibration_crops(maps: list[torch.Tensor], crop: int, n: int = 256, seed: int = 12345) -> torch.Tensor:
    """``n`` fixed training latent crops: what ``t(rate)``, RDEIC's ``N`` and the index priors are measured on."""
    from diffcore.data import LatentCrops

    ds = LatentCrops(maps, size=crop, length=n, seed=seed)
    return torch.stack([ds[i] for i in range(n)])


def train_oscar_hyper(recipe: CodecRecipe, run: Run) -> Path:
    """Stage ``oscar-hyper``: the per-rate VQ hyper-encoders, then ``t(rate)`` from each rate's latent error."""
    from diffcore.checkpoint import save_model
    from diffcore.data import LatentCrops

    _, maps, hold, desc = codec_latents(run, recipe.crop, recipe.jitter_copies, recipe.seed)
    torch.manual_seed(recipe.seed)
    codec = OscarHyperCodec()
    cfg = train_config(recipe.hyper_steps, recipe.hyper_batch, recipe.hyper_lr, recipe.seed)
    ds = LatentCrops(maps, size=recipe.crop, length=cfg.steps * cfg.batch_size, seed=recipe.seed)
    result = train(
        VQObjective(codec),
        ds,
        cfg,
        run.out / "oscar-hyper",
        eval_fn=lambda obj, step: {f"holdout_mse_r{r}": e for r, e in enumerate(oscar_errors(obj.codec, hold))},
        eval_every=recipe.eval_every,
    )
    codec = result.objective.codec.eval()
    calib = oscar_errors(codec, calibration_crops(maps, recipe.crop))
    timesteps = [timestep_for_error(e) for e in calib]
    codec.register_to_config(timesteps=timesteps)
    metrics = {
        "nominal_bpp": [round(codec.nominal_bpp(r), 5) for r in range(len(codec.rates))],
        "train_latent_mse": [round(e, 4) for e in calib],
        "holdout_latent_mse": [round(e, 4) for e in oscar_errors(codec, hold)],
        "timesteps": timesteps,
    }
    what = "OSCAR hyper-encoders (one VQ codebook per rate), stage 1: latent MSE"
    card = stage_card(what, desc, count_parameters(codec), cfg, recipe, run, "oscar-hyper", metrics)
    return save_model(codec, stage1_folder(run), card)


class JointObjective(nn.Module):
    """OSCAR's stage 2: hyper-encoders + one-step LoRA, each crop at a random rate, the loss on decoded pixels."""

    def __init__(self, unet: nn.Module, codec: OscarHyperCodec, vae: nn.Module, structural_weight: float) -> None:
        super().__init__()
        self.unet, self.codec, self.structural_weight = unet, codec, structural_weight
        self._vae = [vae]  # frozen and not a submodule: checkpoints hold what trains
        self.timesteps = list(codec.config.timesteps)

    def forward(self, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        z0, x = batch
        n_rates = len(self.timesteps)
        rates = (torch.arange(z0.shape[0], device=z0.device) + torch.randint(n_rates, ())) % n_rates
        loss, out = 0.0, {}
        for r in range(n_rates):
            pick = rates == r
            if not pick.any():
                continue
            z = z0[pick]
            o = self.codec(z, r)
            latent = one_step(self.unet, o["z_hat"], channel_rms(z), self.timesteps[r])
            pix, parts = pixel_loss(decode_pixels(self._vae[0], latent), x[pick], self.structural_weight)
            loss = loss + (pix + o["vq_loss"]) * pick.sum() / len(z0)
            out[f"l1_r{r}"], out[f"ms_ssim_r{r}"] = parts["l1"], parts["ms_ssim"]
        return {"loss": loss, **out}


@torch.no_grad()
def joint_eval(obj: JointObjective, pairs: tuple[torch.Tensor, torch.Tensor]) -> dict[str, float]:
    """Holdout L1 and MS-SSIM of every rate with real quantization (eval mode)."""
    z, x = pairs
    out = {}
    for r in range(len(obj.timesteps)):
        idx = obj.codec.encode(z, r)
        latent = one_step(obj.unet, obj.codec.decode(idx, r, tuple(z.shape[-2:])), channel_rms(z), obj.timesteps[r])
        _, parts = pixel_loss(decode_pixels(obj._vae[0], latent).clamp(-1, 1), x, obj.structural_weight)
        out[f"holdout_l1_r{r}"], out[f"holdout_ms_ssim_r{r}"] = parts["l1"].item(), parts["ms_ssim"].item()
    return out


@torch.no_grad()
def fit_index_priors(codec: OscarHyperCodec, latents: torch.Tensor) -> list[float]:
    """Fit each rate's index distribution on ``latents``; returns each rate's mean bits per index there."""
    bits = []
    for r in range(len(codec.rates)):
        idx = codec.encode(latents, r).flatten()
        codec.fit_index_prior(r, torch.bincount(idx, minlength=codec.config.codebook_sizes[r]))
        bits.append(codec.index_bits(r)[idx].mean().item())
    return bits


def train_oscar_joint(recipe: CodecRecipe, run: Run) -> Path:
    """Stage ``oscar-joint``: LoRA and hyper-encoders together on the pixel loss, then the index priors."""
    from diffcodec.lora import save_lora
    from diffcore.checkpoint import load_model, save_model
    from diffcore.zoo import load_autoencoder

    start = stage1_folder(run)
    if not start.is_dir():
        raise CheckpointError(f"{start} is missing: run `{run.command('oscar-hyper')}` first (same --out)")
    images, maps, _, desc = codec_latents(run, recipe.crop, recipe.jitter_copies, recipe.seed)
    pairs = holdout_pairs(run.data, recipe.crop)
    codec = load_model(OscarHyperCodec, start, torch_dtype=torch.float32)
    torch.manual_seed(recipe.seed)
    unet = unet_with_lora(recipe.lora_rank)
    vae = load_autoencoder().requires_grad_(False)
    cfg = train_config(recipe.joint_steps, recipe.joint_batch, recipe.joint_lr, recipe.seed)
    ds = PairedCrops(images, maps, size=recipe.crop, length=cfg.steps * cfg.batch_size, seed=recipe.seed + 1)
    obj = train(
        JointObjective(unet, codec, vae, recipe.structural_weight),
        ds,
        cfg,
        run.out / "oscar-joint",
        eval_fn=lambda o, s: joint_eval(o, pairs),
        eval_every=recipe.eval_every,
    ).objective
    codec = obj.codec.eval()
    bits = fit_index_priors(codec, calibration_crops(maps, recipe.crop, n=1024))
    metrics = {k: round(v, 4) for k, v in joint_eval(obj, pairs).items()}
    hyper_metrics = {
        **metrics,
        "nominal_bpp": [round(codec.nominal_bpp(r), 5) for r in range(len(codec.rates))],
        "train_bits_per_index": [round(b, 3) for b in bits],
        "train_bpp": [round(b / (4 * s) ** 2, 5) for b, s in zip(bits, codec.config.strides)],
        "timesteps": list(codec.config.timesteps),
    }
    what = "OSCAR hyper-encoders (one VQ codebook and index distribution per rate), stage 2: joint, pixel loss"
    card = stage_card(what, desc, count_parameters(codec), cfg, recipe, run, "oscar-joint", hyper_metrics)
    save_model(codec, run.weights / "oscar" / "hyper", card, storage_dtype=torch.float16)
    out = save_lora(
        obj.unet, run.weights / "oscar" / "lora", {"rank": recipe.lora_rank, "timesteps": list(codec.config.timesteps)}
    )
    what = "OSCAR one-step LoRA on tinysd's UNet, shared by all rates, trained jointly with the hyper-encoders"
    stage_card(what, desc, lora_parameters(obj.unet), cfg, recipe, run, "oscar-joint", metrics).write(out)
    return run.weights / "oscar"
