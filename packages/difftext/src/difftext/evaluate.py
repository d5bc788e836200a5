"""Evaluation shared by ``difftext eval`` and ``diffcore bench text``: held-out prompts, generative perplexity,
distinct-n and repetition, and the models' own likelihoods on a split.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from diffcore.errors import DataError
from difftext.corpus import load_documents, split_documents

PROMPT_TOKENS = 32


def prompts_from(
    tokenizer, split: str = "test", n: int = 16, length: int = PROMPT_TOKENS, data: str | None = None
) -> list[list[int]]:
    """``n`` prompts of ``length`` tokens from ``split``'s documents: windows spread evenly over its token stream.

    Windows start at a line start where possible, so a prompt reads as the beginning of a sentence or paragraph.
    """
    from difftext.ar import token_stream

    docs = split_documents(load_documents(data))[split]
    stream = token_stream(tokenizer, docs).tolist()
    span = (len(stream) - length) // n
    if span < 1:
        raise DataError(f"the {split} split has {len(stream)} tokens: too few for {n} prompts of {length}")
    out = []
    for i in range(n):
        start = i * span
        for j in range(start, start + span // 2):  # the next line start, if one comes soon
            if "\n" in tokenizer.decode([stream[j]]):
                start = j + 1
                break
        out.append(stream[start : start + length])
    return out


@torch.no_grad()
def generated_nll(ar_model, prompt: list[int], new: list[int]) -> tuple[float, int]:
    """Summed NLL (nats) of ``new`` given ``prompt`` under the AR model, and its token count."""
    if not new:
        return 0.0, 0
    ids = torch.tensor([prompt + new], device=ar_model.device)
    logp = torch.log_softmax(ar_model(input_ids=ids).logits[0, :-1].float(), -1)
    target = ids[0, 1:]
    nll = -logp[torch.arange(len(target)), target][len(prompt) - 1 :]
    return float(nll.sum()), len(new)


def distinct_n(tokens: list[int], n: int) -> float:
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


@dataclass
class SampleStats:
    """Accumulates generated samples of one decoding setting."""

    nll: float = 0.0
    scored: int = 0
    tokens: int = 0
    forwards: int = 0
    seconds: float = 0.0
    distinct2: list[float] = field(default_factory=list)
    distinct4: list[float] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)

    def add(self, ar_model, prompt: list[int], new: list[int], forwards: int, seconds: float, steps=()) -> None:
        s, k = generated_nll(ar_model, prompt, new)
        self.nll += s
        self.scored += k
        self.tokens += len(new)
        self.forwards += forwards
        self.seconds += seconds
        self.distinct2.append(distinct_n(new, 2))
        self.distinct4.append(distinct_n(new, 4))
        self.steps += list(steps)

    def summary(self) -> dict[str, float]:
        mean = lambda xs: sum(xs) / len(xs) if xs else float("nan")  # noqa: E731
        return {
            "gen-ppl (AR-scored)": math.exp(self.nll / self.scored) if self.scored else float("nan"),
            "forwards / token": self.forwards / max(self.tokens, 1),
            "tokens / s": self.tokens / self.seconds if self.seconds else float("nan"),
            "distinct-2": mean(self.distinct2),
            "distinct-4": mean(self.distinct4),
            "steps / block": mean(self.steps),
            "tokens": self.tokens,
        }
