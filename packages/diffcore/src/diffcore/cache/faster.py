"""Faster Diffusion's encoder propagation (Li et al., NeurIPS 2024): run the UNet encoder at key steps only.

The UNet encoder's features change little between adjacent steps while the
decoder's change a lot (the paper's fig. 2), so the encoder (down blocks and
mid block) runs only at *key time-steps* and the decoder at every step reads
the encoder features of the latest key step through the skip connections
(paper sec. 3.2). Prior noise injection (sec. 3.3) adds a little of the
initial noise back in late steps, ``z_t ← z_t + α·z_T`` for ``t < τ``, to keep
the high-frequency texture propagation smooths away. A hook sees the model's
input, not the sampler's state, so the injection is applied to the latent the
UNet is given at those steps, and only at non-key steps, where propagation
stands in for the encoder (so ``interval=1`` is exactly the uncached model).

The paper also batches the decoder over several non-key steps in parallel;
that trades memory for latency on a GPU and is not done here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from diffcore.cache.core import CacheHandle, CallState, register_cache
from diffcore.cache.reuse import ReusePolicy, apply_reuse, top_level_blocks
from diffcore.errors import InvalidInputError


@dataclass(frozen=True)
class EncoderPropagationConfig:
    """Faster Diffusion settings.

    Args:
        key_steps: explicit key calls (0-based; 0 is always key), or None for
            the default: the first ``dense_start`` calls, then every
            ``interval``-th.
        interval: spacing of key steps after the dense start.
        dense_start: leading calls that are all key steps (the encoder changes
            fastest at the start of sampling).
        noise_injection: α of prior noise injection (the paper's 0.003); 0 turns it off.
        injection_below: τ, the timestep (of 1000 training steps) under which
            noise is injected; the paper uses 900 on SD.
    """

    key_steps: tuple[int, ...] | None = None
    interval: int = 3
    dense_start: int = 3
    noise_injection: float = 0.003
    injection_below: int = 900

    def __post_init__(self) -> None:
        if isinstance(self.interval, bool) or not isinstance(self.interval, int) or self.interval < 1:
            raise InvalidInputError(f"interval must be an int >= 1 (1 makes every step a key step), got {self.interval!r}")
        if self.dense_start < 1:
            raise InvalidInputError(f"dense_start must be >= 1 (call 0 is always a key step), got {self.dense_start}")
        if self.key_steps is not None:
            ks = tuple(self.key_steps)
            if not ks or any(isinstance(k, bool) or not isinstance(k, int) or k < 0 for k in ks):
                raise InvalidInputError(f"key_steps must be non-negative ints, got {self.key_steps!r}")
            object.__setattr__(self, "key_steps", tuple(sorted(set(ks) | {0})))
        if self.noise_injection < 0:
            raise InvalidInputError(f"noise_injection must be >= 0, got {self.noise_injection}")

    def is_key(self, call: int) -> bool:
        if self.key_steps is not None:
            return call in self.key_steps
        return call < self.dense_start or (call - self.dense_start) % self.interval == self.interval - 1

    def bind(self, model: torch.nn.Module) -> ReusePolicy:
        encoder = tuple(n for n in top_level_blocks(model) if not n.startswith("up_blocks"))
        return _EncoderPolicy(self, encoder)


class _EncoderPolicy(ReusePolicy):
    def __init__(self, config: EncoderPropagationConfig, encoder: tuple[str, ...]) -> None:
        self.config, self.modules, self._encoder = config, encoder, frozenset(encoder)

    def reuse_at(self, call: int, num_calls: int | None) -> frozenset[str]:
        return frozenset() if self.config.is_key(call) else self._encoder

    def transform_input(self, state: CallState, sample: torch.Tensor, timestep: Any) -> torch.Tensor:
        alpha = self.config.noise_injection
        if alpha == 0.0:
            return sample
        if state.calls == 0:
            state.extra["z_T"] = sample  # (B, C, H, W): the first model input
            return sample
        t = float(torch.as_tensor(timestep).flatten()[0])
        if not self.config.is_key(state.calls) and t < self.config.injection_below:
            return sample + alpha * state.extra["z_T"]
        return sample


@register_cache(EncoderPropagationConfig)
def _apply(model: torch.nn.Module, config: EncoderPropagationConfig, handle: CacheHandle) -> None:
    apply_reuse(model, config.bind(model), handle)
