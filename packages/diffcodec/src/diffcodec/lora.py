"""LoRA on tinysd's UNet through peft: add, save (safetensors), load and merge.

diffusers' ``UNet2DModel`` has no ``PeftAdapterMixin``, so the adapter is
injected with peft's ``inject_adapter_in_model`` and merged into the base
weights at load time (decoding then costs exactly one plain UNet pass).
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import torch
from diffusers import UNet2DModel
from peft import LoraConfig, get_peft_model_state_dict, inject_adapter_in_model, set_peft_model_state_dict
from peft.tuners.tuners_utils import BaseTunerLayer
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from diffcore.errors import CheckpointError
from diffcore.jsonfile import read_object

#: UNet layers that get a LoRA: attention projections, resnet convs and their time projections
TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "conv1", "conv2", "time_emb_proj"]
ADAPTER_FILE = "adapter.safetensors"
CONFIG_FILE = "config.json"


def add_lora(unet: UNet2DModel, rank: int) -> UNet2DModel:
    """Freeze ``unet`` and inject a rank-``rank`` LoRA (alpha = rank) in place; returns it."""
    unet.requires_grad_(False)
    inject_adapter_in_model(LoraConfig(r=rank, lora_alpha=rank, target_modules=TARGETS, init_lora_weights=True), unet)
    return unet


def save_lora(unet: UNet2DModel, path: str | Path, config: dict[str, Any]) -> Path:
    """Write the adapter weights (float16) and ``config`` (rank and whatever the codec needs) atomically."""
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in get_peft_model_state_dict(unet).items()}
    tmp = out / (ADAPTER_FILE + ".tmp")
    save_file(state, str(tmp))
    os.replace(tmp, out / ADAPTER_FILE)
    (out / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    return out


def read_config(path: str | Path) -> dict[str, Any]:
    """The adapter's ``config.json`` (a JSON object), or :class:`CheckpointError`."""
    return read_object(Path(path) / CONFIG_FILE, "adapter config")


def merged_unet(base: UNet2DModel, path: str | Path) -> UNet2DModel:
    """A copy of ``base`` with the adapter at ``path`` merged into its weights (eval mode, no grad)."""
    p = Path(path)
    cfg = read_config(p)
    if not (p / ADAPTER_FILE).is_file():
        raise CheckpointError(f"{p} has no {ADAPTER_FILE}")
    try:
        rank = int(cfg["rank"])
        state = {k: v.float() for k, v in load_file(str(p / ADAPTER_FILE)).items()}
    except (KeyError, TypeError, ValueError, SafetensorError) as e:
        raise CheckpointError(f"adapter at {p} is corrupt: {e}") from e
    if rank < 1:
        raise CheckpointError(f"adapter at {p} has rank {rank}; it must be >= 1")
    unet = add_lora(copy.deepcopy(base), rank)
    try:
        result = set_peft_model_state_dict(unet, state)
    except (RuntimeError, ValueError) as e:
        raise CheckpointError(f"adapter at {p} does not fit tinysd's UNet: {e}") from e
    if result.unexpected_keys:
        raise CheckpointError(f"adapter at {p} does not fit tinysd's UNet: unexpected {result.unexpected_keys[:3]}")
    for m in unet.modules():
        if isinstance(m, BaseTunerLayer):
            m.merge()
    return unet.requires_grad_(False).eval()
