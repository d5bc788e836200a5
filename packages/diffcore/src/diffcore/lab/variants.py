"""The Sampler lab's accelerated models: one cached / quantized copy of tinysd's UNet per choice.

Each (cache, quantization) pair gets its own copy of the UNet with the cache
applied for good (sessions keep per-request state) and the quantizer
calibrated *with the cache on* (joint calibration, as CacheQuant recommends).
Copies are built once per process and shared by every request.
"""

from __future__ import annotations

import copy
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import torch

from diffcore import cache
from diffcore.errors import InvalidInputError
from diffcore.lab.schedules import CALIB_SEED, list_schedules
from diffcore.metrics import psnr, relative_l2
from diffcore.prior.autoencode import decode
from diffcore.prior.generate import check_request, initial_noise
from diffcore.sampling import sample
from diffcore.zoo import TinySD, shared_tinysd


def cache_choices() -> dict[str, Callable[[], Any] | None]:
    """Label -> cache config factory (None: no cache)."""
    choices: dict[str, Callable[[], Any] | None] = {
        "none": None,
        "DeepCache N=2": lambda: cache.DeepCacheConfig(interval=2),
        "DeepCache N=3": lambda: cache.DeepCacheConfig(interval=3),
        "DeepCache N=5": lambda: cache.DeepCacheConfig(interval=5),
        "DeepCache N=3, quadratic": lambda: cache.DeepCacheConfig(interval=3, schedule="quadratic"),
        "Faster Diffusion (encoder propagation)": lambda: cache.EncoderPropagationConfig(),
    }
    for name, path in list_schedules().items():
        choices[f"searched: {name}"] = lambda p=path: cache.CacheSchedule.load(p)
    return choices


#: most images and the largest side (px) of one comparison (each is sampled twice)
MAX_IMAGES, MAX_SIZE = 8, 256

QUANT_CHOICES = ("none", "W8A8 (fake-quant)", "W4A8 (fake-quant)", "int8 dynamic (CPU)")

_lock = threading.Lock()
_built: OrderedDict[tuple, torch.nn.Module] = OrderedDict()
_MAX = 8


def accelerated_unet(tinysd: TinySD, cache_name: str, quant_name: str, sampler: str, steps: int) -> torch.nn.Module:
    """The UNet copy for this choice (built on first use, then shared)."""
    caches = cache_choices()
    if cache_name not in caches:
        raise InvalidInputError(f"unknown cache {cache_name!r}; choose one of {list(caches)}")
    if quant_name not in QUANT_CHOICES:
        raise InvalidInputError(f"unknown quantization {quant_name!r}; choose one of {list(QUANT_CHOICES)}")
    # fake-quant scales are calibrated on this sampler's trajectories: one copy per sampler and step count
    key = (cache_name, quant_name, sampler, steps) if quant_name.startswith("W") else (cache_name, quant_name)
    with _lock:
        if key in _built:
            _built.move_to_end(key)
            return _built[key]
        model = _build(tinysd, caches[cache_name], quant_name, sampler, steps)
        _built[key] = model
        while len(_built) > _MAX:
            _built.popitem(last=False)
        return model


def _build(tinysd: TinySD, make_cache: Callable[[], Any] | None, quant_name: str, sampler: str, steps: int) -> torch.nn.Module:
    from diffcore.quant import QuantConfig, int8_dynamic, quantize

    unet = copy.deepcopy(tinysd.unet)
    calib = torch.randn(4, 4, 16, 16, generator=torch.Generator().manual_seed(CALIB_SEED))
    if quant_name.startswith("int8"):
        x = calib[:2]

        def probe(m: torch.nn.Module) -> torch.Tensor:
            return torch.cat([m(x, torch.full((2,), t)).sample for t in (900, 500, 100)])

        unet, _ = int8_dynamic(unet, probe, max_rel_err=0.01)
    conf = make_cache() if make_cache is not None else None
    if conf is not None:
        if isinstance(conf, cache.CacheSchedule) and quant_name.startswith("int8"):
            raise InvalidInputError(
                "searched schedules are bound to the float UNet's weights; with int8 pick a DeepCache or Faster Diffusion cache"
            )
        cache.apply(unet, conf)
    if quant_name.startswith("W"):
        bits = 8 if quant_name.startswith("W8") else 4
        run_sampler, run_steps = (conf.sampler, conf.steps) if isinstance(conf, cache.CacheSchedule) else (sampler, steps)
        quantize(
            unet,
            QuantConfig(weight_bits=bits, act_bits=8),
            calibrate=lambda: sample(
                unet, run_sampler, calib, steps=run_steps, progress=False, base_config=tinysd.scheduler_config
            ),
        )
    return unet


def _to_pil(latents: torch.Tensor, sd: TinySD) -> list:
    from PIL import Image

    with torch.no_grad():
        img = ((decode(sd.vae, latents) + 1) * 127.5).round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()
    return [Image.fromarray(a) for a in img]


def compare(sampler: str, steps: int, cache_name: str, quant_name: str, seed: int, n: int, size: int) -> dict:
    """Sample the same noise with full compute and with the chosen acceleration; timings and errors.

    At most :data:`MAX_IMAGES` images of :data:`MAX_SIZE` px (sampled twice) and ``MAX_STEPS`` steps.
    """
    seed, n, size, steps = check_request(seed=seed, n=n, size=size, steps=steps, max_images=MAX_IMAGES, max_size=MAX_SIZE)
    sd = shared_tinysd()
    fast = accelerated_unet(sd, cache_name, quant_name, sampler, steps)
    noise = initial_noise(n, size, seed=seed)
    kw = dict(steps=steps, progress=False, base_config=sd.scheduler_config)
    t0 = time.perf_counter()
    ref = sample(sd.unet, sampler, noise, **kw)
    t_full = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = sample(fast, sampler, noise, **kw)
    t_fast = time.perf_counter() - t0
    img_ref = _to_pil(ref, sd)
    img_out = _to_pil(out, sd)
    with torch.no_grad():
        a, b = (decode(sd.vae, ref) + 1) / 2, (decode(sd.vae, out) + 1) / 2
    return {
        "full": img_ref,
        "fast": img_out,
        "t_full": t_full,
        "t_fast": t_fast,
        "psnr": float(psnr(b, a).clamp(max=99).mean()),
        "rel_l2": float(relative_l2(out, ref).mean()),
    }
