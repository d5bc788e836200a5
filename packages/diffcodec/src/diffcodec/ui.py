"""The hub's "Image codec" tab: compress a photo with OSCAR, RDEIC or the hyperprior baseline, see what comes back.

*Compress* codes the uploaded image at the chosen rate, decodes the blob again and shows
the original and the reconstruction (a comparison slider, and side by side), the real
bpp (8 · bytes of the blob / pixels), PSNR and MS-SSIM, the encode and decode times, and
the ``.dfc`` blob to download. *Decode a blob* takes such a file and shows the image and
its header.

Weights: the shipped ones, or — when the environment variable ``DIFFCODEC_WEIGHTS`` is
set — a folder written by ``diffcore train codec --weights DIR``.

Gradio is imported here only (the ``app`` extra).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from diffcodec.bitstream import MAX_PIXELS, METHODS, VERSION, unpack
from diffcodec.codec import Codec, RateInfo
from diffcodec.images import to_rgb
from diffcodec.limits import MAX_STEPS
from diffcore.errors import DiffcoreError, InvalidInputError
from diffcore.metrics import MS_SSIM_WEIGHTS
from diffcore.offline_gradio import gr, image_upload, integer_choices, on, page, result_path, work_dir

METHOD_CHOICES = [
    ("OSCAR — one step", "oscar"),
    ("RDEIC — relay residual, 2 steps", "rdeic"),
    ("Hyperprior baseline — no diffusion", "hyperprior"),
]
#: the smallest side MS-SSIM's five scales fit in (an 11 px window at 1/16 scale)
MS_SSIM_MIN_SIDE = 11 * 2 ** (len(MS_SSIM_WEIGHTS) - 1)
#: long side images are downscaled to when "downscale" is ticked: keeps a CPU decode to seconds
DEMO_SIDE = 768
#: uploads larger than this are not read: no valid blob of diffcodec's largest image comes near it
MAX_BLOB_BYTES = 32 << 20
#: the most pixels the app encodes or decodes (the library takes MAX_PIXELS, 4x more): a shared server's CPU
#: is bounded per request
APP_MAX_PIXELS = 1 << 20
#: holdout photos of the offline pool (never trained on): one click runs the page
EXAMPLES = ("coffee", "chelsea")


def _weights_root() -> str | None:
    return os.environ.get("DIFFCODEC_WEIGHTS") or None


def _codec(method: str) -> Codec:
    return Codec.load(method, path=_weights_root())


def _example_paths() -> list[str]:
    import skimage.data

    paths = []
    for name in EXAMPLES:
        path = work_dir("codec") / f"{name}.png"
        if not path.exists():
            Image.fromarray(getattr(skimage.data, name)()).save(path)
        paths.append(str(path))
    return paths


def _bpp(value: float) -> str:
    return "n/a" if value != value else f"{value:.4f}"  # NaN: no measured bpp in the training card


def _passes(n: int) -> str:
    return "no diffusion" if n == 0 else f"{n} UNet pass{'es' if n != 1 else ''}"


def _rate_label(r: RateInfo) -> str:
    return f"{r.index}: {_bpp(r.bpp)} bpp — {r.label}"


def _rate_table() -> tuple[dict[str, list[tuple[str, int]]], dict[str, str]]:
    """Each method's rate choices, and why a method is unavailable (no weights …)."""
    choices: dict[str, list[tuple[str, int]]] = {}
    problems: dict[str, str] = {}
    for method in METHODS:
        try:
            choices[method] = [(_rate_label(r), r.index) for r in _codec(method).rates]
        except DiffcoreError as e:
            choices[method], problems[method] = [], str(e)
    return choices, problems


def _quality(original: np.ndarray, decoded: np.ndarray) -> str:
    """PSNR and MS-SSIM as the benchmark measures them (:func:`diffcodec.evaluate.image_quality`)."""
    from diffcodec.evaluate import image_quality

    p, m = image_quality(original, decoded)
    text = f"**PSNR {p:.2f} dB**" if np.isfinite(p) else "**PSNR ∞** (lossless)"
    if m is not None:
        return text + f", **MS-SSIM {m:.4f}**"
    h, w = original.shape[:2]
    return text + f"; MS-SSIM needs both sides ≥ {MS_SSIM_MIN_SIDE} px, this image is {w}×{h}"


def _downscale(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    scale = DEMO_SIDE / max(h, w)
    if scale >= 1:
        return rgb
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.LANCZOS))


def _check_app_size(h: int, w: int) -> None:
    if h * w > APP_MAX_PIXELS:
        raise InvalidInputError(
            f"{w}×{h} px is more than this app's {APP_MAX_PIXELS:,} pixels: tick Downscale, or use "
            f"`diffcodec encode/decode` or the Python API (up to {MAX_PIXELS:,})"
        )


def _compress(image: Any, method: str, rate: int | None, downscale: bool, progress=gr.Progress()):
    if image is None:
        raise gr.Error("Upload an image first, or click one of the examples.")
    if rate is None:
        raise gr.Error(f"No rate to pick for {method}: its weights are missing (see the note above).")
    progress(0, desc=f"loading {method}")
    codec = _codec(method)
    rgb = to_rgb(image)
    uploaded = rgb.shape[:2]
    if downscale:
        rgb = _downscale(rgb)
    _check_app_size(*rgb.shape[:2])
    progress(0.2, desc="encoding")
    t0 = time.perf_counter()
    blob = codec.compress(rgb, rate=rate)
    t_enc = time.perf_counter() - t0
    progress(0.5, desc=f"decoding ({_passes(codec.default_steps)})")
    t0 = time.perf_counter()
    decoded = codec.decompress(blob)
    t_dec = time.perf_counter() - t0
    h, w = rgb.shape[:2]
    info = codec.rates[rate]
    blob_path = result_path("codec", f"{method}-rate{rate}-{w}x{h}.dfc")
    blob_path.write_bytes(blob)
    resized = f" (downscaled from {uploaded[1]}×{uploaded[0]})" if uploaded != (h, w) else ""
    text = (
        f"**{8 * len(blob) / (h * w):.4f} bpp** real: {len(blob):,} bytes for {w}×{h} px{resized} "
        f"({info.label}, nominal {_bpp(info.bpp)} bpp). {_quality(rgb, np.asarray(decoded))}.\n\n"
        f"Encode {t_enc:.2f} s, decode {t_dec:.2f} s ({_passes(codec.default_steps)}) on CPU: "
        "one timing on a shared machine; `diffcore bench codec` gives paired ratios."
    )
    original = Image.fromarray(rgb)
    return (original, decoded), original, decoded, text, str(blob_path)


def _decode(path: str | None, steps: int, progress=gr.Progress()):
    if path is None:
        raise gr.Error("Upload a .dfc blob first (Compress above makes one).")
    size = os.path.getsize(path)
    if size > MAX_BLOB_BYTES:
        raise gr.Error(f"this file is {size:,} bytes; diffcodec blobs are at most {MAX_BLOB_BYTES:,}: it is not one")
    blob = Path(path).read_bytes()
    header, payloads = unpack(blob)
    _check_app_size(header.height, header.width)
    progress(0, desc=f"loading {header.method}")
    codec = _codec(header.method)
    progress(0.3, desc="decoding")
    n = steps or None
    t0 = time.perf_counter()
    image = codec.decompress(blob, steps=n)
    seconds = time.perf_counter() - t0
    rate = codec.rates[header.rate]
    n = codec.default_steps if n is None else n
    text = (
        f"**{header.method}**, rate {header.rate} ({rate.label}, nominal {_bpp(rate.bpp)} bpp) · "
        f"{header.width}×{header.height} px · format version {VERSION}, CRC-32 ok\n\n"
        f"{len(blob):,} bytes = **{8 * len(blob) / header.pixels:.4f} bpp** · payloads: "
        f"{' + '.join(f'{len(p):,}' for p in payloads)} bytes\n\n"
        f"Decoded in {seconds:.2f} s ({_passes(n)})."
    )
    return image, text


#: the demo's opening text (Markdown)
INTRO = """\
### Image codec — diffusion decoding at extremely low bit-rates
**OSCAR** quantizes the tinysd latent per rate and treats the decoded latent as a noisy latent at a calibrated
timestep: ONE UNet pass (a LoRA shared by all rates) cleans it. **RDEIC** entropy-codes the latent with a
hyperprior and runs 2 relay-residual diffusion steps from it. The **hyperprior baseline** is the same kind of
learned codec on pixels, with no diffusion. The bpp shown is the real size of the blob, header included.
"""


def build_demo() -> gr.Blocks:
    """The Image codec demo."""
    choices, problems = _rate_table()
    with page("Image codec", INTRO) as demo:
        gr.Markdown(
            "\n".join(f"- **{m}** is unavailable: {msg}" for m, msg in problems.items()),
            visible=bool(problems),
            elem_id="codec-status",
        )
        with gr.Row():
            with gr.Column(scale=1):
                image = image_upload(
                    type="pil", image_mode=None, label="Image", sources=["upload", "clipboard"], elem_id="codec-input"
                )
                gr.Examples(_example_paths(), inputs=[image], label="Holdout photos (never trained on)", elem_id="codec-examples")
                # OSCAR, unless its weights are missing and another method's are not
                start = next((m for m in METHODS if choices[m]), "oscar")
                method = gr.Radio(METHOD_CHOICES, value=start, label="Method", elem_id="codec-method")
                first = choices[start]
                rate = integer_choices(
                    gr.Dropdown(
                        choices=first,
                        value=first[0][1] if first else None,
                        label="Rate (nominal bpp)",
                        elem_id="codec-rate",
                    )
                )
                downscale = gr.Checkbox(
                    value=True,
                    label=f"Downscale to at most {DEMO_SIDE} px on the long side (faster on CPU)",
                    elem_id="codec-downscale",
                )
                button = gr.Button("Compress", variant="primary", elem_id="codec-compress")
            with gr.Column(scale=2):
                compare = gr.ImageSlider(
                    type="pil",
                    format="png",
                    label="Original ↔ reconstruction (drag the handle)",
                    interactive=False,
                    elem_id="codec-compare",
                )
                info = gr.Markdown(elem_id="codec-info")
                blob_file = gr.File(label="Compressed blob (.dfc)", interactive=False, elem_id="codec-blob")
        with gr.Row():
            original = gr.Image(
                type="pil", format="png", label="Original (as coded)", interactive=False, elem_id="codec-original"
            )
            recon = gr.Image(type="pil", format="png", label="Reconstruction", interactive=False, elem_id="codec-reconstruction")

        gr.Markdown("#### Decode a blob\nAny `.dfc` file made here, by `diffcodec encode` or by `Codec.compress`.")
        with gr.Row():
            with gr.Column(scale=1):
                blob_in = gr.File(label="A .dfc blob", type="filepath", elem_id="codec-blob-in")
                steps = gr.Slider(
                    0,
                    MAX_STEPS,
                    value=0,
                    step=1,
                    precision=0,
                    label="UNet passes (0: the method's own — OSCAR 1, RDEIC 2)",
                    elem_id="codec-steps",
                )
                decode_button = gr.Button("Decode", variant="primary", elem_id="codec-decode")
            with gr.Column(scale=2):
                decoded = gr.Image(type="pil", format="png", label="Decoded", interactive=False, elem_id="codec-decoded")
                header = gr.Markdown(elem_id="codec-header")

        method.change(
            lambda m: gr.Dropdown(choices=choices[m], value=choices[m][0][1] if choices[m] else None),
            method,
            rate,
            api_visibility="private",  # a UI refresh, not a service
        )
        on(
            button.click,
            _compress,
            [image, method, rate, downscale],
            [compare, original, recon, info, blob_file],
            concurrency_limit=2,
            api_name="codec_compress",
        )
        on(decode_button.click, _decode, [blob_in, steps], [decoded, header], concurrency_limit=2, api_name="codec_decompress")
    return demo
