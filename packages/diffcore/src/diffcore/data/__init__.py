"""Offline image data: the natural-image pool, random-crop datasets, user folders."""

from diffcore.data.crops import LatentCrops, RandomCrops, to_tensor, to_y
from diffcore.data.folder import load_folder
from diffcore.data.pool import HOLDOUT, SOURCES, PoolImage, load_pool

__all__ = [
    "HOLDOUT",
    "LatentCrops",
    "SOURCES",
    "PoolImage",
    "RandomCrops",
    "load_folder",
    "load_pool",
    "to_tensor",
    "to_y",
]
