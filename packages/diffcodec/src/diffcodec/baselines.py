"""JPEG and WebP through Pillow, in memory: the classical baselines of the codec benchmark.

* :func:`encode` / :func:`decode` — an (H, W, 3) uint8 image (or PIL image) to bytes and back.
  JPEG is baseline libjpeg with optimized Huffman tables (``optimize=True``) and
  Pillow's default 4:2:0 chroma subsampling; WebP is lossy libwebp at its slowest,
  best-compressing effort (``method=6``).
* :func:`match_bpp` — the highest quality whose *real* bpp (``8 · len(bytes) / pixels``,
  headers included) is at most a target: a binary search over Pillow's integer
  quality range. When even the lowest quality is above the target, the lowest
  quality's point comes back with ``reached=False``: the format cannot go that low
  on that image.
* :func:`sweep` — one point per quality, for rate–distortion curves.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from diffcodec.images import to_rgb
from diffcore.errors import InvalidInputError, UnknownNameError

#: Pillow's quality range per format (JPEG quality 0 is libjpeg's 1)
QUALITY_RANGE: dict[str, tuple[int, int]] = {"jpeg": (1, 100), "webp": (0, 100)}
#: qualities of the default :func:`sweep`
SWEEP_QUALITIES: tuple[int, ...] = (1, 2, 3, 5, 8, 12, 18, 25, 35, 50, 65, 80, 90, 95)
_PIL_FORMAT = {"jpeg": "JPEG", "webp": "WEBP"}


@dataclass(frozen=True)
class Point:
    """One encoding: ``fmt`` at ``quality`` gives ``data`` (``nbytes`` bytes, ``bpp`` real bits per pixel).

    ``reached`` is False when :func:`match_bpp` could not meet its target (the lowest quality is above it).
    """

    fmt: str
    quality: int
    nbytes: int
    bpp: float
    reached: bool = True
    data: bytes = field(default=b"", repr=False)


def _fmt(fmt: str) -> str:
    f = str(fmt).lower()
    if f == "jpg":
        f = "jpeg"
    if f not in _PIL_FORMAT:
        raise UnknownNameError(f"unknown baseline format {fmt!r}; choose 'jpeg' or 'webp'")
    return f


def _quality(fmt: str, quality: int) -> int:
    lo, hi = QUALITY_RANGE[fmt]
    if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) or not lo <= int(quality) <= hi:
        raise InvalidInputError(f"{fmt} quality must be an int in {lo}…{hi}, got {quality!r}")
    return int(quality)


def encode(image: Any, fmt: str, quality: int) -> bytes:
    """A PIL image or (H, W[, 3]) uint8 array -> the JPEG / WebP file bytes (in memory)."""
    f = _fmt(fmt)
    q = _quality(f, quality)
    arr = to_rgb(image)
    buf = io.BytesIO()
    opts: dict[str, Any] = {"optimize": True} if f == "jpeg" else {"method": 6, "lossless": False}
    Image.fromarray(arr, "RGB").save(buf, format=_PIL_FORMAT[f], quality=q, **opts)
    return buf.getvalue()


def decode(data: bytes) -> np.ndarray:
    """JPEG / WebP bytes -> (H, W, 3) uint8 RGB."""
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB")).copy()


def bpp(nbytes: int, image: np.ndarray) -> float:
    """Real bits per pixel of ``nbytes`` bytes for ``image`` (H, W, …)."""
    h, w = image.shape[:2]
    return 8.0 * nbytes / (h * w)


def point(image: Any, fmt: str, quality: int) -> Point:
    """Encode once and measure: a :class:`Point`."""
    arr = to_rgb(image)
    f = _fmt(fmt)
    data = encode(arr, f, quality)
    return Point(f, int(quality), len(data), bpp(len(data), arr), True, data)


def match_bpp(image: Any, fmt: str, target_bpp: float) -> Point:
    """The highest quality whose real bpp is <= ``target_bpp`` (binary search, ~7 encodes).

    Pillow's size is nearly but not strictly monotone in quality, so the search
    can miss a higher quality that also fits; what it returns always fits (it was
    measured). If the lowest quality is already above the target, that point is
    returned with ``reached=False``.
    """
    arr = to_rgb(image)
    f = _fmt(fmt)
    target = float(target_bpp)
    if not np.isfinite(target) or target < 0:
        raise InvalidInputError(f"target_bpp must be a finite non-negative number, got {target_bpp!r}")
    lo, hi = QUALITY_RANGE[f]
    seen: dict[int, Point] = {}

    def at(q: int) -> Point:
        if q not in seen:
            seen[q] = point(arr, f, q)
        return seen[q]

    if at(lo).bpp > target:
        p = at(lo)
        return Point(f, p.quality, p.nbytes, p.bpp, False, p.data)
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


def sweep(image: Any, fmt: str, qualities: Iterable[int] | None = None) -> list[Point]:
    """One :class:`Point` per quality, in the order given (default: the format's lowest, then :data:`SWEEP_QUALITIES`)."""
    arr = to_rgb(image)
    f = _fmt(fmt)
    if qualities is None:
        qualities = sorted({QUALITY_RANGE[f][0], *SWEEP_QUALITIES})
    return [point(arr, f, q) for q in qualities]
