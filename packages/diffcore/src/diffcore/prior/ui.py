"""The hub's "Prior" tab: sample tinysd, edit a photo with it (SDEdit), inpaint a box.

Gradio is imported here only (the ``app`` extra). Three sub-tabs, each one
named API endpoint: ``prior_generate`` (unconditional samples with any sampler),
``prior_img2img`` (:func:`diffcore.prior.edit.img2img`: the photo, noised to the
chosen strength, and what the prior makes of it) and ``prior_inpaint``
(:func:`diffcore.prior.edit.inpaint`: a rectangle set with sliders is redrawn,
the rest kept). Uploads are downscaled to :data:`diffcore.prior.edit.MAX_SIDE`.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from diffcore.errors import DiffcoreError
from diffcore.offline_gradio import gr
from diffcore.sampling import SAMPLERS, list_samplers
from diffcore.zoo import shared_tinysd

#: holdout photos of the pool (never trained on), offered as examples
EXAMPLES = ("chelsea", "coffee")


@functools.cache
def _example_paths() -> list[str]:
    """The example photos as PNGs in one folder per process (removed at exit; gradio serves its own copies)."""
    import skimage.data

    folder = Path(tempfile.mkdtemp(prefix="diffcore-prior-ui-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    paths = []
    for name in EXAMPLES:
        path = folder / f"{name}.png"
        Image.fromarray(getattr(skimage.data, name)()).save(path)
        paths.append(str(path))
    return paths


def _sampler_choices() -> list[tuple[str, str]]:
    return [(f"{n} — {SAMPLERS[n].description}", n) for n in list_samplers()]


def _run(sampler: str, steps: float, seed: float, n: float, size: float, progress=gr.Progress()):
    from diffcore.prior.generate import generate

    try:
        steps_i, n_i, size_i, seed_i = int(steps), int(n), int(size), int(seed)
        progress(0, desc="loading tinysd")
        model = shared_tinysd()
        out = generate(
            model,
            sampler=sampler,
            steps=steps_i,
            seed=seed_i,
            n=n_i,
            size=size_i,
            callback=lambda i, t, z: progress((i + 1, steps_i), desc=f"{sampler} step"),
        )
    except DiffcoreError as e:
        raise gr.Error(str(e)) from e
    per = out.seconds / max(steps_i, 1)
    info = (
        f"**{n_i} sample{'s' if n_i > 1 else ''}, {size_i}×{size_i} px, {sampler}, {steps_i} steps: "
        f"{out.seconds:.2f} s** ({per * 1000:.0f} ms per step incl. decoding), seed {seed_i}."
    )
    return list(out.images), info


def _edit_info(kind: str, edit, sampler: str, steps: int, seed: int, extra: str = "") -> str:
    h, w = edit.source.shape[:2]
    return (
        f"**{kind}, {w}×{h} px, {sampler}: {edit.denoising_steps} of {steps} steps from t = {edit.start_timestep:.0f}, "
        f"{edit.seconds:.2f} s**, seed {seed}.{extra}"
    )


def _img2img(image, strength: float, sampler: str, steps: float, seed: float, progress=gr.Progress()):
    from diffcore.prior.edit import img2img

    if image is None:
        raise gr.Error("Upload a photo first (or pick an example).")
    try:
        steps_i, seed_i = int(steps), int(seed)
        n = max(int(steps_i * float(strength)), 1)
        progress(0, desc="loading tinysd")
        out = img2img(
            shared_tinysd(),
            image,
            strength=float(strength),
            sampler=sampler,
            steps=steps_i,
            seed=seed_i,
            callback=lambda i, t, z: progress((i + 1, n), desc=f"{sampler} step"),
        )
    except DiffcoreError as e:
        raise gr.Error(str(e)) from e
    info = _edit_info(f"SDEdit at strength {float(strength):.2f}", out, sampler, steps_i, seed_i)
    return out.noised, out.image, info


def _inpaint(
    image, left: float, top: float, right: float, bottom: float, sampler: str, steps: float, seed: float, progress=gr.Progress()
):
    from diffcore.prior.edit import box_mask, inpaint

    if image is None:
        raise gr.Error("Upload a photo first (or pick an example).")
    try:
        box = (float(left) / 100, float(top) / 100, float(right) / 100, float(bottom) / 100)
        steps_i, seed_i = int(steps), int(seed)
        progress(0, desc="loading tinysd")
        out = inpaint(
            shared_tinysd(),
            image,
            lambda h, w: box_mask(h, w, box),
            sampler=sampler,
            steps=steps_i,
            seed=seed_i,
            callback=lambda i, t, z: progress((i + 1, steps_i), desc=f"{sampler} step"),
        )
    except DiffcoreError as e:
        raise gr.Error(str(e)) from e
    mask = box_mask(*out.source.shape[:2], box)
    shown = out.source.copy()
    shown[mask] = (0.35 * shown[mask] + 0.65 * np.array([255, 0, 255])).astype(np.uint8)  # the region to redraw, tinted
    return shown, out.image, _edit_info("Inpainting", out, sampler, steps_i, seed_i, " The box is redrawn, the rest kept.")


def _sample_tab() -> None:
    with gr.Row():
        with gr.Column(scale=1):
            sampler = gr.Dropdown(choices=_sampler_choices(), value="dpmpp_2m", label="Sampler", elem_id="prior-sampler")
            steps = gr.Slider(1, 100, value=20, step=1, label="Steps", elem_id="prior-steps")
            seed = gr.Number(value=0, precision=0, label="Seed", elem_id="prior-seed")
            n = gr.Slider(1, 8, value=4, step=1, label="Images", elem_id="prior-n")
            size = gr.Slider(64, 256, value=128, step=16, label="Size (px)", elem_id="prior-size")
            button = gr.Button("Generate", variant="primary", elem_id="prior-generate")
        with gr.Column(scale=2):
            gallery = gr.Gallery(label="Samples", columns=4, elem_id="prior-gallery")
            info = gr.Markdown(elem_id="prior-info")
    button.click(_run, [sampler, steps, seed, n, size], [gallery, info], concurrency_limit=2, api_name="prior_generate")


def _edit_controls(prefix: str, steps: int) -> tuple:
    sampler = gr.Dropdown(choices=_sampler_choices(), value="ddim", label="Sampler", elem_id=f"{prefix}-sampler")
    steps_c = gr.Slider(1, 100, value=steps, step=1, label="Steps (whole schedule)", elem_id=f"{prefix}-steps")
    seed = gr.Number(value=0, precision=0, label="Seed", elem_id=f"{prefix}-seed")
    return sampler, steps_c, seed


def _photo_input(prefix: str) -> gr.Image:
    """An upload box for a photo, with the holdout examples under it."""
    from diffcore.prior.edit import MAX_SIDE

    image = gr.Image(type="pil", label=f"Photo (downscaled to {MAX_SIDE} px)", sources=["upload"], elem_id=f"{prefix}-input")
    gr.Examples(_example_paths(), inputs=[image], label="Holdout photos (never trained on)", elem_id=f"{prefix}-examples")
    return image


def _edit_outputs(prefix: str, start_label: str, start_id: str) -> tuple[Any, Any, Any]:
    """The right-hand column of an editing tab: what the edit starts from, the result and the run's info."""
    with gr.Column(scale=2):
        with gr.Row():
            start = gr.Image(label=start_label, elem_id=f"{prefix}-{start_id}")
            result = gr.Image(label="Result", elem_id=f"{prefix}-output")
        info = gr.Markdown(elem_id=f"{prefix}-info")
    return start, result, info


def _img2img_tab() -> None:
    with gr.Row():
        with gr.Column(scale=1):
            image = _photo_input("prior-i2i")
            strength = gr.Slider(0.05, 1.0, value=0.3, step=0.05, label="Strength (noise level)", elem_id="prior-i2i-strength")
            sampler, steps, seed = _edit_controls("prior-i2i", 25)
            button = gr.Button("Re-noise and denoise", variant="primary", elem_id="prior-i2i-run")
        noised, result, info = _edit_outputs("prior-i2i", "Noised input (the start)", "noised")
    button.click(
        _img2img, [image, strength, sampler, steps, seed], [noised, result, info], concurrency_limit=2, api_name="prior_img2img"
    )


def _inpaint_tab() -> None:
    with gr.Row():
        with gr.Column(scale=1):
            image = _photo_input("prior-inp")
            with gr.Row():
                left = gr.Slider(0, 100, value=30, step=1, label="Box left (%)", elem_id="prior-inp-left")
                right = gr.Slider(0, 100, value=70, step=1, label="Box right (%)", elem_id="prior-inp-right")
            with gr.Row():
                top = gr.Slider(0, 100, value=30, step=1, label="Box top (%)", elem_id="prior-inp-top")
                bottom = gr.Slider(0, 100, value=70, step=1, label="Box bottom (%)", elem_id="prior-inp-bottom")
            sampler, steps, seed = _edit_controls("prior-inp", 25)
            button = gr.Button("Inpaint the box", variant="primary", elem_id="prior-inp-run")
        masked, result, info = _edit_outputs("prior-inp", "Region to redraw", "masked")
    button.click(
        _inpaint,
        [image, left, top, right, bottom, sampler, steps, seed],
        [masked, result, info],
        concurrency_limit=2,
        api_name="prior_inpaint",
    )


def build_demo() -> gr.Blocks:
    """The Prior demo (also the hub's first tab)."""
    with gr.Blocks(title="tinysd prior") as demo:
        gr.Markdown(
            "### tinysd — the shared image prior\n"
            "A small latent diffusion model (diffusers `AutoencoderKL` ×4 + `UNet2DModel`) trained by us on the "
            "offline photo pool. Its unconditional samples are textures more than scenes; what a small prior does "
            "well is edit a real photo: re-noise and denoise it (SDEdit), or redraw a region and keep the rest."
        )
        with gr.Tabs():
            with gr.Tab("Sample", elem_id="prior-tab-sample"):
                _sample_tab()
            with gr.Tab("Image to image (SDEdit)", elem_id="prior-tab-img2img"):
                _img2img_tab()
            with gr.Tab("Inpaint", elem_id="prior-tab-inpaint"):
                _inpaint_tab()
    return demo
