"""The hub's "Prior" tab: sample tinysd, edit a photo with it (SDEdit), inpaint a box.

Gradio is imported here only (the ``app`` extra). Three sub-tabs, each one
named API endpoint: ``prior_generate`` (unconditional samples with any sampler),
``prior_img2img`` (:func:`diffcore.prior.edit.img2img`: the photo, noised to the
chosen strength, and what the prior makes of it) and ``prior_inpaint``
(:func:`diffcore.prior.edit.inpaint`: a rectangle set with sliders is redrawn,
the rest kept). Uploads are downscaled to :data:`diffcore.prior.edit.MAX_SIDE`.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from PIL import Image

from diffcore.offline_gradio import gr, image_upload, on, page, work_dir
from diffcore.sampling import SAMPLERS, list_samplers
from diffcore.zoo import shared_tinysd

#: holdout photos of the pool (never trained on), offered as examples
EXAMPLES = ("chelsea", "coffee")


@functools.cache
def _example_paths() -> list[str]:
    """The example photos as PNGs in one folder per process (removed at exit; gradio serves its own copies)."""
    import skimage.data

    folder = work_dir("prior")
    paths = []
    for name in EXAMPLES:
        path = folder / f"{name}.png"
        Image.fromarray(getattr(skimage.data, name)()).save(path)
        paths.append(str(path))
    return paths


def _sampler_choices() -> list[tuple[str, str]]:
    return [(f"{n} — {SAMPLERS[n].description}", n) for n in list_samplers()]


def _on_tinysd(fn, *args, sampler: str, steps: int, seed: int, progress, bar_steps: int | None = None, **kw):
    """``fn(shared_tinysd(), *args, sampler=, steps=, seed=, callback=, **kw)`` with a progress bar over
    ``bar_steps`` (default ``steps``) sampler steps."""
    total = bar_steps or steps
    progress(0, desc="loading tinysd")
    return fn(
        shared_tinysd(),
        *args,
        sampler=sampler,
        steps=steps,
        seed=seed,
        callback=lambda i, t, z: progress((i + 1, total), desc=f"{sampler} step"),
        **kw,
    )


def _run(sampler: str, steps: int, seed: int, n: int, size: int, progress=gr.Progress()):
    from diffcore.prior.generate import generate

    out = _on_tinysd(generate, sampler=sampler, steps=steps, seed=seed, progress=progress, n=n, size=size)
    per = out.seconds / max(steps, 1)
    info = (
        f"**{n} sample{'s' if n > 1 else ''}, {size}×{size} px, {sampler}, {steps} steps: "
        f"{out.seconds:.2f} s** ({per * 1000:.0f} ms per step incl. decoding), seed {seed}."
    )
    return list(out.images), info


def _edit_info(kind: str, edit, sampler: str, steps: int, seed: int, extra: str = "") -> str:
    h, w = edit.source.shape[:2]
    return (
        f"**{kind}, {w}×{h} px, {sampler}: {edit.denoising_steps} of {steps} steps from t = {edit.start_timestep:.0f}, "
        f"{edit.seconds:.2f} s**, seed {seed}.{extra}"
    )


def _img2img(image, strength: float, sampler: str, steps: int, seed: int, progress=gr.Progress()):
    from diffcore.prior.edit import img2img

    if image is None:
        raise gr.Error("Upload a photo first (or pick an example).")
    out = _on_tinysd(
        img2img,
        image,
        sampler=sampler,
        steps=steps,
        seed=seed,
        progress=progress,
        bar_steps=max(int(steps * strength), 1),
        strength=strength,
    )
    info = _edit_info(f"SDEdit at strength {strength:.2f}", out, sampler, steps, seed)
    return out.noised, out.image, info


def _inpaint(image, left: int, top: int, right: int, bottom: int, sampler: str, steps: int, seed: int, progress=gr.Progress()):
    from diffcore.prior.edit import box_mask, inpaint

    if image is None:
        raise gr.Error("Upload a photo first (or pick an example).")
    box = (left / 100, top / 100, right / 100, bottom / 100)
    mask_at = lambda h, w: box_mask(h, w, box)  # noqa: E731  (built at the working size)
    out = _on_tinysd(inpaint, image, mask_at, sampler=sampler, steps=steps, seed=seed, progress=progress)
    mask = box_mask(*out.source.shape[:2], box)  # valid: inpaint built the same one
    shown = out.source.copy()
    shown[mask] = (0.35 * shown[mask] + 0.65 * np.array([255, 0, 255])).astype(np.uint8)  # the region to redraw, tinted
    return shown, out.image, _edit_info("Inpainting", out, sampler, steps, seed, " The box is redrawn, the rest kept.")


def _sample_tab() -> None:
    with gr.Row():
        with gr.Column(scale=1):
            sampler = gr.Dropdown(choices=_sampler_choices(), value="dpmpp_2m", label="Sampler", elem_id="prior-sampler")
            steps = gr.Slider(1, 100, value=20, step=1, precision=0, label="Steps", elem_id="prior-steps")
            seed = gr.Number(value=0, precision=0, label="Seed", elem_id="prior-seed")
            n = gr.Slider(1, 8, value=4, step=1, precision=0, label="Images", elem_id="prior-n")
            size = gr.Slider(64, 256, value=128, step=16, precision=0, label="Size (px)", elem_id="prior-size")
            button = gr.Button("Generate", variant="primary", elem_id="prior-generate")
        with gr.Column(scale=2):
            gallery = gr.Gallery(label="Samples", columns=4, elem_id="prior-gallery")
            info = gr.Markdown(elem_id="prior-info")
    on(button.click, _run, [sampler, steps, seed, n, size], [gallery, info], concurrency_limit=2, api_name="prior_generate")


def _edit_controls(prefix: str, steps: int) -> tuple:
    sampler = gr.Dropdown(choices=_sampler_choices(), value="ddim", label="Sampler", elem_id=f"{prefix}-sampler")
    steps_c = gr.Slider(1, 100, value=steps, step=1, precision=0, label="Steps (whole schedule)", elem_id=f"{prefix}-steps")
    seed = gr.Number(value=0, precision=0, label="Seed", elem_id=f"{prefix}-seed")
    return sampler, steps_c, seed


def _photo_input(prefix: str) -> gr.Image:
    """An upload box for a photo, with the holdout examples under it."""
    from diffcore.prior.edit import MAX_SIDE

    image = image_upload(type="pil", label=f"Photo (downscaled to {MAX_SIDE} px)", sources=["upload"], elem_id=f"{prefix}-input")
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
    on(
        button.click,
        _img2img,
        [image, strength, sampler, steps, seed],
        [noised, result, info],
        concurrency_limit=2,
        api_name="prior_img2img",
    )


def _inpaint_tab() -> None:
    with gr.Row():
        with gr.Column(scale=1):
            image = _photo_input("prior-inp")
            with gr.Row():
                left = gr.Slider(0, 100, value=30, step=1, precision=0, label="Box left (%)", elem_id="prior-inp-left")
                right = gr.Slider(0, 100, value=70, step=1, precision=0, label="Box right (%)", elem_id="prior-inp-right")
            with gr.Row():
                top = gr.Slider(0, 100, value=30, step=1, precision=0, label="Box top (%)", elem_id="prior-inp-top")
                bottom = gr.Slider(0, 100, value=70, step=1, precision=0, label="Box bottom (%)", elem_id="prior-inp-bottom")
            sampler, steps, seed = _edit_controls("prior-inp", 25)
            button = gr.Button("Inpaint the box", variant="primary", elem_id="prior-inp-run")
        masked, result, info = _edit_outputs("prior-inp", "Region to redraw", "masked")
    on(
        button.click,
        _inpaint,
        [image, left, top, right, bottom, sampler, steps, seed],
        [masked, result, info],
        concurrency_limit=2,
        api_name="prior_inpaint",
    )


#: the demo's opening text (Markdown)
INTRO = """\
### tinysd — the shared image prior
A small latent diffusion model (diffusers `AutoencoderKL` ×4 + `UNet2DModel`) trained by us on the offline
photo pool. Its unconditional samples are textures more than scenes; what a small prior does well is edit a
real photo: re-noise and denoise it (SDEdit), or redraw a region and keep the rest.
"""


def build_demo() -> gr.Blocks:
    """The Prior demo (also the hub's first tab)."""
    with page("tinysd prior", INTRO) as demo:
        with gr.Tabs():
            with gr.Tab("Sample", elem_id="prior-tab-sample"):
                _sample_tab()
            with gr.Tab("Image to image (SDEdit)", elem_id="prior-tab-img2img"):
                _img2img_tab()
            with gr.Tab("Inpaint", elem_id="prior-tab-inpaint"):
                _inpaint_tab()
    return demo
