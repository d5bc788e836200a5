"""SDAR's conversion of the AR model into a block diffusion model (Cheng et al. 2025; training layout of BD3-LM,
Arriola et al. 2025).

Same weights, three changes: attention is block-causal (bidirectional inside
a block of ``block`` tokens, causal across blocks); the output at a position
predicts the token *at* that position (no logit shift), with masked positions
holding the ``<|mask|>`` token; and training is masked diffusion per block.
One forward pass sees the noisy sequence and the clean one side by side,
``[x_t ; x]``, both at positions ``0 … L-1``, under :func:`block_diffusion_mask`:
a noisy block attends to itself and to the clean blocks before it, a clean
block to the clean blocks up to itself. Each sample draws a mask rate
``t ~ U(ε, 1]``; the loss is the cross-entropy of the masked tokens weighted
by ``1/t`` (the masked-diffusion ELBO), averaged over all positions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from diffcore.errors import InvalidInputError
from difftext.limits import BLOCK_SIZES


def block_diffusion_mask(length: int, block: int) -> torch.Tensor:
    """Who may attend to whom in ``[x_t ; x]`` (2L × 2L, True = attend); ``length`` a multiple of ``block``."""
    if block < 1 or length % block:
        raise InvalidInputError(f"block size {block} does not divide the sequence length {length}")
    b = torch.arange(length) // block
    same = b[:, None] == b[None, :]
    earlier = b[:, None] > b[None, :]
    upto = b[:, None] >= b[None, :]
    top = torch.cat([same, earlier], 1)  # noisy queries: own block (noisy), earlier blocks (clean)
    bottom = torch.cat([torch.zeros_like(same), upto], 1)  # clean queries: clean blocks up to their own
    return torch.cat([top, bottom], 0)


class BlockDiffusionObjective(nn.Module):
    """Masked block diffusion on ``[x_t ; x]``; ``forward(batch (B, L) token ids)`` -> ``{"loss", "masked"}``.

    ``blocks``: the block size of each step is drawn from these (seeded by the
    training loop's RNG), so one model serves block sizes 4, 8 and 16.
    """

    def __init__(self, model, *, blocks: tuple[int, ...] = BLOCK_SIZES, mask_id: int, eps: float = 1e-3) -> None:
        super().__init__()
        self.model, self.blocks, self.mask_id, self.eps = model, tuple(blocks), mask_id, eps

    def forward(self, batch: torch.Tensor, block: int | None = None) -> dict[str, torch.Tensor]:
        x = batch.to(self.model.device)
        B, L = x.shape
        if block is None:
            block = self.blocks[int(torch.randint(len(self.blocks), (1,)))]
        t = torch.rand(B, device=x.device) * (1 - self.eps) + self.eps  # per-sample mask rate
        masked = torch.rand(B, L, device=x.device) < t[:, None]
        xt = torch.where(masked, torch.full_like(x, self.mask_id), x)
        attn = block_diffusion_mask(L, block).to(x.device)[None, None].expand(B, 1, 2 * L, 2 * L)
        pos = torch.arange(L, device=x.device).repeat(2)[None].expand(B, -1)
        logits = self.model(input_ids=torch.cat([xt, x], 1), attention_mask=attn, position_ids=pos).logits[:, :L]
        ce = F.cross_entropy(logits.transpose(1, 2).float(), x, reduction="none")  # (B, L), no shift
        loss = (ce * masked / t[:, None]).sum() / (B * L)
        return {"loss": loss, "masked": masked.float().mean()}


@torch.no_grad()
def nll_bound(
    model, stream: torch.Tensor, *, block: int, mask_id: int, window: int = 128, samples: int = 4, seed: int = 0
) -> float:
    """Monte-Carlo estimate of the block-diffusion NLL upper bound (nats per token) on ``stream``'s windows."""
    obj = BlockDiffusionObjective(model, blocks=(block,), mask_id=mask_id)
    n = len(stream) // window
    x = stream[: n * window].reshape(n, window)
    state = torch.get_rng_state()
    torch.manual_seed(seed)
    try:
        total = sum(
            obj(x[i : i + 16], block)["loss"].item() * len(x[i : i + 16]) for _ in range(samples) for i in range(0, n, 16)
        )
    finally:
        torch.set_rng_state(state)
    return total / (samples * n)
