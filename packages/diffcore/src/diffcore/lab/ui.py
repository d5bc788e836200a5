"""The hub's "Sampler lab" tab: the same seeds with and without a cache / quantizer, side by side.

Gradio is imported here only (the ``app`` extra).
"""

from __future__ import annotations

from diffcore.lab.variants import QUANT_CHOICES, cache_choices, compare
from diffcore.offline_gradio import gr, on, page
from diffcore.sampling import list_samplers


def _run(sampler: str, steps: int, cache_name: str, quant_name: str, seed: int, n: int, size: int, progress=gr.Progress()):
    progress(0, desc="building the accelerated model (first use calibrates)")
    r = compare(sampler, steps, cache_name, quant_name, seed, n, size)
    info = (
        f"**{cache_name} + {quant_name}: speed-up {r['t_full'] / r['t_fast']:.2f}×** "
        f"({r['t_full']:.2f} s full compute, {r['t_fast']:.2f} s accelerated; {sampler}, {steps} steps, "
        f"{n} × {size} px). Error vs full compute: **PSNR {r['psnr']:.1f} dB**, "
        f"latent relative L2 {r['rel_l2']:.4f}. One timing on a shared machine: the benchmark "
        "(`diffcore bench accel`) gives paired, repeated ratios."
    )
    return r["full"], r["fast"], info


#: the demo's opening text (Markdown)
INTRO = """\
### Sampler lab — caches and quantization on tinysd
Pick a sampler and an acceleration; the same seeds are sampled with full compute and with the acceleration,
side by side, with the measured speed-up and the error. Searched schedules only run with the sampler and step
count they were fitted for (their name says which).
"""


def build_demo() -> gr.Blocks:
    """The Sampler lab demo."""
    with page("Sampler lab", INTRO) as demo:
        with gr.Row():
            with gr.Column(scale=1):
                sampler = gr.Dropdown(choices=list_samplers(), value="ddim", label="Sampler", elem_id="lab-sampler")
                steps = gr.Slider(2, 100, value=50, step=1, precision=0, label="Steps", elem_id="lab-steps")
                cache_dd = gr.Dropdown(choices=list(cache_choices()), value="DeepCache N=3", label="Cache", elem_id="lab-cache")
                quant = gr.Dropdown(choices=list(QUANT_CHOICES), value="none", label="Quantization", elem_id="lab-quant")
                seed = gr.Number(value=0, precision=0, label="Seed", elem_id="lab-seed")
                n = gr.Slider(1, 8, value=4, step=1, precision=0, label="Images", elem_id="lab-n")
                size = gr.Slider(64, 256, value=64, step=16, precision=0, label="Size (px)", elem_id="lab-size")
                button = gr.Button("Compare", variant="primary", elem_id="lab-run")
            with gr.Column(scale=2):
                with gr.Row():
                    full = gr.Gallery(label="Full compute", columns=4, elem_id="lab-full")
                    fast = gr.Gallery(label="Accelerated", columns=4, elem_id="lab-fast")
                info = gr.Markdown(elem_id="lab-info")
        on(
            button.click,
            _run,
            [sampler, steps, cache_dd, quant, seed, n, size],
            [full, fast, info],
            concurrency_limit=2,
            api_name="lab_compare",
        )
    return demo
