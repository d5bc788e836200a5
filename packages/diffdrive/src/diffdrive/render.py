"""Frames of an episode with the candidate trajectories drawn on them, and videos of them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from diffdrive.planner import Plan


def plan_to_world(env: Any, traj: np.ndarray) -> np.ndarray:
    """Ego-frame poses (H, ≥2) of ``env``'s ego vehicle -> world (x, y) points (H, 2)."""
    v = env.unwrapped.vehicle
    c, s = np.cos(v.heading), np.sin(v.heading)
    x, y = traj[:, 0], traj[:, 1]
    return np.stack([v.position[0] + c * x - s * y, v.position[1] + s * x + c * y], 1)


def draw_plan(env: Any, plan: Plan | None) -> np.ndarray:
    """The env's current frame (H, W, 3) uint8 with ``plan``'s trajectories over it.

    Candidates are drawn in blue, more opaque the more confident; the chosen
    one in red with its poses marked.
    """
    frame = env.render()
    if frame is None:
        raise RuntimeError("the env was not made with render=True")
    img = Image.fromarray(np.ascontiguousarray(frame)).convert("RGBA")
    if plan is not None:
        surface = env.unwrapped.viewer.sim_surface
        over = Image.new("RGBA", img.size, (0, 0, 0, 0))
        d = ImageDraw.Draw(over)
        conf = np.asarray(plan.confidences, dtype=np.float64)
        top = conf.max() if conf.size and conf.max() > 0 else 1.0
        order = np.argsort(conf)
        for k in order:
            if k == plan.chosen:
                continue
            pts = [surface.pos2pix(*p) for p in plan_to_world(env, plan.trajectories[k])]
            alpha = int(90 + 160 * float(conf[k] / top))
            d.line(pts, fill=(30, 90, 255, alpha), width=2)
        pts = [surface.pos2pix(*p) for p in plan_to_world(env, plan.trajectory)]
        d.line(pts, fill=(235, 30, 30, 255), width=3)
        for x, y in pts:
            d.ellipse([x - 2, y - 2, x + 2, y + 2], fill=(235, 30, 30, 255))
        runner_up = np.sort(conf)[-2] if conf.size > 1 else float("nan")
        text = f"mode {plan.chosen + 1}/{conf.size}: confidence {conf[plan.chosen]:.2f}"
        if conf.size > 1:
            text += f" (next best {runner_up:.2f})"
        box = d.textbbox((7, 6), text)
        d.rectangle([box[0] - 3, box[1] - 3, box[2] + 3, box[3] + 3], fill=(0, 0, 0, 150))
        d.text((7, 6), text, fill=(255, 255, 255, 255))
        img = Image.alpha_composite(img, over)
    return np.asarray(img.convert("RGB"))


def write_video(frames: list[np.ndarray], path: str | Path, fps: float = 2.0) -> Path:
    """Write frames as an H.264 MP4 (imageio-ffmpeg's bundled ffmpeg) or, for ``.gif``, an animated GIF."""
    import imageio.v2 as imageio

    from diffcore.errors import InvalidInputError

    path = Path(path)
    if not frames:
        raise InvalidInputError("no frames to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".gif":
        ims = [Image.fromarray(f) for f in frames]
        ims[0].save(path, save_all=True, append_images=ims[1:], duration=int(1000 / fps), loop=0)
        return path
    if path.suffix.lower() != ".mp4":
        raise InvalidInputError(f"video must be .mp4 or .gif, got {path.name!r}")
    imageio.mimwrite(path, frames, fps=fps, codec="libx264", macro_block_size=1, pixelformat="yuv420p", quality=7)
    return path
