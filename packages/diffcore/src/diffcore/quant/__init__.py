"""Post-training quantization of diffusion models: fake-quant W8A8 / W4A8 and real int8 on CPU.

- :func:`quantize` — one call: per-channel weights, per-timestep-group activation
  scales (Q-Diffusion, Li et al. 2023; TDQ, So et al. 2023), split scales on UNet
  skip concatenations (Q-Diffusion's shortcut splitting), min-max / percentile /
  MSE calibrators, calibrated by running the caller's ``calibrate()`` — with a
  feature cache on for joint cache + quant calibration (CacheQuant, Liu et al. 2025).
  Returns a :class:`QuantHandle` (``remove()``, ``save(dir)``, context manager).
- :func:`load_quantized` — re-apply saved state (safetensors + JSON), refusing a
  model whose :func:`model_hash` differs.
- :func:`calibration_timesteps` — which sampler steps to calibrate at (PTQ4DM's NDTC, or uniform).
- :func:`int8_dynamic` — real int8 ``nn.Linear`` on CPU (``torch.ao`` dynamic
  quantization), layers that lose accuracy left float.

>>> from diffcore.quant import QuantConfig, quantize
>>> with quantize(unet, QuantConfig(weight_bits=4), calibrate=lambda: sample(unet, "ddim", z, steps=20)):
...     x0 = sample(unet, "ddim", z, steps=20)
"""

from diffcore.checkpoint import model_hash
from diffcore.quant.api import QuantHandle, is_quantized, load_quantized, quantize
from diffcore.quant.calibrators import act_qparams, act_range, weight_absmax
from diffcore.quant.calibset import calibration_timesteps
from diffcore.quant.config import QuantConfig
from diffcore.quant.fake import ActQuant, LayerQuant, QuantWeight, quantize_weight
from diffcore.quant.int8 import Int8Report, int8_dynamic, paired_speedup
from diffcore.quant.split import concat_splits

__all__ = [
    "ActQuant",
    "Int8Report",
    "LayerQuant",
    "QuantConfig",
    "QuantHandle",
    "QuantWeight",
    "act_qparams",
    "act_range",
    "calibration_timesteps",
    "concat_splits",
    "int8_dynamic",
    "is_quantized",
    "load_quantized",
    "model_hash",
    "paired_speedup",
    "quantize",
    "quantize_weight",
    "weight_absmax",
]
