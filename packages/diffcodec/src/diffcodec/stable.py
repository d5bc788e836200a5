"""Thread-count-independent decoding: 1×1 convolutions as plain matrix products.

oneDNN sums the input channels of a 1×1 convolution (and of compressai's GDN,
which is one) in an order that depends on the number of threads, so a decoded
pixel can differ by one level between a 1-thread and a 2-thread process. A
matrix product over the channels is bit-identical across thread counts and
nearly as fast. :func:`thread_stable` switches a model's own modules (instances,
not classes) to it; the maths is unchanged.
"""

from __future__ import annotations

import types

import torch
from compressai.layers import GDN
from torch import nn


def _conv1x1(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    b, c, h, w = x.shape
    out = (weight.reshape(weight.shape[0], c) @ x.reshape(b, c, h * w)).reshape(b, -1, h, w)
    return out if bias is None else out + bias.view(1, -1, 1, 1)


def _conv_forward(self: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    return _conv1x1(x, self.weight, self.bias)


def _gdn_forward(self: GDN, x: torch.Tensor) -> torch.Tensor:
    c = x.shape[1]
    norm = _conv1x1(x**2, self.gamma_reparam(self.gamma).reshape(c, c, 1, 1), self.beta_reparam(self.beta))
    return x * (torch.sqrt(norm) if self.inverse else torch.rsqrt(norm))


def _is_pointwise(m: nn.Module) -> bool:
    return (
        isinstance(m, nn.Conv2d)
        and m.kernel_size == (1, 1)
        and m.stride == (1, 1)
        and m.padding in ((0, 0), "valid")
        and m.dilation == (1, 1)
        and m.groups == 1
    )


def thread_stable(model: nn.Module) -> nn.Module:
    """Make ``model``'s 1×1 convolutions and GDN layers thread-count independent (in place); returns it."""
    for m in model.modules():
        if _is_pointwise(m):
            m.forward = types.MethodType(_conv_forward, m)
        elif type(m) is GDN:
            m.forward = types.MethodType(_gdn_forward, m)
    return model
