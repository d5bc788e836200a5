"""tinydit: a small diffusers DiT (Peebles & Xie 2023) on tinysd latents.

The DiT plays the role of the big transformer backbones (PixArt, FLUX, Wan)
for the DiT feature caches (:mod:`diffcore.cache.dit`, TeaCache) and for int8
on a Linear-heavy model. It is a stock ``DiTTransformer2DModel`` (adaLN-Zero
blocks, patch 2) with diffusers' ``CacheMixin`` added, so ``enable_cache`` and
``cache_context`` work as on diffusers' own transformers; it learns
ε-prediction on 16² crops of tinysd latents (4×16×16, 64 tokens) with tinysd's
noise schedule, so every diffcore sampler applies.

It is unconditional through a single class label: ``class_labels`` defaults to
0 ("an image"); label 1 is the null label that DiT's label dropout (10 %)
trains, so ``cond=(zeros, ones)`` with ``guidance`` gives classifier-free
guidance. The recipe reuses tinysd's pieces (data split, latent crops,
ε-objective, holdout metric)::

    uv run --locked python -m diffcore.prior.dit --out runs/tinydit          # the shipped run
    uv run --locked python -m diffcore.prior.dit --out runs/tinydit-smoke --smoke
"""

from __future__ import annotations

import argparse
import copy
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers import DDPMScheduler, DiTTransformer2DModel
from diffusers.models.cache_utils import CacheMixin
from diffusers.models.modeling_outputs import Transformer2DModelOutput

from diffcore.checkpoint import load_model, save_model
from diffcore.errors import InvalidInputError
from diffcore.prior.models import LATENT_CHANNELS, SCHEDULER_CONFIG

#: where the shipped weights live
WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights" / "tinydit"

DIT_CONFIG: dict = dict(
    num_attention_heads=4,
    attention_head_dim=40,  # width 160
    in_channels=LATENT_CHANNELS,
    out_channels=LATENT_CHANNELS,  # ε only (no learned variance)
    num_layers=6,
    sample_size=16,  # latent pixels: 64 image pixels
    patch_size=2,  # 8×8 = 64 tokens
    num_embeds_ada_norm=1,  # one class ("an image") + DiT's null label for CFG
)

#: the single class label; the null (dropped) label is ``NULL_LABEL``
IMAGE_LABEL, NULL_LABEL = 0, 1


class TinyDiT(DiTTransformer2DModel, CacheMixin):
    """``DiTTransformer2DModel`` + diffusers' ``CacheMixin``; ``class_labels`` defaults to the one class.

    Stock diffusers' DiT lacks ``CacheMixin`` (its pipeline predates the cache
    hooks); its blocks are ``BasicTransformerBlock``, which diffusers'
    ``TransformerBlockRegistry`` already knows, so FirstBlockCache, MagCache,
    TaylorSeer, PAB and FasterCache all find what they hook.
    """

    def forward(
        self,
        hidden_states: torch.Tensor,  # (B, 4, h, w)
        timestep: torch.Tensor | None = None,  # (B,)
        class_labels: torch.Tensor | None = None,  # (B,) long
        cross_attention_kwargs: dict[str, Any] | None = None,
        return_dict: bool = True,
    ) -> Transformer2DModelOutput | tuple[torch.Tensor]:
        b = hidden_states.shape[0]
        if timestep is None:
            raise InvalidInputError("TinyDiT needs a timestep (B,) tensor")
        timestep = torch.as_tensor(timestep, device=hidden_states.device)
        if timestep.ndim == 0:
            timestep = timestep.expand(b)
        if class_labels is None:
            class_labels = torch.full((b,), IMAGE_LABEL, dtype=torch.long, device=hidden_states.device)
        elif not torch.is_tensor(class_labels) or class_labels.shape != (b,):
            got = tuple(class_labels.shape) if torch.is_tensor(class_labels) else type(class_labels).__name__
            raise InvalidInputError(f"class_labels must be a ({b},) long tensor of 0 (image) or 1 (null), got {got}")
        elif bool(((class_labels != IMAGE_LABEL) & (class_labels != NULL_LABEL)).any()):
            raise InvalidInputError("TinyDiT has one class: class_labels must be 0 (image) or 1 (null, for guidance)")
        return super().forward(hidden_states, timestep, class_labels.long(), cross_attention_kwargs, return_dict)


def build_dit(**overrides: Any) -> TinyDiT:
    """A freshly initialised tinydit (``overrides`` change :data:`DIT_CONFIG`, e.g. for tiny test models)."""
    return TinyDiT(**{**DIT_CONFIG, **overrides})


def load_tinydit(
    device: str | torch.device = "cpu", *, path: str | Path | None = None, dtype: torch.dtype = torch.float32
) -> TinyDiT:
    """Load tinydit (shipped weights, or a folder written by ``python -m diffcore.prior.dit``), in eval mode."""
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError("device='cuda' was asked for but CUDA is not available; use device='cpu'")
    root = Path(path) if path is not None else WEIGHTS_DIR
    return load_model(TinyDiT, root, torch_dtype=dtype).to(dev).eval()


@dataclass(frozen=True)
class DiTRecipe:
    """Hyperparameters of the shipped run (163 s on an H200; about 2 h on 2 free CPU cores)."""

    seed: int = 0
    steps: int = 6000
    batch: int = 64
    crop: int = 16  # latent pixels
    lr: float = 1e-3
    warmup: int = 100
    eval_every: int = 500


def mean_eps_mse(metrics: dict[str, float]) -> tuple[float, float]:
    """(model, no-skill baseline) ε-MSE averaged over the timesteps :func:`evaluate_denoiser` probes."""
    model = [v for k, v in metrics.items() if k.startswith("eps_mse_t")]
    base = [v for k, v in metrics.items() if k.startswith("baseline_eps_mse_t")]
    return sum(model) / len(model), sum(base) / len(base)


def holdout_tiles(latents: torch.Tensor, size: int) -> torch.Tensor:
    """Non-overlapping ``size``² tiles of holdout latent crops: (N, C, s, s) -> (N·k, C, size, size)."""
    c = latents.shape[1]
    tiles = latents.unfold(2, size, size).unfold(3, size, size)  # (N, C, nh, nw, size, size)
    return tiles.permute(0, 2, 3, 1, 4, 5).reshape(-1, c, size, size)


def latent_data(data: str | Path | None = None, crop: int = 16) -> tuple[list[torch.Tensor], torch.Tensor, str]:
    """(training latent maps, holdout tiles (N, 4, crop, crop), description), all in tinysd's scaled latents."""
    from diffcore.data import to_tensor
    from diffcore.prior.autoencode import encode
    from diffcore.prior.recipe import holdout_latents, split_images
    from diffcore.zoo import load_tinysd

    vae = load_tinysd().vae
    train_imgs, holdout, desc = split_images(data)
    maps = []
    for im in train_imgs:
        x = to_tensor(im.pixels)[None]
        maps += [encode(vae, x)[0], encode(vae, x.flip(-1))[0]]  # (4, h, w) each
    hold = holdout_tiles(holdout_latents(vae, holdout), crop)  # (N·k, 4, crop, crop)
    desc += f"; {crop}x{crop} crops of tinysd latents of the {len(train_imgs)} training photos and their mirrors"
    return maps, hold, desc + f"; holdout: {len(hold)} {crop}x{crop} latent tiles of the {len(holdout)} holdout photos"


def train_dit(recipe: DiTRecipe, work: Path, weights: Path, data: str | Path | None = None) -> TinyDiT:
    """Train tinydit on tinysd latents of the training photos; save weights + training card to ``weights``."""
    maps, hold, desc = latent_data(data, recipe.crop)
    return train_on_latents(recipe, maps, hold, desc, work, weights)


def train_on_latents(
    recipe: DiTRecipe, maps: list[torch.Tensor], hold: torch.Tensor, desc: str, work: Path, weights: Path
) -> TinyDiT:
    """The training itself, on encoded latents (see :func:`latent_data`); runs on CUDA when present."""
    from accelerate import PartialState

    from diffcore.data import LatentCrops
    from diffcore.prior.objectives import DenoiserObjective
    from diffcore.prior.recipe import evaluate_denoiser
    from diffcore.train import TrainConfig, train

    def holdout_metrics(dit: TinyDiT) -> dict[str, float]:
        with torch.no_grad():  # on CPU: evaluate_denoiser draws its noise there, seeded
            return evaluate_denoiser(copy.deepcopy(dit).float().cpu(), hold)

    torch.manual_seed(recipe.seed)
    dit = build_dit()
    cfg = TrainConfig(
        steps=recipe.steps,
        batch_size=recipe.batch,
        lr=recipe.lr,
        warmup_steps=min(recipe.warmup, recipe.steps // 10),
        ema_decay=0.999,
        grad_clip=1.0,
        seed=recipe.seed,
        checkpoint_every=250,
        log_every=25,
    )
    ds = LatentCrops(maps, size=recipe.crop, length=cfg.steps * cfg.batch_size, seed=recipe.seed)
    result = train(
        DenoiserObjective(dit, DDPMScheduler.from_config(SCHEDULER_CONFIG)),
        ds,
        cfg,
        work,
        eval_fn=lambda obj, step: holdout_metrics(obj.unet),
        eval_every=recipe.eval_every,
    )
    dit = result.objective.unet
    if not PartialState().is_main_process:
        return dit
    metrics = holdout_metrics(dit)
    model_mse, base_mse = mean_eps_mse(metrics)
    save_model(
        dit,
        weights,
        {
            "model": "tinydit (diffusers DiTTransformer2DModel + CacheMixin, epsilon prediction, one class)",
            "data": desc,
            "steps": cfg.steps,
            "seed": recipe.seed,
            "wall_time_s": round(result.wall_time_s, 1),
            "machine": torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU",
            "params": sum(p.numel() for p in dit.parameters()),
            "config": asdict(cfg),
            "recipe": asdict(recipe),
            "metrics": {
                "holdout_eps_mse_mean": round(model_mse, 5),
                "baseline_eps_mse_mean": round(base_mse, 5),
                **{k: round(v, 5) for k, v in metrics.items()},
            },
            "command": f"python -m diffcore.prior.dit --steps {cfg.steps} --batch {cfg.batch_size} --seed {recipe.seed}",
        },
        storage_dtype=torch.float16,
    )
    return dit


def main(argv: list[str] | None = None) -> None:
    """``python -m diffcore.prior.dit``: train tinydit (resumable)."""
    p = argparse.ArgumentParser(prog="python -m diffcore.prior.dit", description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path("runs/tinydit"), help="checkpoints and logs (resumable)")
    p.add_argument("--weights", type=Path, default=None, help="where the final model goes (default: OUT/model)")
    p.add_argument("--data", default=None, help="a folder of your own images instead of the offline pool")
    p.add_argument("--smoke", action="store_true", help="20 steps at batch 4: checks the recipe runs end to end")
    defaults = DiTRecipe()
    for name in ("seed", "steps", "batch", "eval_every"):
        p.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(defaults, name))
    p.add_argument("--lr", type=float, default=defaults.lr)
    a = p.parse_args(argv)
    if a.smoke:
        a.steps, a.batch, a.eval_every = 20, 4, 10
    recipe = DiTRecipe(seed=a.seed, steps=a.steps, batch=a.batch, lr=a.lr, eval_every=a.eval_every)
    t0 = time.perf_counter()
    train_dit(recipe, a.out, a.weights or a.out / "model", a.data)
    print(f"tinydit trained in {time.perf_counter() - t0:.0f} s -> {a.weights or a.out / 'model'}")


if __name__ == "__main__":
    main()
