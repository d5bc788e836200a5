"""Turn what users pass (PIL images of any mode, numpy arrays) into the (H, W, 3) uint8 RGB the codec codes.

* grayscale, bilevel, palette, CMYK, YCbCr -> RGB (grayscale as three equal channels);
* 16-bit (PIL ``I;16*`` / ``I``, numpy ``uint16``) -> 8-bit by dropping the low byte (the codec is 8-bit);
* RGBA / LA / palette or grayscale with transparency: accepted when every pixel is opaque
  (the alpha channel is then dropped), refused otherwise — the codec has no
  alpha channel, and silently flattening onto a colour would change the image;
* float images, other dtypes, empty images, sides above 16384 px and images over 2²² pixels are refused.

Any size from 1×1 up is accepted: the codecs pad internally and crop back.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from diffcodec.bitstream import MAX_PIXELS, MAX_SIDE
from diffcodec.errors import UnsupportedImageError


def _from_alpha(rgba: np.ndarray) -> np.ndarray:
    if (rgba[..., -1] != 255).any():
        raise UnsupportedImageError(
            "the image has transparent pixels and diffcodec codes no alpha channel; flatten it first, "
            "e.g. Image.alpha_composite(Image.new('RGBA', im.size, 'white'), im).convert('RGB')"
        )
    return rgba[..., :-1]


def _from_pil(im: Image.Image) -> np.ndarray:
    mode = im.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        a = np.asarray(im).astype(np.int64)
        return np.clip(a >> 8, 0, 255).astype(np.uint8)
    if mode == "F":
        raise UnsupportedImageError("floating-point ('F' mode) images are not supported; convert to 8-bit first")
    if mode in ("P", "L", "1", "RGB") and "transparency" in im.info:  # a transparent index or colour key (PNG tRNS)
        im, mode = im.convert("RGBA"), "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        a = np.asarray(im.convert("RGBA") if mode != "LA" else im)
        return _from_alpha(a)
    if mode != "RGB":
        try:
            im = im.convert("RGB")
        except (ValueError, OSError) as e:
            raise UnsupportedImageError(f"cannot convert a {mode!r} image to RGB: {e}") from e
    return np.asarray(im)


def _check_size(h: int, w: int) -> None:
    if h == 0 or w == 0:
        raise UnsupportedImageError(f"the image is empty ({h}x{w})")
    if h > MAX_SIDE or w > MAX_SIDE or h * w > MAX_PIXELS:
        raise UnsupportedImageError(
            f"the image is {h}x{w}; diffcodec codes sides up to {MAX_SIDE} px and up to {MAX_PIXELS} pixels in all"
        )


def to_rgb(image: Any) -> np.ndarray:
    """A PIL image or numpy array -> a contiguous (H, W, 3) uint8 RGB array; see the module doc.

    The size is checked first, so a huge image is refused before any pixel is decoded or converted.
    """
    if isinstance(image, Image.Image):
        _check_size(image.height, image.width)
        try:
            a = _from_pil(image)
        except UnsupportedImageError:
            raise
        except (OSError, ValueError, SyntaxError) as e:  # what Pillow raises for a truncated or broken file
            raise UnsupportedImageError(f"cannot read the image's pixels: {e}") from e
    elif isinstance(image, np.ndarray):
        a = image
        if a.ndim in (2, 3):
            _check_size(a.shape[0], a.shape[1])
        if a.dtype == np.uint16:
            a = (a >> 8).astype(np.uint8)
        elif a.dtype != np.uint8:
            raise UnsupportedImageError(
                f"arrays must be uint8 (or uint16), got {a.dtype}; for floats in [0, 1] use (x * 255).round().astype(np.uint8)"
            )
        if a.ndim == 3 and a.shape[2] in (2, 4):
            a = _from_alpha(a)
    else:
        raise UnsupportedImageError(f"expected a PIL image or a numpy array, got {type(image).__name__}")
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] != 3:
        raise UnsupportedImageError(f"expected an (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) image, got shape {a.shape}")
    _check_size(*a.shape[:2])
    return np.ascontiguousarray(a, dtype=np.uint8)
