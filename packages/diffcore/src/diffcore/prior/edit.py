"""Editing photos with tinysd: SDEdit image-to-image and inpainting of a masked region.

* :func:`img2img` — SDEdit (Meng et al. 2022): the photo's latent is noised to the
  level that ``strength`` selects and denoised over the remaining steps, so low
  strength keeps the photo and high strength lets the prior redraw it
  (:func:`diffcore.sampling.sample` with ``init`` and ``strength``, diffusers'
  img2img ``get_timesteps``).
* :func:`inpaint` — the masked region is generated while the rest is kept: after
  every step the known latent, noised to that step's level, replaces the unmasked
  region (RePaint, Lugmayr et al. 2022, eq. 8, without resampling; what diffusers'
  SD inpaint pipeline does with a plain 4-channel UNet).

Work is bounded by :data:`MAX_SIDE`: larger uploads are downscaled (longer side)
before encoding, and every side is cropped to a multiple of 16 px (the UNet
halves the ×4 latent twice). Runs are seeded: one seed, one result.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from diffcore.errors import InvalidInputError
from diffcore.prior.autoencode import decode, encode
from diffcore.prior.generate import MAX_STEPS
from diffcore.sampling import sample
from diffcore.sampling.loop import Callback, ModelDenoiser
from diffcore.validate import check_count, check_seed
from diffcore.zoo import TinySD

#: uploads are downscaled so their longer side is at most this many pixels before encoding
MAX_SIDE = 256
#: sides are cropped to a multiple of this (latent ×4, then the UNet's two halvings)
MULTIPLE = 16
#: most pixels an upload may have before any work (PIL's own bomb limit is ~89 MP)
MAX_PIXELS = 40_000_000


@dataclass(frozen=True)
class Edit:
    """One edit's images, all (H, W, 3) uint8 at the working size.

    Attributes:
        source: the photo as encoded (downscaled to :data:`MAX_SIDE`, cropped to :data:`MULTIPLE`).
        noised: the latent the sampler started from (the photo noised to ``start_timestep``), decoded.
        image: the result.
        start_timestep: the (VP) timestep of the first denoising step.
        denoising_steps: model calls the edit ran (``int(steps·strength)`` steps).
        seconds: wall time of encoding, sampling and decoding.
    """

    source: np.ndarray
    noised: np.ndarray
    image: np.ndarray
    start_timestep: float
    denoising_steps: int
    seconds: float


def prepare(image: Any, *, max_side: int = MAX_SIDE) -> np.ndarray:
    """A PIL image or uint8 array (H, W), (H, W, 3) or opaque (H, W, 4) -> RGB (h, w, 3) uint8 for editing.

    Downscaled (Lanczos) so the longer side is at most ``max_side``, then
    centre-cropped to multiples of :data:`MULTIPLE`.
    """
    if isinstance(image, Image.Image):
        if image.width * image.height > MAX_PIXELS:
            raise InvalidInputError(f"image has {image.width}×{image.height} px; at most {MAX_PIXELS:,} pixels")
        if image.mode not in ("L", "RGB", "RGBA"):
            image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
        arr = np.asarray(image)
    elif isinstance(image, np.ndarray):
        arr = image
    else:
        raise InvalidInputError(f"image must be a PIL image or a uint8 array, got {type(image).__name__}")
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise InvalidInputError(f"image must be uint8 (H, W), (H, W, 3) or (H, W, 4), got {arr.dtype} {arr.shape}")
    if arr.shape[0] * arr.shape[1] > MAX_PIXELS:
        raise InvalidInputError(f"image has {arr.shape[1]}×{arr.shape[0]} px; at most {MAX_PIXELS:,} pixels")
    if arr.ndim == 3 and arr.shape[2] == 4:
        if (arr[..., 3] < 255).any():
            raise InvalidInputError("image has transparent pixels; flatten it onto a background first")
        arr = arr[..., :3]
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if isinstance(max_side, bool) or not isinstance(max_side, int) or max_side < MULTIPLE:
        raise InvalidInputError(f"max_side must be an int >= {MULTIPLE}, got {max_side!r}")
    h, w = arr.shape[:2]
    if min(h, w) * min(1.0, max_side / max(h, w)) < MULTIPLE:
        raise InvalidInputError(f"image is {w}×{h} px; both sides must be at least {MULTIPLE} px after downscaling")
    if max(h, w) > max_side:
        scale = max_side / max(h, w)
        h, w = max(MULTIPLE, round(h * scale)), max(MULTIPLE, round(w * scale))
        arr = np.asarray(Image.fromarray(arr).resize((w, h), Image.Resampling.LANCZOS))
    ch, cw = h - h % MULTIPLE, w - w % MULTIPLE
    top, left = (h - ch) // 2, (w - cw) // 2
    return np.ascontiguousarray(arr[top : top + ch, left : left + cw])


def box_mask(height: int, width: int, box: tuple[float, float, float, float]) -> np.ndarray:
    """A (height, width) bool mask, True inside ``box = (left, top, right, bottom)`` given as fractions in [0, 1]."""
    if len(box) != 4 or not all(isinstance(v, (int, float)) and 0 <= v <= 1 for v in box):
        raise InvalidInputError(f"box must be (left, top, right, bottom) fractions in [0, 1], got {box!r}")
    left, top, right, bottom = box
    if right <= left or bottom <= top:
        raise InvalidInputError(f"box must have right > left and bottom > top, got {box!r}")
    mask = np.zeros((height, width), dtype=bool)
    rows = slice(round(top * height), max(round(bottom * height), round(top * height) + 1))  # at least one row
    cols = slice(round(left * width), max(round(right * width), round(left * width) + 1))
    mask[rows, cols] = True
    return mask


def _check_run(strength: Any, steps: Any, seed: Any) -> None:
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0 < strength <= 1:
        raise InvalidInputError(f"strength must be in (0, 1] (0.3 keeps the photo, 1.0 redraws it), got {strength!r}")
    check_count(steps, "steps", high=MAX_STEPS)
    if int(steps * strength) < 1:
        raise InvalidInputError(f"strength {strength} of {steps} steps runs no step; raise one of them")
    check_seed(seed)


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) in [-1, 1] -> (H, W, 3) uint8."""
    return ((x[0].clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()


def _edit(
    tinysd: TinySD,
    pixels: np.ndarray,
    mask: np.ndarray | None,
    *,
    strength: float,
    sampler: str,
    steps: int,
    seed: int,
    progress: bool,
    callback: Callback | None,
) -> Edit:
    """Encode ``pixels``, run :func:`diffcore.sampling.sample` from them, decode; ``mask`` (h, w) True = generate."""
    _check_run(strength, steps, seed)
    t0 = time.perf_counter()
    dev = tinysd.unet.device
    x = torch.tensor(pixels).permute(2, 0, 1)[None].float().div(127.5).sub(1)  # (1, 3, H, W) in [-1, 1]
    z = encode(tinysd.vae, x.to(dev))  # (1, 4, H/4, W/4)
    noise = torch.randn(z.shape, generator=torch.Generator().manual_seed(seed)).to(dev)
    latent_mask = None
    if mask is not None:
        m = torch.from_numpy(mask).float()[None, None]  # (1, 1, H, W)
        # a latent cell is regenerated if any of its pixels is masked: the seam lies outside the kept pixels
        latent_mask = torch.nn.functional.max_pool2d(m, 4).to(dev)  # (1, 1, H/4, W/4)
    unet = ModelDenoiser(tinysd.unet)
    first: list[tuple[torch.Tensor, torch.Tensor]] = []

    def denoiser(x_t: torch.Tensor, t: torch.Tensor, cond: object) -> torch.Tensor:
        if not first:
            first.append((x_t, t))  # the VP state the model starts from, whatever the sampler's own state
        return unet(x_t, t, cond)

    out = sample(
        denoiser,
        sampler,
        noise,
        steps=steps,
        init=z,
        strength=strength,
        mask=latent_mask,
        base_config=tinysd.scheduler_config,
        generator=torch.Generator(device=dev).manual_seed(seed + 1),
        progress=progress,
        callback=callback,
    )
    x_start, t_start = first[0]
    size = pixels.shape[:2]
    noised, image = (_to_uint8(decode(tinysd.vae, v, size=size)) for v in (x_start, out))
    return Edit(
        source=pixels,
        noised=noised,
        image=image,
        start_timestep=float(t_start[0]),
        denoising_steps=int(steps * strength),
        seconds=time.perf_counter() - t0,
    )


def img2img(
    tinysd: TinySD,
    image: Any,
    *,
    strength: float = 0.5,
    sampler: str = "ddim",
    steps: int = 25,
    seed: int = 0,
    max_side: int = MAX_SIDE,
    progress: bool = False,
    callback: Callback | None = None,
) -> Edit:
    """SDEdit (Meng et al. 2022): noise the photo's latent to ``strength`` of the schedule and denoise it.

    Args:
        tinysd: the prior (e.g. :func:`diffcore.zoo.shared_tinysd`).
        image: a PIL image or uint8 array; see :func:`prepare` (downscaled to ``max_side``).
        strength: in (0, 1]; runs the last ``int(steps·strength)`` of ``steps`` sampler steps.
        sampler: a :func:`diffcore.sampling.list_samplers` name.
        steps: sampler steps over the whole schedule, at most :data:`MAX_STEPS`.
        seed: seeds the noise (and a stochastic sampler's per-step noise).
        max_side: longer side the photo is downscaled to before encoding.
        progress: show a tqdm bar.
        callback: ``callback(step_index, t, latents)`` after every step.
    """
    return _edit(
        tinysd,
        prepare(image, max_side=max_side),
        None,
        strength=strength,
        sampler=sampler,
        steps=steps,
        seed=seed,
        progress=progress,
        callback=callback,
    )


def inpaint(
    tinysd: TinySD,
    image: Any,
    mask: np.ndarray | Callable[[int, int], np.ndarray],
    *,
    strength: float = 1.0,
    sampler: str = "ddim",
    steps: int = 25,
    seed: int = 0,
    max_side: int = MAX_SIDE,
    progress: bool = False,
    callback: Callback | None = None,
) -> Edit:
    """Generate the masked region of a photo and keep the rest (RePaint-style, Lugmayr et al. 2022).

    Args:
        tinysd: the prior.
        image: a PIL image or uint8 array; see :func:`prepare`.
        mask: True (or non-zero) where to generate: a (H, W) array at the upload's
            size (resized with the photo), or ``mask(h, w) -> (h, w) bool`` built at
            the working size (e.g. ``lambda h, w: box_mask(h, w, box)``).
        strength: in (0, 1]; 1.0 (default) generates the region from pure noise,
            lower values keep some of what was there.
        sampler, steps, seed, max_side, progress, callback: as :func:`img2img`.
    """
    pixels = prepare(image, max_side=max_side)
    h, w = pixels.shape[:2]
    if callable(mask):
        m = np.asarray(mask(h, w))
    else:
        m = np.asarray(mask)
        size = image.size[::-1] if isinstance(image, Image.Image) else np.asarray(image).shape[:2]
        if m.ndim != 2 or m.shape != tuple(size):
            raise InvalidInputError(f"mask must be a 2-D array the size of the image {tuple(size)}, got {m.shape}")
        m = prepare(np.where(m != 0, 255, 0).astype(np.uint8), max_side=max_side)[..., 0] > 127
    if m.shape != (h, w):
        raise InvalidInputError(f"mask must be {h}×{w} at the working size, got {m.shape}")
    if not m.any():
        raise InvalidInputError("mask selects no pixel; mark the region to generate")
    return _edit(
        tinysd, pixels, m != 0, strength=strength, sampler=sampler, steps=steps, seed=seed, progress=progress, callback=callback
    )
