"""The hub's "Prior" tab: sample tinysd with any sampler and see how long it took.

Gradio is imported here only (the ``app`` extra).
"""

from __future__ import annotations

from diffcore.errors import DiffcoreError
from diffcore.offline_gradio import gr
from diffcore.sampling import SAMPLERS, list_samplers
from diffcore.zoo import shared_tinysd


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


def build_demo() -> gr.Blocks:
    """The Prior demo (also the hub's first tab)."""
    with gr.Blocks(title="tinysd prior") as demo:
        gr.Markdown(
            "### tinysd — the shared image prior\n"
            "A small latent diffusion model (diffusers `AutoencoderKL` ×4 + `UNet2DModel`) trained by us on the "
            "offline photo pool. Pick a sampler, a step count and a seed."
        )
        with gr.Row():
            with gr.Column(scale=1):
                sampler = gr.Dropdown(
                    choices=[(f"{n} — {SAMPLERS[n].description}", n) for n in list_samplers()],
                    value="dpmpp_2m",
                    label="Sampler",
                    elem_id="prior-sampler",
                )
                steps = gr.Slider(1, 100, value=20, step=1, label="Steps", elem_id="prior-steps")
                seed = gr.Number(value=0, precision=0, label="Seed", elem_id="prior-seed")
                n = gr.Slider(1, 8, value=4, step=1, label="Images", elem_id="prior-n")
                size = gr.Slider(64, 256, value=128, step=16, label="Size (px)", elem_id="prior-size")
                button = gr.Button("Generate", variant="primary", elem_id="prior-generate")
            with gr.Column(scale=2):
                gallery = gr.Gallery(label="Samples", columns=4, elem_id="prior-gallery")
                info = gr.Markdown(elem_id="prior-info")
        button.click(_run, [sampler, steps, seed, n, size], [gallery, info], concurrency_limit=2)
    return demo
