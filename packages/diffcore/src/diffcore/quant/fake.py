"""Fake quantization: symmetric per-channel weights, asymmetric per-group activations.

Fake quantization (Jacob et al. 2018, eq. 1: ``r = S(q − Z)``) rounds a tensor onto the integer
grid and maps it back, ``x̂ = (clamp(round(x/s) + z, q_min, q_max) − z)·s``, so a
float model computes what the integer model would. Weights use ``z = 0`` and one
scale per output channel (``q ∈ [−(2^(b−1) − 1), 2^(b−1) − 1]``); a layer's input
uses one ``(s, z)`` per timestep group and per channel segment (see
:mod:`diffcore.quant.split`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from diffcore.quant.calibrators import fake_quant_values, weight_absmax


@dataclass(frozen=True, eq=False)
class QuantWeight:
    """A weight as integers and per-output-channel scales: ``w ≈ q · scale``."""

    q: torch.Tensor  # int8, the weight's shape (O, ...); values within ±(2^(bits−1) − 1)
    scale: torch.Tensor  # float32 (O,)
    bits: int

    def dequantize(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The fake-quantized weight ``q · scale``, (O, ...)."""
        shape = (-1,) + (1,) * (self.q.ndim - 1)
        return (self.q.float() * self.scale.view(shape)).to(dtype)


def quantize_weight(w: torch.Tensor, *, bits: int, method: str = "minmax", percentile: float = 99.99) -> QuantWeight:
    """Symmetric per-output-channel quantization of ``w`` (O, ...), clip chosen by ``method``."""
    qmax = 2 ** (bits - 1) - 1
    clip = weight_absmax(w, method=method, bits=bits, percentile=percentile)  # (O,)
    scale = torch.where(clip > 0, clip / qmax, torch.ones_like(clip))  # an all-zero channel stays zero
    shape = (-1,) + (1,) * (w.ndim - 1)
    q = (w.detach().float() / scale.view(shape)).round().clamp(-qmax, qmax).to(torch.int8)
    return QuantWeight(q=q, scale=scale.float(), bits=bits)


@dataclass(frozen=True, eq=False)
class ActQuant:
    """A layer input's quantizer: ``(scale, zero_point)`` per timestep group and channel segment.

    With ``split`` the input (B, C, …) is quantized as two segments, channels
    ``[0, split)`` and ``[split, C)``, each with its own scale.
    """

    scale: torch.Tensor  # float32 (G, S), S = 2 with split else 1
    zero_point: torch.Tensor  # int32 (G, S)
    bits: int
    split: int | None = None

    def __post_init__(self) -> None:
        # python numbers: the hook runs on every call, tensor indexing there costs more than the quantization
        object.__setattr__(self, "_params", [list(zip(s, z)) for s, z in zip(self.scale.tolist(), self.zero_point.tolist())])

    @property
    def groups(self) -> int:
        return self.scale.shape[0]

    def __call__(self, x: torch.Tensor, group: int) -> torch.Tensor:
        params = self._params[min(group, self.groups - 1)]
        if self.split is None:
            s, z = params[0]
            return fake_quant_values(x, s, z, self.bits)
        (s0, z0), (s1, z1) = params
        head, tail = x[:, : self.split], x[:, self.split :]  # (B, split, H, W), (B, C − split, H, W)
        return torch.cat([fake_quant_values(head, s0, z0, self.bits), fake_quant_values(tail, s1, z1, self.bits)], dim=1)


@dataclass(frozen=True, eq=False)
class LayerQuant:
    """Everything quantization keeps about one ``nn.Conv2d`` / ``nn.Linear``."""

    kind: str  # "Conv2d" or "Linear"
    weight: QuantWeight
    act: ActQuant | None  # None: the input stays float (weight-only, or never seen in calibration)
    weight_rel_err: float  # ‖w − ŵ‖ / ‖w‖

    def info(self) -> dict:
        """JSON-serialisable description (no tensors)."""
        return {
            "kind": self.kind,
            "weight_shape": list(self.weight.q.shape),
            "weight_bits": self.weight.bits,
            "act_bits": None if self.act is None else self.act.bits,
            "act_groups": None if self.act is None else self.act.groups,
            "split": None if self.act is None else self.act.split,
            "weight_rel_err": self.weight_rel_err,
        }
