"""Train / holdout splits of image data: the offline pool by source, a user folder by file."""

from __future__ import annotations

from pathlib import Path

from diffcore.data.folder import load_folder
from diffcore.data.pool import PoolImage, load_pool
from diffcore.errors import DataError


def split_images(data: str | Path | None) -> tuple[list[PoolImage], list[PoolImage], str]:
    """(train, holdout, description) from the offline pool or a user folder.

    The pool is split by source scene (:data:`diffcore.data.HOLDOUT`); a user
    folder by file: every fifth file (sorted by name) is holdout.
    """
    if data is None:
        return load_pool("train"), load_pool("holdout"), "diffcore offline pool (diffcore.data.pool), fixed split by source"
    imgs = load_folder(data)
    hold = imgs[4::5]
    train_set = [im for im in imgs if im not in hold]
    if not hold or not train_set:
        raise DataError(f"{data} needs at least 2 images (every fifth is holdout)")
    return train_set, hold, f"folder {data}, every fifth file held out"
