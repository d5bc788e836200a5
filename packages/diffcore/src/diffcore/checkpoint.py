"""Model checkpoints: safetensors + config JSON + a training card.

A checkpoint folder holds what diffusers' ``save_pretrained`` writes
(``config.json`` and ``diffusion_pytorch_model.safetensors``) plus its
:class:`~diffcore.train.TrainingCard` (``training_card.json`` and a readable
``training_card.md``). Loading goes through
safetensors only: a folder holding a pickle-based file (``.bin``, ``.pt``,
``.pth``, ``.ckpt``, ``.pkl``) and no safetensors is refused, never unpickled.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import itertools
import os
from pathlib import Path
from typing import Any, TypeVar

import torch

from diffcore.errors import CheckpointError, PickleRefusedError
from diffcore.jsonfile import read_object
from diffcore.train.card import CARD_JSON, TrainingCard

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
WEIGHTS = "diffusion_pytorch_model.safetensors"

M = TypeVar("M")


def save_model(model: Any, path: str | Path, card: TrainingCard, *, storage_dtype: Any = None) -> Path:
    """Save a diffusers ``ModelMixin`` with its :class:`~diffcore.train.TrainingCard` into ``path``.

    With ``storage_dtype`` (e.g. ``torch.float16``) the weights are stored in
    that dtype (half the bytes) and the card's details say so;
    :func:`load_model` casts them back with ``torch_dtype``. Files are written
    next to their final names and renamed into place, so a crash never leaves a
    half-written weights file.
    """
    if not isinstance(card, TrainingCard):
        raise TypeError(f"card must be a diffcore.train.TrainingCard, got {type(card).__name__}")
    out = Path(path)
    tmp = out.with_name(out.name + ".tmp")
    if storage_dtype is not None:
        card = dataclasses.replace(card, details={**card.details, "storage_dtype": str(storage_dtype).removeprefix("torch.")})
        model = copy.deepcopy(model).to(storage_dtype)
    model.save_pretrained(tmp, safe_serialization=True)
    card.write(tmp)
    out.mkdir(parents=True, exist_ok=True)
    for f in tmp.iterdir():
        os.replace(f, out / f.name)
    tmp.rmdir()
    return out


def check_folder(path: str | Path) -> Path:
    """Raise a :class:`CheckpointError` unless ``path`` is a loadable checkpoint."""
    p = Path(path)
    if not p.is_dir():
        raise CheckpointError(f"no checkpoint at {p}; train one with `diffcore train …` or pass the right folder")
    if not (p / "config.json").is_file():
        raise CheckpointError(f"{p} has no config.json; it is not a diffusers checkpoint folder")
    if not any(f.suffix == ".safetensors" for f in p.iterdir()):
        pickled = [f.name for f in p.iterdir() if f.suffix in PICKLE_SUFFIXES]
        if pickled:
            raise PickleRefusedError(
                f"{p} holds only pickle-format weights ({', '.join(pickled)}); diffcore never unpickles. "
                "Convert them once with safetensors.torch.save_file in a trusted environment."
            )
        raise CheckpointError(f"{p} has no .safetensors weights file")
    return p


def load_model(cls: type[M], path: str | Path, **kwargs: Any) -> M:
    """Load a diffusers model class from a checkpoint folder, safetensors only."""
    p = check_folder(path)
    try:
        model, info = cls.from_pretrained(p, use_safetensors=True, output_loading_info=True, **kwargs)
    except (OSError, ValueError, RuntimeError, TypeError, KeyError) as e:  # TypeError, KeyError: a config of wrong types
        raise CheckpointError(f"checkpoint at {p} is corrupt or does not match {cls.__name__}: {e}") from e
    # diffusers only warns about missing / unexpected tensors; a partial model is not a model
    bad = {k: v for k, v in info.items() if v}
    if bad:
        raise CheckpointError(f"checkpoint at {p} does not match {cls.__name__}: {bad}")
    return model


def load_card(path: str | Path) -> dict[str, Any]:
    """The training card of a checkpoint folder."""
    return read_object(Path(path) / CARD_JSON, "training card")


def model_hash(model: torch.nn.Module) -> str:
    """SHA-256 (hex) over every parameter's and buffer's name, dtype, shape and bytes, in name order.

    Two models hash equal iff they hold the same tensors under the same names,
    whatever their class or device. Fitted artifacts (cache schedules,
    quantization state) record it, and applying one to a model with another
    hash is refused. Hash the float model: a quantized model holds other weights.
    """
    h = hashlib.sha256()
    named = dict(itertools.chain(model.named_parameters(), model.named_buffers()))
    for name in sorted(named):
        t = named[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
