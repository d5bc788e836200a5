"""Removing a hook keeps the hooks registered after it running (diffusers' remove_hook does not)."""

from __future__ import annotations

import copy

import torch
from diffusers.hooks import HookRegistry, ModelHook

from diffcore import cache
from diffcore.quant import QuantConfig, load_quantized, quantize
from diffcore.sampling import sample
from diffcore.zoo import load_tinysd


class _Counting(ModelHook):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def new_forward(self, module, *args, **kwargs):
        self.calls += 1
        return self.fn_ref.original_forward(*args, **kwargs)


def test_removing_a_cache_keeps_a_later_new_forward_hook():
    unet = load_tinysd().unet
    x = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    ref = unet(x, torch.tensor([500])).sample
    handle = cache.apply(unet, cache.DeepCacheConfig(interval=2))
    counter = _Counting()
    HookRegistry.check_if_exists_or_initialize(unet).register_hook(counter, "counting")
    handle.remove()
    out = unet(x, torch.tensor([500])).sample
    assert counter.calls == 1  # still runs after the cache under it is gone
    assert torch.equal(out, ref)


def test_cache_removed_under_a_quantizer_leaves_the_quantizer_intact(tmp_path):
    """Joint calibration applies the cache, quantizes, then removes the cache: the quantizer must be unchanged."""
    sd = load_tinysd()
    calib = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(1))
    noise = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(2))
    joint = copy.deepcopy(sd.unet)
    with cache.apply(joint, cache.DeepCacheConfig(interval=3)):
        handle = quantize(
            joint,
            QuantConfig(weight_bits=8, act_bits=8, timestep_groups=4),
            calibrate=lambda: sample(joint, "ddim", calib, steps=12, progress=False),
        )
    handle.save(tmp_path / "q")
    fresh = copy.deepcopy(sd.unet)
    load_quantized(fresh, tmp_path / "q")
    a = sample(joint, "ddim", noise, steps=12, progress=False)
    b = sample(fresh, "ddim", noise, steps=12, progress=False)
    assert torch.equal(a, b)
