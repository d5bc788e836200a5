"""FLOP counting with ``torch.utils.flop_counter`` (matmuls and convolutions)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode


def count_flops(fn: Callable[[], object]) -> int:
    """Floating-point operations of one call of ``fn`` (a multiply-add counts 2).

    Counts what PyTorch's FlopCounterMode counts: matrix multiplies,
    convolutions and attention; element-wise ops are not included.
    """
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        fn()
    return int(counter.get_total_flops())
