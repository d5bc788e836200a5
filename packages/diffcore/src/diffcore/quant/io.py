"""Quantized state on disk: ``quant.safetensors`` (integers and scales) + ``quant.json`` (config, layers, model).

Per layer ``NAME`` the safetensors file holds ``NAME.weight_int`` (int8, the
weight's shape; 4-bit values are stored one per int8), ``NAME.weight_scale``
(float32 (O,)) and, when its input is quantized, ``NAME.act_scale`` (float32
(G, S)) and ``NAME.act_zero_point`` (int32 (G, S)) for G timestep groups and S
channel segments. The JSON names the config, each layer's kind and split, the
model class and :func:`~diffcore.checkpoint.model_hash` of the float model.
Reading validates every tensor, so a truncated or edited file is a
:class:`~diffcore.errors.CheckpointError`, never silent garbage.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from diffcore.errors import CheckpointError, InvalidInputError
from diffcore.jsonfile import read_object
from diffcore.quant.config import QuantConfig
from diffcore.quant.fake import ActQuant, LayerQuant, QuantWeight

FORMAT = "diffcore.quant/1"
TENSORS, META = "quant.safetensors", "quant.json"


def write_state(
    path: str | Path, *, config: QuantConfig, layers: dict[str, LayerQuant], model_class: str, model_hash: str
) -> Path:
    """Write quantized state into folder ``path``; files are renamed into place whole."""
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    for name, layer in layers.items():
        tensors[f"{name}.weight_int"] = layer.weight.q.cpu().contiguous()
        tensors[f"{name}.weight_scale"] = layer.weight.scale.cpu().contiguous()
        if layer.act is not None:
            tensors[f"{name}.act_scale"] = layer.act.scale.contiguous()
            tensors[f"{name}.act_zero_point"] = layer.act.zero_point.contiguous()
    meta = {
        "format": FORMAT,
        "config": config.to_dict(),
        "model_class": model_class,
        "model_hash": model_hash,
        "layers": {name: layer.info() for name, layer in layers.items()},
    }
    save_file(tensors, out / (TENSORS + ".tmp"), metadata={"format": FORMAT})
    (out / (META + ".tmp")).write_text(json.dumps(meta, indent=2) + "\n")
    os.replace(out / (TENSORS + ".tmp"), out / TENSORS)
    os.replace(out / (META + ".tmp"), out / META)
    return out


def _tensor(tensors: dict[str, torch.Tensor], key: str, dtype: torch.dtype, shape: tuple[int, ...], where: Path) -> torch.Tensor:
    t = tensors.get(key)
    if t is None:
        raise CheckpointError(f"{where} lacks tensor {key}; the quantized state is incomplete, save it again")
    if t.dtype != dtype or tuple(t.shape) != shape:
        raise CheckpointError(f"{where}: {key} is {t.dtype} {tuple(t.shape)}, expected {dtype} {shape}")
    if t.is_floating_point() and not (torch.isfinite(t).all() and (t > 0).all()):
        raise CheckpointError(f"{where}: {key} holds non-finite or non-positive scales")
    return t


def _layer(name: str, info: Any, tensors: dict[str, torch.Tensor], config: QuantConfig, where: Path) -> LayerQuant:
    try:
        kind, shape, split = info["kind"], tuple(info["weight_shape"]), info["split"]
        quantized_input, rel_err = info["act_bits"] is not None, float(info["weight_rel_err"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{where}: layer {name} has a malformed entry in {META}: {e}") from e
    if kind not in ("Conv2d", "Linear") or len(shape) < 2:
        raise CheckpointError(f"{where}: layer {name} is a {kind} of weight shape {shape}; only Conv2d and Linear are quantized")
    if split is not None and not (isinstance(split, int) and 0 < split < shape[1]):
        raise CheckpointError(f"{where}: layer {name} has split {split!r}, not a channel inside its {shape[1]} inputs")
    q = _tensor(tensors, f"{name}.weight_int", torch.int8, shape, where)
    qmax = 2 ** (config.weight_bits - 1) - 1
    if q.numel() and int(q.abs().max()) > qmax:
        raise CheckpointError(f"{where}: {name}.weight_int exceeds ±{qmax}, not {config.weight_bits}-bit")
    scale = _tensor(tensors, f"{name}.weight_scale", torch.float32, shape[:1], where)
    act = None
    if quantized_input and config.act_bits is None:
        raise CheckpointError(f"{where}: layer {name} has activation scales but the config is weight-only")
    if quantized_input:
        segments = (config.timestep_groups, 1 if split is None else 2)
        a_scale = _tensor(tensors, f"{name}.act_scale", torch.float32, segments, where)
        a_zero = _tensor(tensors, f"{name}.act_zero_point", torch.int32, segments, where)
        if (a_zero < 0).any() or (a_zero > 2**config.act_bits - 1).any():
            raise CheckpointError(f"{where}: {name}.act_zero_point is outside [0, {2**config.act_bits - 1}]")
        act = ActQuant(scale=a_scale, zero_point=a_zero, bits=config.act_bits, split=split)
    return LayerQuant(kind=kind, weight=QuantWeight(q=q, scale=scale, bits=config.weight_bits), act=act, weight_rel_err=rel_err)


def read_state(path: str | Path) -> tuple[QuantConfig, dict[str, LayerQuant], dict[str, Any]]:
    """Read what :func:`write_state` wrote: ``(config, layers, meta)``; anything amiss is a ``CheckpointError``."""
    p = Path(path)
    if not (p / META).is_file() or not (p / TENSORS).is_file():
        raise CheckpointError(f"no quantized state at {p}: expected {META} and {TENSORS}, written by handle.save(path)")
    meta = read_object(p / META, "quantized state")
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{p / META} is not diffcore quantized state (format {FORMAT!r})")
    try:
        config = QuantConfig.from_dict(meta["config"])
        layers_info, _, _ = meta["layers"], meta["model_class"], meta["model_hash"]
    except (KeyError, InvalidInputError) as e:
        raise CheckpointError(f"{p / META} is malformed: {e}") from e
    try:
        tensors = load_file(p / TENSORS)
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{p / TENSORS} is corrupt: {e}") from e
    if not isinstance(layers_info, dict):
        raise CheckpointError(f"{p / META}: 'layers' must be a mapping of layer names")
    layers = {name: _layer(name, info, tensors, config, p) for name, info in layers_info.items()}
    return config, layers, meta
