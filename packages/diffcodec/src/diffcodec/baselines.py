"""JPEG, WebP and AVIF through Pillow, in memory: the classical baselines of the codec benchmark.

* :func:`encode` / :func:`decode` — an (H, W, 3) uint8 image (or PIL image) to bytes and back.
  JPEG is baseline libjpeg with optimized Huffman tables (``optimize=True``) and
  Pillow's default 4:2:0 chroma subsampling; WebP is lossy libwebp at its slowest,
  best-compressing effort (``method=6``); AVIF is libavif (AV1 intra) with 4:2:0
  subsampling at encoder speed :data:`AVIF_SPEED`.
* ``scale`` — downscaled operation, what a compression engineer does at low rates:
  with ``scale=s`` (one of :data:`SCALES`) the image is first shrunk with an
  antialiasing Lanczos filter to ``max(1, round(W/s)) × max(1, round(H/s))`` and
  that is encoded; ``decode(data, size=(H, W))`` upscales the decoded image back
  (bicubic) to the original size. The bpp stays that of the *original* image, so a
  downscaled point spends fewer bits on the same picture: below some rate the
  lost resolution costs less than the coarse quantization a native encode needs,
  and the formats' lowest native rate (their headers, their coarsest quantizer)
  stops being a floor.
* :func:`match_bpp` — the highest quality whose *real* bpp (``8 · len(bytes) / pixels``,
  headers included) is at most a target: a binary search over Pillow's integer
  quality range. When even the lowest quality is above the target, the lowest
  quality's point comes back with ``reached=False``: the format cannot go that low
  on that image at that scale. :func:`match_scales` does it at every scale, so a
  caller can keep the best-scoring reached point per image.
* :func:`sweep` — one point per quality, for rate–distortion curves.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from diffcodec.images import to_rgb
from diffcore.errors import InvalidInputError, UnknownNameError

#: Pillow's quality range per format (JPEG quality 0 is libjpeg's 1)
QUALITY_RANGE: dict[str, tuple[int, int]] = {"jpeg": (1, 100), "webp": (0, 100), "avif": (0, 100)}
#: qualities of the default :func:`sweep`
SWEEP_QUALITIES: tuple[int, ...] = (1, 2, 3, 5, 8, 12, 18, 25, 35, 50, 65, 80, 90, 95)
#: downscale factors: 1 is native, ``s`` encodes the image shrunk ``s`` times in each direction
SCALES: tuple[int, ...] = (1, 2, 3, 4)
#: libavif encoder speed (0 slowest and best … 10 fastest): the slowest whose encode of a
#: 768×512 photo stays under ~0.5 s. Measured on 2 AMD EPYC cores (shared with a training
#: job): speed 6 took 0.19–0.36 s over qualities 0–100, speed 5 already 0.76–1.21 s.
AVIF_SPEED = 6
_PIL_FORMAT = {"jpeg": "JPEG", "webp": "WEBP", "avif": "AVIF"}
_SAVE_OPTIONS: dict[str, dict[str, Any]] = {
    "jpeg": {"optimize": True},
    "webp": {"method": 6, "lossless": False},
    "avif": {"subsampling": "4:2:0", "speed": AVIF_SPEED},
}


@dataclass(frozen=True)
class Point:
    """One encoding: ``fmt`` at ``quality`` and downscale ``scale`` gives ``data`` (``nbytes`` bytes).

    ``bpp`` is the real bits per pixel of the *original* image, whatever the scale;
    decode a downscaled point with ``decode(data, size=image.shape[:2])`` to compare
    it with the original. ``reached`` is False when :func:`match_bpp` could not meet
    its target (the lowest quality is above it).
    """

    fmt: str
    quality: int
    nbytes: int
    bpp: float
    reached: bool = True
    data: bytes = field(default=b"", repr=False)
    scale: int = 1


def _fmt(fmt: str) -> str:
    f = str(fmt).lower()
    if f == "jpg":
        f = "jpeg"
    if f not in _PIL_FORMAT:
        raise UnknownNameError(f"unknown baseline format {fmt!r}; choose 'jpeg', 'webp' or 'avif'")
    return f


def _quality(fmt: str, quality: int) -> int:
    lo, hi = QUALITY_RANGE[fmt]
    if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) or not lo <= int(quality) <= hi:
        raise InvalidInputError(f"{fmt} quality must be an int in {lo}…{hi}, got {quality!r}")
    return int(quality)


def _scale(scale: int) -> int:
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or int(scale) not in SCALES:
        raise InvalidInputError(f"scale must be an int downscale factor in {SCALES}, got {scale!r}")
    return int(scale)


def _source(arr: np.ndarray, scale: int) -> Image.Image:
    """The PIL image that gets encoded: ``arr`` itself, or shrunk ``scale`` times (Lanczos, never below 1 px)."""
    im = Image.fromarray(arr, "RGB")
    if scale == 1:
        return im
    h, w = arr.shape[:2]
    return im.resize((max(1, round(w / scale)), max(1, round(h / scale))), Image.Resampling.LANCZOS)


def _save(im: Image.Image, fmt: str, quality: int) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=_PIL_FORMAT[fmt], quality=quality, **_SAVE_OPTIONS[fmt])
    return buf.getvalue()


def encode(image: Any, fmt: str, quality: int, *, scale: int = 1) -> bytes:
    """A PIL image or (H, W[, 3]) uint8 array -> the JPEG / WebP / AVIF file bytes (in memory).

    With ``scale`` > 1 the file holds the image downscaled ``scale`` times; see the module doc.
    """
    f = _fmt(fmt)
    q = _quality(f, quality)
    s = _scale(scale)
    return _save(_source(to_rgb(image), s), f, q)


def _size(size: Sequence[int]) -> tuple[int, int]:
    try:
        h, w = size
    except (TypeError, ValueError):
        raise InvalidInputError(f"size must be (H, W), got {size!r}") from None
    for v in (h, w):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise InvalidInputError(f"size must be (H, W) of positive ints, got {size!r}")
    return int(h), int(w)


def decode(data: bytes, size: Sequence[int] | None = None) -> np.ndarray:
    """JPEG / WebP / AVIF bytes -> (H, W, 3) uint8 RGB.

    With ``size=(H, W)`` the decoded image is upscaled (bicubic) to exactly that size
    when it differs: how a downscaled point is brought back to the original image.
    """
    hw = None if size is None else _size(size)
    with Image.open(io.BytesIO(data)) as im:
        rgb = im.convert("RGB")
    if hw is not None and rgb.size != (hw[1], hw[0]):
        rgb = rgb.resize((hw[1], hw[0]), Image.Resampling.BICUBIC)
    return np.asarray(rgb).copy()


def bpp(nbytes: int, image: np.ndarray) -> float:
    """Real bits per pixel of ``nbytes`` bytes for ``image`` (H, W, …)."""
    h, w = image.shape[:2]
    return 8.0 * nbytes / (h * w)


def _point(arr: np.ndarray, src: Image.Image, f: str, q: int, s: int) -> Point:
    data = _save(src, f, q)
    return Point(f, q, len(data), bpp(len(data), arr), True, data, s)


def point(image: Any, fmt: str, quality: int, *, scale: int = 1) -> Point:
    """Encode once and measure: a :class:`Point` (its bpp counts the original image's pixels)."""
    f = _fmt(fmt)
    q = _quality(f, quality)
    s = _scale(scale)
    arr = to_rgb(image)
    return _point(arr, _source(arr, s), f, q, s)


def _target(target_bpp: float) -> float:
    target = float(target_bpp)
    if not np.isfinite(target) or target < 0:
        raise InvalidInputError(f"target_bpp must be a finite non-negative number, got {target_bpp!r}")
    return target


def _match(arr: np.ndarray, f: str, target: float, s: int) -> Point:
    src = _source(arr, s)  # downscaled once for the whole search
    lo, hi = QUALITY_RANGE[f]
    seen: dict[int, Point] = {}

    def at(q: int) -> Point:
        if q not in seen:
            seen[q] = _point(arr, src, f, q, s)
        return seen[q]

    if at(lo).bpp > target:
        return dataclasses.replace(at(lo), reached=False)
    if at(hi).bpp <= target:
        return at(hi)
    # invariant: at(lo) fits, at(hi) does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if at(mid).bpp <= target:
            lo = mid
        else:
            hi = mid
    return at(lo)


def match_bpp(image: Any, fmt: str, target_bpp: float, *, scale: int = 1) -> Point:
    """The highest quality whose real bpp at ``scale`` is <= ``target_bpp`` (binary search, ~7 encodes).

    Pillow's size is nearly but not strictly monotone in quality (for AVIF too:
    dips of a byte or so, and neighbouring qualities often share a quantizer), so
    the search can miss a higher quality that also fits; what it returns always
    fits (it was measured).
    If the lowest quality is already above the target, that point is returned with
    ``reached=False``.
    """
    f = _fmt(fmt)
    target = _target(target_bpp)
    s = _scale(scale)
    return _match(to_rgb(image), f, target, s)


def match_scales(image: Any, fmt: str, target_bpp: float, scales: Iterable[int] = SCALES) -> list[Point]:
    """:func:`match_bpp` at every scale in ``scales``, one :class:`Point` each, in that order.

    Each point says whether its scale reached the target; which one is best depends
    on the metric, so choosing is left to the caller.
    """
    f = _fmt(fmt)
    target = _target(target_bpp)
    ss = [_scale(s) for s in scales]
    if not ss:
        raise InvalidInputError(f"scales must name at least one scale of {SCALES}")
    arr = to_rgb(image)
    return [_match(arr, f, target, s) for s in ss]


def sweep(image: Any, fmt: str, qualities: Iterable[int] | None = None, *, scale: int = 1) -> list[Point]:
    """One :class:`Point` per quality at ``scale``, in the order given.

    The default qualities are the format's lowest, then :data:`SWEEP_QUALITIES`.
    """
    f = _fmt(fmt)
    s = _scale(scale)
    if qualities is None:
        qualities = sorted({QUALITY_RANGE[f][0], *SWEEP_QUALITIES})
    qs = [_quality(f, q) for q in qualities]
    arr = to_rgb(image)
    src = _source(arr, s)
    return [_point(arr, src, f, q, s) for q in qs]
