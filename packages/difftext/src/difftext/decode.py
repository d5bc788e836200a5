"""Decoding: AR with a KV cache, and SDAR's block diffusion decoding, with or without dKV-Cache.

Block decoding (SDAR): blocks left to right; committed blocks live in a
transformers ``DynamicCache``; inside a block, all masked positions are
predicted at once and diffusers' ``BlockRefinementScheduler`` commits those
whose confidence passes ``threshold`` (at least one per step, so at most
``block`` steps; ``threshold=1`` is the static one-per-step schedule). A
finished block is run once more, clean, to put its keys and values in the
cache (the "commit pass"). The prompt's whole blocks are prefilled
block-causally; its remainder opens the first generated block as given tokens.

dKV-Cache (Ma et al. 2025), delayed caching: a token decoded at step s is fed
once more at step s+1, now with its identity, and its keys and values from
that pass are cached and reused; only still-masked tokens (and the just-decoded
ones) are queries at each step. Tokens decoded at a block's last step are
carried into the next block's first step the same way, so no commit pass is
needed. ``refresh`` (> 0) recomputes the whole current block every that many
steps. The cached keys and values were computed while some of the block was
still masked: that is the approximation, measured against the exact decoder.
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


@torch.no_grad()
def generate_blocks_dkv(model, prompt: list[int], *, max_new_tokens: int, block: int, mask_id: int, eos_id: int,
                        threshold: float = 0.9, temperature: float = 0.0, refresh: int = 0,
                        generator: torch.Generator | None = None, on_step=None) -> Generation:  # fmt: skip
    """Block diffusion decoding with dKV-Cache's delayed caching (see the module doc)."""
    from diffusers import BlockRefinementScheduler
    from transformers import DynamicCache

    _check(threshold, temperature, max_new_tokens)
    if refresh < 0:
        raise InvalidInputError(f"refresh must be >= 0, got {refresh}")
    t0 = time.perf_counter()
    dev = model.device
    cache = DynamicCache()
    full = (len(prompt) // block) * block
    if full:
        model(input_ids=torch.tensor([prompt[:full]], device=dev), attention_mask=block_causal(full, block, dev)[None, None],
              position_ids=torch.arange(full, device=dev)[None], cache=cache, use_cache=True)  # fmt: skip
    sched = BlockRefinementScheduler(block_length=block, num_inference_steps=block, threshold=threshold, minimal_topk=1)
    sched.set_timesteps(block, device=dev, block_length=block)
    pos, out, forwards, steps = full, [], 0, []
    pending: list[tuple[int, int]] = [(t, full + i) for i, t in enumerate(prompt[full:])]  # (token, position) to cache
    x = torch.tensor([[t for t, _ in pending] + [mask_id] * (block - len(pending))], device=dev)
    prompt_mask = torch.arange(block, device=dev) < len(pending)
    block_start_cache = cache.get_seq_length()
    n = 0
    while True:
        masked = (x[0] == mask_id).nonzero().flatten().tolist()
        if refresh and n and n % refresh == 0:  # recompute the whole block: drop its cached entries
            cache.crop(-(cache.get_seq_length() - block_start_cache))
            pending = [(int(x[0, i]), pos + i) for i in range(block) if i not in masked]
        q_tok = [t for t, _ in pending] + [mask_id] * len(masked)
        q_pos = [p for _, p in pending] + [pos + i for i in masked]
        past = cache.get_seq_length()
        attn = torch.ones(1, 1, len(q_tok), past + len(q_tok), dtype=torch.bool, device=dev)
        logits = model(input_ids=torch.tensor([q_tok], device=dev), attention_mask=attn,
                       position_ids=torch.tensor([q_pos], device=dev), cache=cache, use_cache=True).logits  # fmt: skip
        forwards += 1
        cache.crop(-len(masked))  # keep the pending tokens' keys and values, drop the masked ones'
        full_logits = torch.zeros(1, block, logits.shape[-1], device=dev, dtype=logits.dtype)
        full_logits[0, masked] = logits[0, len(pending) :]
        before = x.clone()
        x = sched.step(full_logits, n, x, mask_token_id=mask_id, temperature=temperature, threshold=threshold,
                       prompt_mask=prompt_mask, generator=generator).prev_sample  # fmt: skip
        n += 1
        if on_step is not None:
            on_step(x[0].tolist(), (x[0] != mask_id).tolist())
        pending = [(int(x[0, i]), pos + i) for i in masked if before[0, i] == mask_id and x[0, i] != mask_id]
        if (x == mask_id).any():
            continue
        steps.append(n)
        new = x[0, int(prompt_mask.sum()) :].tolist()
        if eos_id in new:
            out += new[: new.index(eos_id)]
            break
        out += new
        if len(out) >= max_new_tokens:
            break
        pos += block  # next block: this block's last-decoded tokens are cached at its first step
        x = torch.full((1, block), mask_id, device=dev)
        prompt_mask = torch.zeros(block, dtype=torch.bool, device=dev)
        block_start_cache = cache.get_seq_length() + len(pending)
        n = 0
    return Generation(out[:max_new_tokens], forwards, time.perf_counter() - t0, steps)
