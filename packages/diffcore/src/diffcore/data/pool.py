"""The offline natural-image pool: photos that ship inside installed wheels.

No dataset is downloaded. The pool is every photo that scikit-image,
scikit-learn and matplotlib bundle in their wheels, grouped by *source scene*
(the two views of the motorcycle stereo pair are one source). The train /
holdout split is fixed and made by source, so no holdout scene is ever seen in
training:

==========  ==========================================================
holdout     ``coffee``, ``chelsea`` (skimage), ``flower`` (scikit-learn),
            ``grace_hopper`` (matplotlib) — all colour photos
train       every other source below (colour and grayscale photos;
            grayscale ones are replicated to RGB)
==========  ==========================================================
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image

from diffcore.errors import InvalidInputError


@dataclass(frozen=True)
class PoolImage:
    """One photo of the pool: ``pixels`` is (H, W, 3) uint8 RGB."""

    name: str
    source: str
    pixels: np.ndarray


def _skimage(name: str) -> Callable[[], list[np.ndarray]]:
    def load() -> list[np.ndarray]:
        import skimage.data

        img = getattr(skimage.data, name)()
        if name == "stereo_motorcycle":
            return [img[0], img[1]]  # left and right views, one scene
        return [img]

    return load


def _sklearn(name: str) -> Callable[[], list[np.ndarray]]:
    def load() -> list[np.ndarray]:
        from sklearn.datasets import load_sample_image

        return [load_sample_image(name)]

    return load


def _matplotlib(name: str) -> Callable[[], list[np.ndarray]]:
    def load() -> list[np.ndarray]:
        import matplotlib.cbook

        with matplotlib.cbook.get_sample_data(name) as f:
            return [np.asarray(Image.open(f).convert("RGB"))]

    return load


#: source name -> loader returning one or more views of that scene
SOURCES: dict[str, Callable[[], list[np.ndarray]]] = {
    # colour photos
    "astronaut": _skimage("astronaut"),
    "coffee": _skimage("coffee"),
    "chelsea": _skimage("chelsea"),
    "rocket": _skimage("rocket"),
    "hubble_deep_field": _skimage("hubble_deep_field"),
    "immunohistochemistry": _skimage("immunohistochemistry"),
    "motorcycle": _skimage("stereo_motorcycle"),
    "retina": _skimage("retina"),
    "china": _sklearn("china.jpg"),
    "flower": _sklearn("flower.jpg"),
    "grace_hopper": _matplotlib("grace_hopper.jpg"),
    # grayscale photos
    "camera": _skimage("camera"),
    "brick": _skimage("brick"),
    "grass": _skimage("grass"),
    "gravel": _skimage("gravel"),
    "coins": _skimage("coins"),
    "moon": _skimage("moon"),
    "page": _skimage("page"),
    "text": _skimage("text"),
    "clock": _skimage("clock"),
    "cell": _skimage("cell"),
}

#: sources never used for training
HOLDOUT: tuple[str, ...] = ("coffee", "chelsea", "flower", "grace_hopper")


def _as_rgb(img: np.ndarray) -> np.ndarray:
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    return np.ascontiguousarray(img[:, :, :3].astype(np.uint8))


@functools.cache
def _load_source(source: str) -> tuple[PoolImage, ...]:
    views = SOURCES[source]()
    names = [source] if len(views) == 1 else [f"{source}_{i}" for i in range(len(views))]
    return tuple(PoolImage(n, source, _as_rgb(v)) for n, v in zip(names, views))


def load_pool(split: Literal["train", "holdout", "all"] = "train") -> list[PoolImage]:
    """Load the pool's photos for ``split`` (cached after the first call).

    Args:
        split: ``"train"`` (every source not in :data:`HOLDOUT`), ``"holdout"``
            or ``"all"``.
    """
    if split not in ("train", "holdout", "all"):
        raise InvalidInputError(f"split must be 'train', 'holdout' or 'all', got {split!r}")
    sources = [s for s in SOURCES if split == "all" or (s in HOLDOUT) == (split == "holdout")]
    return [img for s in sources for img in _load_source(s)]
