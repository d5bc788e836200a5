"""Sampling: diffusers schedulers under short names, and one loop that runs them all.

>>> from diffcore.sampling import sample
>>> x0 = sample(unet, "dpmpp_2m", torch.randn(4, 4, 32, 32), steps=20)
>>> edited = sample(unet, "ddim", torch.randn_like(z), steps=20, init=z, strength=0.4)  # SDEdit
"""

from diffcore.sampling.loop import sample
from diffcore.sampling.registry import SAMPLERS, list_samplers, make_scheduler, register_sampler

__all__ = ["SAMPLERS", "list_samplers", "make_scheduler", "register_sampler", "sample"]
