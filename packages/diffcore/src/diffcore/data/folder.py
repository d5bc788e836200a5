"""The user's own images: any folder of files Pillow can read (Kodak, BSDS …)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from diffcore.data.pool import PoolImage
from diffcore.errors import DataError


def load_folder(path: str | Path, *, min_side: int = 1) -> list[PoolImage]:
    """Load every image in ``path`` (non-recursive, sorted by name) as RGB.

    Files Pillow cannot read are skipped; each image is its own source, so a
    split by source is a split by file. Raises :class:`DataError` when the
    folder does not exist or holds no readable image of at least ``min_side``
    pixels on both sides.
    """
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"{root} is not a folder; pass a folder of images")
    out: list[PoolImage] = []
    for f in sorted(p for p in root.iterdir() if p.is_file()):
        try:
            with Image.open(f) as im:
                pixels = np.asarray(im.convert("RGB"))
        except (UnidentifiedImageError, OSError):
            continue
        if min(pixels.shape[:2]) >= min_side:
            out.append(PoolImage(f.stem, f.stem, pixels))
    if not out:
        raise DataError(
            f"no readable image of at least {min_side}x{min_side} pixels in {root}; "
            "supported are the formats Pillow reads (PNG, JPEG, WebP, TIFF, BMP …)"
        )
    return out
