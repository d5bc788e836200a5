"""Training recipe of the shipped codec weights: ``diffcore train codec [--stage S]``.

Five stages on diffcore's stage runner (:func:`diffcore.train.run_stages`),
each resumable, each seeded, all on tinysd's latents of the training photos
(the holdout photos are never seen); each shipped folder gets a
:class:`~diffcore.train.TrainingCard`:

1. ``oscar-hyper`` — OSCAR's per-rate VQ hyper-encoders (latent MSE + VQ losses),
   then ``t(rate)`` calibrated by matching each rate's measured latent error to
   the forward-process noise level.
2. ``oscar-lora`` — one LoRA on the UNet, shared by all rates, trained for the
   one-step clean-latent prediction from norm-matched compressed latents.
3. ``rdeic-hyper`` — RDEIC's hyperprior compression modules, one per λ
   (rate + λ·latent MSE, compressai entropy models), then ``N`` per rate.
4. ``rdeic-lora`` — fixed-step fine-tuning: the 2–5-step relay sampler is
   unrolled with gradients (loss on the final clean latent plus the relay noise
   target at the start step).
5. ``baseline`` — compressai's ScaleHyperprior on pixels, one per λ.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

from diffcodec.diffusion import channel_rms, ddim_from, one_step, relay_noise, relay_start, relay_target, timestep_for_error
from diffcodec.models import LatentHyperprior, OscarHyperCodec, PixelHyperprior
from diffcore.train import Run, TrainConfig, TrainingCard, count_parameters, run_stages, train

WEIGHTS = Path(__file__).resolve().parent / "weights"


@dataclass(frozen=True)
class CodecRecipe:
    """Step counts and hyperparameters of the five stages (defaults: the shipped run).

    The λ tuples are recipe fields but not command-line flags (the stage runner
    makes flags of scalar fields only).
    """

    seed: int = 0
    crop: int = 32  # latent crop side (128 px)
    hyper_steps: int = 1500
    hyper_batch: int = 32
    hyper_lr: float = 2e-3
    lora_rank: int = 8
    lora_steps: int = 500
    lora_batch: int = 16
    lora_lr: float = 5e-4
    rdeic_lambdas: tuple[float, ...] = (0.5, 2.0, 8.0)
    rdeic_steps: int = 1200
    rdeic_batch: int = 32
    rdeic_lr: float = 2e-3
    relay_steps: int = 300
    relay_batch: int = 8
    relay_lr: float = 5e-4
    relay_max_steps: int = 5
    base_lambdas: tuple[float, ...] = (15.0, 30.0, 60.0)  # on MSE of [-1, 1] pixels: compressai 0.0009-0.0035
    base_steps: int = 1500
    base_batch: int = 16
    base_crop: int = 64
    base_lr: float = 5e-4
    eval_every: int = 500

    def smoke(self) -> CodecRecipe:
        """A few steps per stage at tiny batches: checks the recipe end to end."""
        return dataclasses.replace(
            self,
            hyper_steps=6,
            hyper_batch=4,
            lora_steps=4,
            lora_batch=4,
            rdeic_steps=6,
            rdeic_batch=4,
            relay_steps=2,
            relay_batch=2,
            base_steps=4,
            base_batch=2,
            eval_every=3,
        )


def _latents(data: str | None, crop: int) -> tuple[list[torch.Tensor], torch.Tensor, str]:
    from diffcore.data import latent_data
    from diffcore.zoo import load_tinysd

    return latent_data(load_tinysd().vae, data, crop)


def _config(steps: int, batch: int, lr: float, seed: int, clip: float | None = 1.0) -> TrainConfig:
    """No clipping for rate-distortion runs: compressai's aux loss has huge gradients on its quantiles
    alone, and a global-norm clip would starve every other parameter."""
    return TrainConfig(
        steps=steps, batch_size=batch, lr=lr, warmup_steps=min(100, steps // 10), ema_decay=None, grad_clip=clip, seed=seed
    )


def _card(
    what: str, data: str, parameters: int, cfg: TrainConfig, recipe: CodecRecipe, run: Run, stage: str, metrics: dict
) -> TrainingCard:
    """The training card of one shipped folder of ``stage``."""
    return run.card(stage, model=what, data=data, config=cfg, parameters=parameters, metrics=metrics, recipe=asdict(recipe))


# ---------------------------------------------------------------- OSCAR hyper


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


def _calibration_crops(maps: list[torch.Tensor], crop: int, n: int = 256, seed: int = 12345) -> torch.Tensor:
    from diffcore.data import LatentCrops

    ds = LatentCrops(maps, size=crop, length=n, seed=seed)
    return torch.stack([ds[i] for i in range(n)])


def train_oscar_hyper(recipe: CodecRecipe, run: Run) -> Path:
    """Stage ``oscar-hyper``: the per-rate VQ hyper-encoders, then ``t(rate)`` from each rate's latent error."""
    from diffcore.checkpoint import save_model
    from diffcore.data import LatentCrops

    maps, hold, desc = _latents(run.data, recipe.crop)
    torch.manual_seed(recipe.seed)
    codec = OscarHyperCodec()
    cfg = _config(recipe.hyper_steps, recipe.hyper_batch, recipe.hyper_lr, recipe.seed)
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
    calib = oscar_errors(codec, _calibration_crops(maps, recipe.crop))
    held = oscar_errors(codec, hold)
    timesteps = [timestep_for_error(e) for e in calib]
    codec.register_to_config(timesteps=timesteps)
    metrics = {
        "nominal_bpp": [round(codec.nominal_bpp(r), 5) for r in range(len(codec.rates))],
        "train_latent_mse": [round(e, 4) for e in calib],
        "holdout_latent_mse": [round(e, 4) for e in held],
        "timesteps": timesteps,
    }
    what = "OSCAR hyper-encoders (one VQ codebook per rate) on tinysd latents"
    card = _card(what, desc, count_parameters(codec), cfg, recipe, run, "oscar-hyper", metrics)
    return save_model(codec, run.weights / "oscar" / "hyper", card, storage_dtype=torch.float16)


# ---------------------------------------------------------------- OSCAR LoRA


class OneStepObjective(nn.Module):
    """OSCAR's fine-tuning: each sample gets a random rate; loss on the one-step clean latent."""

    def __init__(self, unet, codec: OscarHyperCodec) -> None:
        super().__init__()
        self.unet, self.codec = unet, codec
        self.timesteps = list(codec.config.timesteps)

    def forward(self, z0: torch.Tensor) -> dict[str, torch.Tensor]:
        n_rates = len(self.timesteps)
        rates = torch.arange(z0.shape[0], device=z0.device) % n_rates
        loss, out = 0.0, {}
        for r in range(n_rates):
            z = z0[rates == r]
            if not len(z):
                continue
            with torch.no_grad():
                z_hat = self.codec.decode(self.codec.encode(z, r), r, tuple(z.shape[-2:]))
            x0 = one_step(self.unet, z_hat, channel_rms(z), self.timesteps[r])
            mse = F.mse_loss(x0, z)
            loss = loss + mse * len(z) / len(z0)
            out[f"mse_r{r}"] = mse.detach()
        return {"loss": loss, **out}


def _lora_parameters(unet: nn.Module) -> int:
    """Number of LoRA parameters: what the adapter folder ships (the UNet is tinysd's)."""
    return sum(p.numel() for n, p in unet.named_parameters() if "lora_" in n)


def _unet_lora(rank: int) -> nn.Module:
    from diffcodec.lora import add_lora
    from diffcore.zoo import load_tinysd

    return add_lora(load_tinysd().unet, rank)


def train_oscar_lora(recipe: CodecRecipe, run: Run) -> Path:
    """Stage ``oscar-lora``: one LoRA on tinysd's UNet for the one-step prediction, shared by all rates."""
    from diffcodec.lora import save_lora
    from diffcore.checkpoint import load_model
    from diffcore.data import LatentCrops

    maps, hold, desc = _latents(run.data, recipe.crop)
    hyper = run.weights / "oscar" / "hyper"
    codec = load_model(OscarHyperCodec, hyper, torch_dtype=torch.float32).eval().requires_grad_(False)
    torch.manual_seed(recipe.seed)
    unet = _unet_lora(recipe.lora_rank)
    cfg = _config(recipe.lora_steps, recipe.lora_batch, recipe.lora_lr, recipe.seed)
    ds = LatentCrops(maps, size=recipe.crop, length=cfg.steps * cfg.batch_size, seed=recipe.seed + 1)

    def holdout(obj: OneStepObjective) -> dict[str, float]:
        torch.manual_seed(0)
        return {f"holdout_{k}": v.item() for k, v in obj(hold[: 4 * len(codec.rates)]).items()}

    obj = train(
        OneStepObjective(unet, codec),
        ds,
        cfg,
        run.out / "oscar-lora",
        eval_fn=lambda o, s: holdout(o),
        eval_every=recipe.eval_every,
    ).objective
    metrics = {k: round(v, 4) for k, v in holdout(obj).items()}
    out = save_lora(
        obj.unet, run.weights / "oscar" / "lora", {"rank": recipe.lora_rank, "timesteps": list(codec.config.timesteps)}
    )
    what = "OSCAR one-step LoRA on tinysd's UNet, shared by all rates"
    _card(what, desc, _lora_parameters(obj.unet), cfg, recipe, run, "oscar-lora", metrics).write(out)
    return out


# ---------------------------------------------------------------- RDEIC compression


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
def _real_rd(model, x: torch.Tensor, pixel_scale: int) -> tuple[float, float]:
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

    maps, hold, desc = _latents(run.data, recipe.crop)
    torch.manual_seed(recipe.seed)
    models = [LatentHyperprior() for _ in recipe.rdeic_lambdas]
    cfg = _config(recipe.rdeic_steps, recipe.rdeic_batch, recipe.rdeic_lr, recipe.seed, clip=None)
    ds = LatentCrops(maps, size=recipe.crop, length=cfg.steps * cfg.batch_size, seed=recipe.seed + 2)
    result = train(RDObjective(models, recipe.rdeic_lambdas, 16), ds, cfg, run.out / "rdeic-hyper")
    calib = _calibration_crops(maps, recipe.crop)
    for i, (m, lam) in enumerate(zip(result.objective.models, recipe.rdeic_lambdas)):
        m.eval()
        c_mse = F.mse_loss(m(calib)["c"], calib).item()
        bpp, mse = _real_rd(m, hold, 16)
        n = timestep_for_error(c_mse)
        metrics = {
            "train_latent_mse": round(c_mse, 4),
            "holdout_real_bpp": round(bpp, 4),
            "holdout_latent_mse": round(mse, 4),
            "relay_start": n,
        }
        what = f"RDEIC latent hyperprior (compressai entropy models), lambda={lam}"
        card = _card(what, desc, count_parameters(m), cfg, recipe, run, "rdeic-hyper", metrics)
        save_compression_model(
            m, run.weights / "rdeic" / f"hyper{i}", {"N": m.N, "M": m.M, "lambda": lam, "relay_start": n}, card
        )
    return run.weights / "rdeic"


# ---------------------------------------------------------------- RDEIC LoRA


class RelayObjective(nn.Module):
    """Fixed-step fine-tuning: unroll the K-step relay sampler (K drawn per batch from 2…max) with gradients."""

    def __init__(self, unet, hypers: list, starts: list[int], max_steps: int) -> None:
        super().__init__()
        self.unet, self.hypers, self.starts, self.max_steps = unet, nn.ModuleList(hypers), starts, max_steps

    def train(self, mode: bool = True) -> RelayObjective:
        super().train(mode)
        self.hypers.eval()  # frozen: real rounding, not the training noise proxy
        return self

    def forward(self, z0: torch.Tensor) -> dict[str, torch.Tensor]:
        r = int(torch.randint(0, len(self.hypers), ()))
        k = int(torch.randint(2, self.max_steps + 1, ()))
        n = self.starts[r]
        with torch.no_grad():
            c = self.hypers[r](z0)["c"]  # noisy quantization proxy is off in eval: real rounding
        eps = torch.randn_like(z0)
        x_n = relay_start(c, n, eps)
        final = ddim_from(self.unet, x_n, n, k)
        tt = torch.full((z0.shape[0],), n, dtype=torch.long, device=z0.device)
        eps_hat = self.unet(x_n, tt).sample
        mse = F.mse_loss(final, z0)
        eps_loss = F.mse_loss(eps_hat, relay_target(eps, c, z0, n))
        return {"loss": mse + 0.1 * eps_loss, "mse": mse.detach(), "eps_loss": eps_loss.detach()}


def _load_hypers(weights: Path) -> tuple[list, list[int]]:
    from diffcodec.codec import load_compression_model

    hypers, starts = [], []
    for d in sorted((weights / "rdeic").glob("hyper*")):
        m, cfg = load_compression_model(LatentHyperprior, d)
        hypers.append(m.eval().requires_grad_(False))
        starts.append(int(cfg["relay_start"]))
    return hypers, starts


def train_rdeic_lora(recipe: CodecRecipe, run: Run) -> Path:
    """Stage ``rdeic-lora``: fixed-step fine-tuning of a LoRA through the unrolled relay sampler."""
    from diffcodec.lora import save_lora
    from diffcore.data import LatentCrops

    maps, hold, desc = _latents(run.data, recipe.crop)
    hypers, starts = _load_hypers(run.weights)
    torch.manual_seed(recipe.seed)
    unet = _unet_lora(recipe.lora_rank)
    cfg = _config(recipe.relay_steps, recipe.relay_batch, recipe.relay_lr, recipe.seed)
    ds = LatentCrops(maps, size=recipe.crop, length=cfg.steps * cfg.batch_size, seed=recipe.seed + 3)
    unet = train(RelayObjective(unet, hypers, starts, recipe.relay_max_steps), ds, cfg, run.out / "rdeic-lora").objective.unet
    metrics = {}
    with torch.no_grad():
        for r, (h, n) in enumerate(zip(hypers, starts)):
            c = h(hold)["c"]
            for k in (2, 5):
                x0 = ddim_from(unet, relay_start(c, n, relay_noise(tuple(c.shape))), n, k)
                metrics[f"holdout_mse_r{r}_k{k}"] = round(F.mse_loss(x0, hold).item(), 4)
            metrics[f"holdout_mse_r{r}_c"] = round(F.mse_loss(c, hold).item(), 4)
    out = save_lora(unet, run.weights / "rdeic" / "lora", {"rank": recipe.lora_rank, "relay_starts": starts})
    what = "RDEIC relay LoRA on tinysd's UNet (fixed-step fine-tuned, 2-5 steps), shared by all rates"
    _card(what, desc, _lora_parameters(unet), cfg, recipe, run, "rdeic-lora", metrics).write(out)
    return out


# ---------------------------------------------------------------- pixel baseline


def train_baseline(recipe: CodecRecipe, run: Run) -> Path:
    """Stage ``baseline``: compressai's ScaleHyperprior on pixels, one per λ (the non-diffusion baseline)."""
    from diffcore.data import RandomCrops, split_images, to_tensor

    train_imgs, holdout, desc = split_images(run.data)
    torch.manual_seed(recipe.seed)
    models = [PixelHyperprior(N=64, M=96) for _ in recipe.base_lambdas]
    cfg = _config(recipe.base_steps, recipe.base_batch, recipe.base_lr, recipe.seed, clip=None)
    ds = RandomCrops([im.pixels for im in train_imgs], size=recipe.base_crop, length=cfg.steps * cfg.batch_size, seed=recipe.seed)
    result = train(RDObjective(models, recipe.base_lambdas, 1), ds, cfg, run.out / "baseline")
    hold = torch.stack([to_tensor(im.pixels[:128, :128]) for im in holdout])
    data = desc + f"; {recipe.base_crop}px crops of the training photos"
    for i, (m, lam) in enumerate(zip(result.objective.models, recipe.base_lambdas)):
        m.eval()
        bpp, mse = _real_rd(m, hold, 1)
        metrics = {"holdout_crop_real_bpp": round(bpp, 4), "holdout_crop_psnr": round(10 * math.log10(4 / mse), 2)}
        what = f"compressai ScaleHyperprior(N=64, M=96) on pixels, lambda={lam} (non-diffusion baseline)"
        card = _card(what, data, count_parameters(m), cfg, recipe, run, "baseline", metrics)
        save_compression_model(m, run.weights / "baseline" / f"hyperprior{i}", {"N": 64, "M": 96, "lambda": lam}, card)
    return run.weights / "baseline"


STAGES = {
    "oscar-hyper": train_oscar_hyper,
    "oscar-lora": train_oscar_lora,
    "rdeic-hyper": train_rdeic_hyper,
    "rdeic-lora": train_rdeic_lora,
    "baseline": train_baseline,
}


def main(argv: list[str] | None = None) -> None:
    """``diffcore train codec``: regenerate the shipped codec weights (every stage by default)."""
    run_stages(argv, "codec", CodecRecipe(), STAGES, WEIGHTS)


if __name__ == "__main__":
    main()
