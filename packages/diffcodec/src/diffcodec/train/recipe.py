"""The codec recipe's hyperparameters and the helpers every stage shares."""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from pathlib import Path

from torch import nn

from diffcore.train import Run, TrainConfig, TrainingCard

WEIGHTS = Path(__file__).resolve().parent.parent / "weights"


@dataclass(frozen=True)
class CodecRecipe:
    """Step counts and hyperparameters of the codec's stages (defaults: the shipped run).

    The λ tuples are recipe fields but not command-line flags (the stage runner
    makes flags of scalar fields only).
    """

    seed: int = 0
    crop: int = 32  # latent crop side (128 px)
    jitter_copies: int = 2  # colour-jittered copies of each colour training photo, encoded beside it
    hyper_steps: int = 1000
    hyper_batch: int = 32
    hyper_lr: float = 2e-3
    lora_rank: int = 8
    joint_steps: int = 500
    joint_batch: int = 8
    joint_lr: float = 3e-4
    structural_weight: float = 0.5  # weight of (1 − MS-SSIM) beside L1 in the pixel loss
    rdeic_lambdas: tuple[float, ...] = (0.5, 2.0, 8.0)
    rdeic_steps: int = 1200
    rdeic_batch: int = 32
    rdeic_lr: float = 2e-3
    relay_steps: int = 250
    relay_batch: int = 4
    relay_lr: float = 5e-4
    relay_max_steps: int = 5
    base_lambdas: tuple[float, ...] = (15.0, 30.0, 60.0)  # on MSE of [-1, 1] pixels: compressai 0.0009-0.0035
    base_steps: int = 1500
    base_batch: int = 16
    base_crop: int = 64
    base_lr: float = 5e-4
    eval_every: int = 250

    def smoke(self) -> CodecRecipe:
        """A few steps per stage at tiny batches: checks the recipe end to end."""
        return dataclasses.replace(
            self,
            crop=16,
            jitter_copies=1,
            hyper_steps=6,
            hyper_batch=4,
            joint_steps=3,
            joint_batch=2,
            rdeic_steps=6,
            rdeic_batch=4,
            relay_steps=2,
            relay_batch=2,
            base_steps=4,
            base_batch=2,
            eval_every=3,
        )


def train_config(steps: int, batch: int, lr: float, seed: int, clip: float | None = 1.0) -> TrainConfig:
    """No clipping for rate-distortion runs: compressai's aux loss has huge gradients on its quantiles
    alone, and a global-norm clip would starve every other parameter."""
    return TrainConfig(
        steps=steps, batch_size=batch, lr=lr, warmup_steps=min(100, steps // 10), ema_decay=None, grad_clip=clip, seed=seed
    )


def stage_card(
    what: str, data: str, parameters: int, cfg: TrainConfig, recipe: CodecRecipe, run: Run, stage: str, metrics: dict
) -> TrainingCard:
    """The training card of one shipped folder of ``stage``."""
    return run.card(stage, model=what, data=data, config=cfg, parameters=parameters, metrics=metrics, recipe=asdict(recipe))


def lora_parameters(unet: nn.Module) -> int:
    """Number of LoRA parameters: what the adapter folder ships (the UNet is tinysd's)."""
    return sum(p.numel() for n, p in unet.named_parameters() if "lora_" in n)


def unet_with_lora(rank: int) -> nn.Module:
    """tinysd's UNet (the default version), frozen, with a fresh rank-``rank`` LoRA."""
    from diffcodec.lora import add_lora
    from diffcore.zoo import load_tinysd

    return add_lora(load_tinysd().unet, rank)
