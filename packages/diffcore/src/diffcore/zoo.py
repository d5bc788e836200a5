"""Shipped models. ``load_tinysd()`` returns the shared image prior, ``load_tinydit()`` the small DiT on its latents."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import AutoencoderKL, UNet2DModel

from diffcore.checkpoint import load_model
from diffcore.errors import InvalidInputError, UnknownNameError
from diffcore.prior.dit import TinyDiT

__all__ = ["TinyDiT", "TinySD", "load_autoencoder", "load_tinydit", "load_tinysd", "shared_tinysd"]

WEIGHTS = Path(__file__).resolve().parent / "weights"

#: shipped tinysd versions with an autoencoder (folders under ``weights/``): v2, the colour-faithful one
AUTOENCODER_NAMES: tuple[str, ...] = ("tinysd-v2",)
#: shipped tinysd versions with their UNet and tinydit too (what :func:`load_tinysd` loads). The name stays
#: "tinysd-v2": artifacts fitted on it (cache schedules, quantized states) are bound to it and to its model hash
TINYSD_NAMES: tuple[str, ...] = ("tinysd-v2",)
#: the version :func:`load_tinysd` returns when no name is given
DEFAULT_TINYSD = "tinysd-v2"
#: versions that shipped once and were retired, with why (issue 14): asking for one says so
RETIRED_TINYSD: dict[str, str] = {
    "tinysd": (
        "tinysd v1 ('tinysd') was retired (issue 14) once everything on its latents was retrained on tinysd-v2; "
        "use the default or 'tinysd-v2' (v1's weights stay in git history at commit cdeb62f, loadable with path=)"
    ),
}


@dataclass(frozen=True)
class TinySD:
    """The tinysd prior: autoencoder, denoiser and the scheduler config they were trained with.

    ``scheduler_config`` is a plain dict: build any sampler from it with
    ``diffcore.sampling.make_scheduler(name, tinysd.scheduler_config)``.
    """

    vae: AutoencoderKL
    unet: UNet2DModel
    scheduler_config: dict

    @property
    def latent_channels(self) -> int:
        return int(self.vae.config.latent_channels)


def _root(name: str | None, path: str | Path | None, names: tuple[str, ...] = TINYSD_NAMES) -> Path:
    """The weights folder of a shipped tinysd version among ``names``, or ``path``."""
    if name is not None and path is not None:
        raise InvalidInputError("give a shipped tinysd name or a path, not both")
    if name is not None and name not in names:
        shipped = ", ".join(names)
        if name in RETIRED_TINYSD:
            raise UnknownNameError(f"{RETIRED_TINYSD[name]}; shipped: {shipped}")
        raise UnknownNameError(f"no shipped tinysd {name!r} here; shipped: {shipped}")
    return Path(path) if path is not None else WEIGHTS / (name or DEFAULT_TINYSD)


def _device(device: str | torch.device) -> torch.device:
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError("device='cuda' was asked for but CUDA is not available; use device='cpu'")
    return dev


def load_tinysd(
    name: str | None = None,
    *,
    path: str | Path | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> TinySD:
    """Load tinysd: a shipped version by ``name``, or a folder written by ``diffcore train prior --out``.

    Args:
        name: one of :data:`TINYSD_NAMES` (default :data:`DEFAULT_TINYSD`).
        path: a folder with ``autoencoder/`` and ``unet/``; excludes ``name``.
        device: where the models go.
        dtype: their parameter dtype.

    Returns a :class:`TinySD`; models are in eval mode on ``device``.
    """
    from diffcore.prior.models import SCHEDULER_CONFIG

    root = _root(name, path)
    dev = _device(device)
    vae = load_model(AutoencoderKL, root / "autoencoder", torch_dtype=dtype).to(dev).eval()
    unet = load_model(UNet2DModel, root / "unet", torch_dtype=dtype).to(dev).eval()
    return TinySD(vae=vae, unet=unet, scheduler_config=dict(SCHEDULER_CONFIG))


def load_autoencoder(
    name: str | None = None,
    *,
    path: str | Path | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> AutoencoderKL:
    """Load a shipped tinysd version's autoencoder (one of :data:`AUTOENCODER_NAMES`), or the one under ``path``.

    ``path`` is a tinysd weights root holding ``autoencoder/``. Returned in eval mode on ``device``.
    """
    root = _root(name, path, AUTOENCODER_NAMES)
    return load_model(AutoencoderKL, root / "autoencoder", torch_dtype=dtype).to(_device(device)).eval()


def load_tinydit(
    name: str | None = None,
    *,
    path: str | Path | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> TinyDiT:
    """Load the tinydit trained on a shipped tinysd version's latents (``WEIGHTS/<name>/dit``), or the one at ``path``.

    ``path`` is a tinysd weights root (as ``diffcore train prior --weights``
    writes) holding ``dit/``. Returned in eval mode on ``device``.
    """
    root = _root(name, path)
    return load_model(TinyDiT, root / "dit", torch_dtype=dtype).to(_device(device)).eval()


_shared_lock = threading.Lock()
_shared: TinySD | None = None


def shared_tinysd() -> TinySD:
    """tinysd on CPU, loaded once per process: the apps' requests share it (inference only reads it)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = load_tinysd()
        return _shared
