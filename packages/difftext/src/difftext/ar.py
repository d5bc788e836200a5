"""The autoregressive model: a small transformers Llama, pre-trained on the corpus with diffcore's loop.

SDAR's premise is that AR pre-training is cheap and stable; the block-diffusion
model is then obtained from these same weights by a short conversion run.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import Dataset

CONTEXT = 256  # positions the model supports; training windows are shorter


@dataclass(frozen=True)
class ARRecipe:
    seed: int = 0
    vocab_size: int = 2048
    hidden: int = 256
    layers: int = 4
    heads: int = 4
    ffn: int = 688
    window: int = 128
    steps: int = 500  # picked by validation NLL in exploratory runs: longer ones overfit the 107 k training tokens
    batch: int = 16
    lr: float = 1e-3
    warmup: int = 100
    eval_every: int = 250
    sdar_steps: int = 300  # the conversion: 0.6 of the pre-training steps
    sdar_lr: float = 3e-4

    def smoke(self) -> ARRecipe:
        """A one-layer model, a few steps of each stage: checks the recipe end to end."""
        return dataclasses.replace(
            self, hidden=32, layers=1, heads=2, ffn=64, steps=4, batch=2, window=32, warmup=1, eval_every=2, sdar_steps=2
        )


def make_model(recipe: ARRecipe, vocab_size: int, pad_id: int, bos_id: int, eos_id: int):
    """A transformers ``LlamaForCausalLM`` of the recipe's size (tied embeddings)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=vocab_size, hidden_size=recipe.hidden, intermediate_size=recipe.ffn, num_hidden_layers=recipe.layers,
        num_attention_heads=recipe.heads, num_key_value_heads=recipe.heads, max_position_embeddings=CONTEXT,
        tie_word_embeddings=True, pad_token_id=pad_id, bos_token_id=bos_id, eos_token_id=eos_id, attn_implementation="sdpa",
    )  # fmt: skip
    torch.manual_seed(recipe.seed)
    return LlamaForCausalLM(cfg)


def token_stream(tokenizer, docs) -> torch.Tensor:
    """Every document tokenized, each ended by EOS, concatenated: (N,)."""
    ids: list[int] = []
    for d in docs:
        ids += tokenizer(d.text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    return torch.tensor(ids, dtype=torch.long)


class Windows(Dataset):
    """Random windows of a token stream, seeded per item (``length`` items)."""

    def __init__(self, stream: torch.Tensor, window: int, length: int, seed: int) -> None:
        self.stream, self.window, self.length, self.seed = stream, window, length, seed

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + i)
        start = int(torch.randint(0, len(self.stream) - self.window, (1,), generator=g))
        return self.stream[start : start + self.window]


class LMObjective(nn.Module):
    """Next-token cross-entropy (transformers shifts the labels)."""

    def __init__(self, model) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        batch = batch.to(self.model.device)
        return {"loss": self.model(input_ids=batch, labels=batch).loss}


@torch.no_grad()
def stream_nll(model, stream: torch.Tensor, window: int = 128, batch: int = 16) -> float:
    """Mean next-token NLL (nats) over non-overlapping windows of ``stream``."""
    n = (len(stream) - 1) // window
    x = stream[: n * window].reshape(n, window)
    total, count = 0.0, 0
    for i in range(0, n, batch):
        xb = x[i : i + batch].to(model.device)
        loss = model(input_ids=xb, labels=xb).loss
        total += loss.item() * xb.numel()
        count += xb.numel()
    return total / count


def perplexity(nll: float) -> float:
    return math.exp(nll)
