"""Offline image data: the natural-image pool, splits, random-crop datasets, latent data, user folders."""

from diffcore.data.crops import LatentCrops, RandomCrops, to_tensor, to_y
from diffcore.data.folder import load_folder
from diffcore.data.latents import holdout_latents, holdout_tiles, latent_data, latent_maps
from diffcore.data.pool import HOLDOUT, SOURCES, PoolImage, load_pool
from diffcore.data.splits import split_images

__all__ = [
    "HOLDOUT",
    "SOURCES",
    "LatentCrops",
    "PoolImage",
    "RandomCrops",
    "holdout_latents",
    "holdout_tiles",
    "latent_data",
    "latent_maps",
    "load_folder",
    "load_pool",
    "split_images",
    "to_tensor",
    "to_y",
]
