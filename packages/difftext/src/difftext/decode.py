"""Decoding: AR with a KV cache, and SDAR's block diffusion decoding (work in progress: dKV-Cache not yet).

Block decoding (SDAR): blocks left to right; committed blocks live in a
transformers ``DynamicCache``; inside a block, all masked positions are
predicted at once and diffusers' ``BlockRefinementScheduler`` commits those
whose confidence passes ``threshold`` (at least one per step, so at most
``block`` steps; ``threshold=1`` is the static one-per-step schedule). A
finished block is run once more, clean, to put its keys and values in the
cache (the "commit pass"). The prompt's whole blocks are prefilled
block-causally; its remainder opens the first generated block as given tokens.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from diffcore.errors import InvalidInputError


@dataclass
class Generation:
    tokens: list[int]  # the new tokens (EOS excluded)
    forwards: int  # model forward passes after the prefill
    seconds: float
    steps_per_block: list[int] = field(default_factory=list)


def _check(threshold: float, temperature: float, max_new_tokens: int) -> None:
    if not 0 < threshold <= 1:
        raise InvalidInputError(f"threshold must be in (0, 1], got {threshold}")
    if temperature < 0:
        raise InvalidInputError(f"temperature must be >= 0, got {temperature}")
    if max_new_tokens < 1:
        raise InvalidInputError(f"max_new_tokens must be >= 1, got {max_new_tokens}")


def block_causal(length: int, block: int, device=None) -> torch.Tensor:
    b = torch.arange(length, device=device) // block
    return b[:, None] >= b[None, :]


@torch.no_grad()
def generate_ar(model, prompt: list[int], *, max_new_tokens: int, eos_id: int, temperature: float = 0.0,
                generator: torch.Generator | None = None) -> Generation:  # fmt: skip
    """AR decoding with a KV cache: one forward pass per token (greedy at temperature 0)."""
    from transformers import DynamicCache

    _check(1.0, temperature, max_new_tokens)
    t0 = time.perf_counter()
    dev = model.device
    cache = DynamicCache()
    logits = model(input_ids=torch.tensor([prompt], device=dev), cache=cache, use_cache=True).logits[:, -1]
    out: list[int] = []
    forwards = 0
    while True:
        if temperature == 0:
            tok = int(logits.argmax(-1))
        else:
            probs = torch.softmax(logits.float() / temperature, -1)
            tok = int(torch.multinomial(probs.cpu(), 1, generator=generator))
        if tok == eos_id or len(out) >= max_new_tokens:
            break
        out.append(tok)
        if len(out) >= max_new_tokens:
            break
        logits = model(input_ids=torch.tensor([[tok]], device=dev), cache=cache, use_cache=True).logits[:, -1]
        forwards += 1
    return Generation(out, forwards, time.perf_counter() - t0)


@torch.no_grad()
def generate_blocks(model, prompt: list[int], *, max_new_tokens: int, block: int, mask_id: int, eos_id: int,
                    threshold: float = 0.9, temperature: float = 0.0, generator: torch.Generator | None = None,
                    on_step=None) -> Generation:  # fmt: skip
    """SDAR block diffusion decoding (see the module doc); ``on_step(block_tokens, committed_mask)`` for streaming."""
    from diffusers import BlockRefinementScheduler
    from transformers import DynamicCache

    _check(threshold, temperature, max_new_tokens)
    t0 = time.perf_counter()
    dev = model.device
    cache = DynamicCache()
    full = (len(prompt) // block) * block
    if full:
        ids = torch.tensor([prompt[:full]], device=dev)
        model(input_ids=ids, attention_mask=block_causal(full, block, dev)[None, None],
              position_ids=torch.arange(full, device=dev)[None], cache=cache, use_cache=True)  # fmt: skip
    sched = BlockRefinementScheduler(block_length=block, num_inference_steps=block, threshold=threshold, minimal_topk=1)
    sched.set_timesteps(block, device=dev, block_length=block)
    given, pos, out, forwards, steps = list(prompt[full:]), full, [], 0, []
    while len(out) < max_new_tokens:
        x = torch.tensor([given + [mask_id] * (block - len(given))], device=dev)
        prompt_mask = torch.arange(block, device=dev) < len(given)
        past = cache.get_seq_length()
        attn = torch.ones(1, 1, block, past + block, dtype=torch.bool, device=dev)
        position = torch.arange(pos, pos + block, device=dev)[None]
        n = 0
        while (x == mask_id).any():
            logits = model(input_ids=x, attention_mask=attn, position_ids=position, cache=cache, use_cache=True).logits
            cache.crop(-block)  # drop this step's keys and values: only clean blocks stay cached
            x = sched.step(logits, n, x, mask_token_id=mask_id, temperature=temperature, threshold=threshold,
                           prompt_mask=prompt_mask, generator=generator).prev_sample  # fmt: skip
            n += 1
            if on_step is not None:
                on_step(x[0].tolist(), (x[0] != mask_id).tolist())
        forwards += n
        steps.append(n)
        new = x[0, len(given) :].tolist()
        if eos_id in new:
            out += new[: new.index(eos_id)]
            break
        out += new
        if len(out) >= max_new_tokens:
            break
        model(input_ids=x, attention_mask=attn, position_ids=position, cache=cache, use_cache=True)  # commit pass
        forwards += 1
        pos += block
        given = []
    return Generation(out[:max_new_tokens], forwards, time.perf_counter() - t0, steps)
