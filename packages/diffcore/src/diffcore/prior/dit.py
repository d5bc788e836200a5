"""tinydit: a small diffusers DiT (Peebles & Xie 2023) on tinysd latents.

The DiT plays the role of the big transformer backbones (PixArt, FLUX, Wan)
for the DiT feature caches (:mod:`diffcore.cache.dit`, TeaCache) and for int8
on a Linear-heavy model. It is a stock ``DiTTransformer2DModel`` (adaLN-Zero
blocks, patch 2) with diffusers' ``CacheMixin`` added, so ``enable_cache`` and
``cache_context`` work as on diffusers' own transformers; it learns
ε-prediction on 16² crops of tinysd latents (4×16×16, 64 tokens) with tinysd's
noise schedule, so every diffcore sampler applies. Its recipe is the ``dit``
stage of ``diffcore train prior`` (:mod:`diffcore.prior.recipe`); load the
shipped one with :func:`diffcore.zoo.load_tinydit`.

It is unconditional through a single class label: ``class_labels`` defaults to
0 ("an image"); label 1 is the null label that DiT's label dropout (10 %)
trains, so ``cond=(zeros, ones)`` with ``guidance`` gives classifier-free
guidance.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import DiTTransformer2DModel
from diffusers.models.cache_utils import CacheMixin
from diffusers.models.modeling_outputs import Transformer2DModelOutput

from diffcore.errors import InvalidInputError
from diffcore.prior.models import LATENT_CHANNELS

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
