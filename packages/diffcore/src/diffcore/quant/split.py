"""Where UNet skip concatenations split: Q-Diffusion's shortcut-splitting quantization.

In a UNet up block each resnet's input is ``cat([hidden, skip], dim=1)``: the
upsampled deep features and the encoder's skip features, whose ranges can
differ by orders of magnitude (Q-Diffusion, Li et al. 2023, "shortcut-splitting
quantization"). One scale for the concatenation wastes the grid on the
narrower half; splitting quantizes each half with its own scale,
``Q(x) = cat(Q_h(x_h), Q_s(x_s))``. ``conv_shortcut`` sees the concatenation
directly and ``conv1`` sees it after GroupNorm and SiLU. GroupNorm brings the
halves' ranges closer but its affine weights are per channel, so they still
differ; a group straddling the boundary shares statistics across it, which
does not move the channel where the halves meet. Both convolutions therefore
split at the same channel.

The split channel is read from the module structure: the stack of skip
channels pushed by ``conv_in`` and every down-block resnet and downsampler is
popped by every up-block resnet, whose hidden part is the previous resnet's
(or the mid block's) output channels. A model whose channels do not add up
this way (not a diffusers UNet, or an unusual block) gets no split.
"""

from __future__ import annotations

import torch


def _out_channels(module: torch.nn.Module) -> int | None:
    c = getattr(module, "out_channels", None)
    return c if isinstance(c, int) else None


def concat_splits(model: torch.nn.Module) -> dict[str, int]:
    """``{module name: split channel}`` for the convolutions whose input is a UNet skip concatenation.

    Empty for models without diffusers UNet up blocks (DiT, plain nets).
    """
    conv_in, down_blocks, up_blocks = (getattr(model, k, None) for k in ("conv_in", "down_blocks", "up_blocks"))
    if conv_in is None or down_blocks is None or up_blocks is None:
        return {}
    skips = [_out_channels(conv_in)]
    for block in down_blocks:
        skips.extend(_out_channels(r) for r in getattr(block, "resnets", ()))
        downsamplers = getattr(block, "downsamplers", None)
        if downsamplers is not None:
            skips.append(_out_channels(downsamplers[-1]))
    mid = getattr(model, "mid_block", None)
    last = mid if mid is not None and getattr(mid, "resnets", None) else down_blocks[-1]
    hidden = _out_channels(last.resnets[-1])

    splits: dict[str, int] = {}
    for b, block in enumerate(up_blocks):
        for i, resnet in enumerate(getattr(block, "resnets", ())):
            skip = skips.pop() if skips else None
            total = getattr(resnet, "in_channels", None)
            if hidden is None or skip is None or total != hidden + skip:
                return {}  # channels do not add up: not the concat structure this assumes
            for conv in ("conv1", "conv_shortcut"):
                m = getattr(resnet, conv, None)
                if isinstance(m, torch.nn.Conv2d) and m.in_channels == total:
                    splits[f"up_blocks.{b}.resnets.{i}.{conv}"] = hidden
            hidden = _out_channels(resnet)
    return splits if not skips else {}
