"""Decoding: AR with a KV cache, and SDAR's block diffusion decoding, with or without dKV-Cache.

Every decoder is a generator that yields a :class:`Step` after each model
forward pass (the app animates these) and returns the final
:class:`Generation`; :func:`run` drives one to the end. Forward passes are
counted from the first one, the prompt's included, for every decoder alike.

Block decoding (SDAR): blocks left to right; committed blocks live in a
transformers ``DynamicCache``; inside a block, all masked positions are
predicted at once and diffusers' ``BlockRefinementScheduler`` commits those
whose confidence passes ``threshold`` and at least ``block / steps`` per step
(static top-k; by default ``steps = block``, one token, so at most ``block``
steps; ``threshold=1`` leaves the static schedule alone). A
finished block's keys and values enter the cache in the same forward pass as
the next block's first step: the two blocks are one query under the
block-causal mask, which is exact (the clean block cannot see the masked
one). The prompt's whole blocks are prefilled the same way, with the first
step; its remainder opens the first generated block as given tokens.

dKV-Cache (Ma et al. 2025), delayed caching: a token decoded at step s is fed
once more at step s+1, now with its identity, and its keys and values from
that pass are cached and reused; only still-masked tokens (and the
just-decoded ones) are queries at each step. Tokens decoded at a block's last
step are carried into the next block's first step the same way. ``refresh``
(> 0) recomputes the whole current block every that many steps. The cached
keys and values were computed while some of the block was still masked: that
is the approximation, measured against the exact decoder. It is written for
one sequence at a time (the query length differs per sequence).
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from diffcore.errors import InvalidInputError
from difftext.limits import check_params, check_refresh, check_steps

if TYPE_CHECKING:  # diffusers is imported where the scheduler is built
    from diffusers import BlockRefinementScheduler


@dataclass(frozen=True)
class Generation:
    tokens: list[list[int]]  # per sequence, the new tokens (cut before the first EOS)
    forwards: int  # model forward passes, the prompt's included
    seconds: float
    steps_per_block: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Step:
    """Progress after one forward pass (sequence 0 of the batch)."""

    done: list[int]  # new tokens of finished blocks (AR: every new token)
    block: list[int | None]  # the current block's new tokens, None where still masked (AR: empty)
    forwards: int
    seconds: float


Decoder = Generator[Step, None, Generation]


def run(decoder: Decoder) -> Generation:
    """Drive a decoder to its end and return its :class:`Generation`."""
    while True:
        try:
            next(decoder)
        except StopIteration as stop:
            return stop.value


def block_causal(length: int, block: int, device=None) -> torch.Tensor:
    b = torch.arange(length, device=device) // block
    return b[:, None] >= b[None, :]


def _prompts(prompts: list[list[int]], device) -> torch.Tensor:
    if not prompts or any(len(p) != len(prompts[0]) for p in prompts) or not prompts[0]:
        raise InvalidInputError("prompts must be a non-empty batch of non-empty token lists of equal length")
    return torch.tensor(prompts, device=device)


def _cut(rows: torch.Tensor, eos_id: int, max_new_tokens: int) -> list[list[int]]:
    out = []
    for r in rows.tolist():
        r = r[:max_new_tokens]
        out.append(r[: r.index(eos_id)] if eos_id in r else r)
    return out


def _has_eos(rows: torch.Tensor, eos_id: int) -> torch.Tensor:
    return (rows == eos_id).any(1) if rows.numel() else torch.zeros(len(rows), dtype=torch.bool, device=rows.device)


@torch.no_grad()
def ar(
    model,
    prompts: list[list[int]],
    *,
    max_new_tokens: int,
    eos_id: int,
    temperature: float = 0.0,
    generator: torch.Generator | None = None,
) -> Decoder:
    """AR decoding with a KV cache: one forward pass per token (greedy at temperature 0)."""
    from transformers import DynamicCache

    check_params(1.0, temperature, max_new_tokens)
    t0 = time.perf_counter()
    ids = _prompts(prompts, model.device)
    cache = DynamicCache()
    out = ids.new_empty(len(ids), 0)
    logits = model(input_ids=ids, cache=cache, use_cache=True).logits[:, -1]
    forwards = 1
    while True:
        if temperature == 0:
            tok = logits.argmax(-1)
        else:
            probs = torch.softmax(logits.float() / temperature, -1)
            tok = torch.multinomial(probs.cpu(), 1, generator=generator).flatten().to(ids.device)
        out = torch.cat([out, tok[:, None]], 1)
        yield Step(_cut(out[:1], eos_id, max_new_tokens)[0], [], forwards, time.perf_counter() - t0)
        if out.shape[1] >= max_new_tokens or _has_eos(out, eos_id).all():
            break
        logits = model(input_ids=tok[:, None], cache=cache, use_cache=True).logits[:, -1]
        forwards += 1
    return Generation(_cut(out, eos_id, max_new_tokens), forwards, time.perf_counter() - t0)


def _scheduler(block: int, threshold: float, steps: int | None, device):
    """diffusers' scheduler: ``steps`` denoising steps per block commit at least ``block / steps`` tokens each (static
    top-k; ``None`` = ``block`` steps, one token), plus every token whose confidence passes ``threshold`` (dynamic)."""
    from diffusers import BlockRefinementScheduler

    steps = check_steps(block, steps)
    sched = BlockRefinementScheduler(block_length=block, num_inference_steps=steps, threshold=threshold, minimal_topk=1)
    sched.set_timesteps(steps, device=device, block_length=block)
    return sched


def _no_mask(logits: torch.Tensor, mask_id: int) -> torch.Tensor:
    """The mask token is never a prediction: committing it would leave the position masked and the block unfinished."""
    logits = logits.clone()
    logits[..., mask_id] = float("-inf")
    return logits


def _refine(
    sched: BlockRefinementScheduler,
    logits: torch.Tensor,
    n: int,
    x: torch.Tensor,
    mask_id: int,
    temperature: float,
    threshold: float,
    prompt_mask: torch.Tensor | None,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """One refinement step of a block: commit the confident masked positions (the mask token is never a prediction)."""
    out = sched.step(
        _no_mask(logits, mask_id),
        n,
        x,
        mask_token_id=mask_id,
        temperature=temperature,
        threshold=threshold,
        prompt_mask=prompt_mask,
        generator=generator,
    )
    return out.prev_sample


def _block_view(x: torch.Tensor, start: int, mask_id: int) -> list[int | None]:
    return [None if t == mask_id else t for t in x[0, start:].tolist()]


@torch.no_grad()
def blocks(
    model,
    prompts: list[list[int]],
    *,
    max_new_tokens: int,
    block: int,
    mask_id: int,
    eos_id: int,
    threshold: float = 0.9,
    temperature: float = 0.0,
    steps: int | None = None,
    generator: torch.Generator | None = None,
) -> Decoder:
    """SDAR block diffusion decoding, exact, for a batch of equal-length prompts (see the module doc)."""
    from transformers import DynamicCache

    check_params(threshold, temperature, max_new_tokens)
    t0 = time.perf_counter()
    dev = model.device
    ids = _prompts(prompts, dev)
    B, P = ids.shape
    full = (P // block) * block
    sched = _scheduler(block, threshold, steps, dev)
    cache = DynamicCache()
    ctx = ids[:, :full]  # clean tokens not yet in the cache (the prompt's whole blocks, then the last finished block)
    x = torch.cat([ids[:, full:], torch.full((B, block - (P - full)), mask_id, device=dev)], 1)
    given = P - full
    prompt_mask = torch.arange(block, device=dev) < given
    pos = 0  # position of ctx's first token
    out = ids.new_empty(B, 0)
    forwards, steps = 0, []
    while True:
        n = 0
        while (x == mask_id).any():
            q = torch.cat([ctx, x], 1)
            past = cache.get_seq_length()
            attn = torch.cat(
                [torch.ones(q.shape[1], past, dtype=torch.bool, device=dev), block_causal(q.shape[1], block, dev)], 1
            )
            logits = model(
                input_ids=q,
                attention_mask=attn[None, None].expand(B, 1, -1, -1),
                position_ids=torch.arange(pos, pos + q.shape[1], device=dev)[None].expand(B, -1),
                cache=cache,
                use_cache=True,
            ).logits[:, -block:]
            cache.crop(-block)  # the current block's keys and values go; a clean ctx's stay
            pos += ctx.shape[1]
            ctx = ctx[:, :0]
            forwards += 1
            x = _refine(sched, logits, n, x, mask_id, temperature, threshold, prompt_mask, generator)
            n += 1
            yield Step(
                _cut(out[:1], eos_id, max_new_tokens)[0], _block_view(x, given, mask_id), forwards, time.perf_counter() - t0
            )
        steps.append(n)
        out = torch.cat([out, x[:, given:]], 1)
        if out.shape[1] >= max_new_tokens or _has_eos(out, eos_id).all():
            break
        ctx, x, given = x, torch.full((B, block), mask_id, device=dev), 0
        prompt_mask = torch.zeros(block, dtype=torch.bool, device=dev)
    return Generation(_cut(out, eos_id, max_new_tokens), forwards, time.perf_counter() - t0, steps)


@torch.no_grad()
def blocks_dkv(
    model,
    prompt: list[int],
    *,
    max_new_tokens: int,
    block: int,
    mask_id: int,
    eos_id: int,
    threshold: float = 0.9,
    temperature: float = 0.0,
    steps: int | None = None,
    refresh: int = 0,
    generator: torch.Generator | None = None,
) -> Decoder:
    """Block diffusion decoding with dKV-Cache's delayed caching, one sequence (see the module doc)."""
    from transformers import DynamicCache

    check_params(threshold, temperature, max_new_tokens)
    check_refresh(refresh)
    t0 = time.perf_counter()
    dev = model.device
    _prompts([prompt], dev)
    full = (len(prompt) // block) * block
    sched = _scheduler(block, threshold, steps, dev)
    cache = DynamicCache()
    # (token, position) fed with their identity this pass and cached after it: the prompt's whole blocks first
    pending: list[tuple[int, int]] = [(t, i) for i, t in enumerate(prompt)]
    given = len(prompt) - full
    x = torch.tensor([prompt[full:] + [mask_id] * (block - given)], device=dev)
    prompt_mask = torch.arange(block, device=dev) < given
    pos, out, forwards, steps, n = full, [], 0, [], 0
    block_start_cache = full  # cache length before the current block's own tokens
    while True:
        masked = (x[0] == mask_id).nonzero().flatten().tolist()
        if refresh and n and n % refresh == 0:  # recompute the whole block: drop its cached entries
            cache.crop(-(cache.get_seq_length() - block_start_cache))
            pending = [(int(x[0, i]), pos + i) for i in range(block) if i not in masked]
        q_tok = [t for t, _ in pending] + [mask_id] * len(masked)
        q_pos = [p for _, p in pending] + [pos + i for i in masked]
        past = cache.get_seq_length()
        attn = torch.ones(len(q_tok), past + len(q_tok), dtype=torch.bool, device=dev)
        attn[:, past:] = torch.tensor(q_pos, device=dev)[None] // block <= torch.tensor(q_pos, device=dev)[:, None] // block
        logits = model(
            input_ids=torch.tensor([q_tok], device=dev),
            attention_mask=attn[None, None],
            position_ids=torch.tensor([q_pos], device=dev),
            cache=cache,
            use_cache=True,
        ).logits
        forwards += 1
        cache.crop(-len(masked))  # keep the pending tokens' keys and values, drop the masked ones'
        block_logits = torch.zeros(1, block, logits.shape[-1], device=dev, dtype=logits.dtype)
        block_logits[0, masked] = logits[0, len(pending) :]
        before = x.clone()
        x = _refine(sched, block_logits, n, x, mask_id, temperature, threshold, prompt_mask, generator)
        n += 1
        yield Step(
            _cut(torch.tensor([out]), eos_id, max_new_tokens)[0],
            _block_view(x, given, mask_id),
            forwards,
            time.perf_counter() - t0,
        )
        pending = [(int(x[0, i]), pos + i) for i in masked if before[0, i] == mask_id and x[0, i] != mask_id]
        if (x == mask_id).any():
            continue
        steps.append(n)
        out += x[0, given:].tolist()
        if len(out) >= max_new_tokens or eos_id in out:
            break
        block_start_cache = cache.get_seq_length() + len(pending)
        pos += block  # next block: this block's last-decoded tokens are cached at its first step
        x = torch.full((1, block), mask_id, device=dev)
        prompt_mask = torch.zeros(block, dtype=torch.bool, device=dev)
        given, n = 0, 0
    return Generation(_cut(torch.tensor([out]), eos_id, max_new_tokens), forwards, time.perf_counter() - t0, steps)


def iter_steps(decoder: Decoder) -> Iterator[Step | Generation]:
    """Every :class:`Step` of a decoder, then its :class:`Generation`."""
    while True:
        try:
            yield next(decoder)
        except StopIteration as stop:
            yield stop.value
            return
