"""``diffcore bench codec``: OSCAR, RDEIC, their "no diffusion" ablations, a learned hyperprior, JPEG, WebP and AVIF.

Every bpp and quality number is measured as :mod:`diffcodec.evaluate` says (real
bytes; decoded 8-bit RGB against the original; the classical codecs paired with
each diffusion-codec point at no more bytes, at native resolution and
downscaled ½, ⅓, ¼ with bicubic upscaling, the best scale per image and
metric; JPEG: libjpeg with optimized Huffman tables, 4:2:0; WebP: libwebp
``method=6``; AVIF: libavif through Pillow), by its rate–distortion loops, which
``diffcodec eval DIR`` shares. The hyperprior baseline (compressai's
ScaleHyperprior on pixels, trained by us on the same photos) is the learned
non-diffusion codec; the tinysd autoencoder alone (no quantization, no bits) is
the upper bound of the latent codecs. BD-rates are against WebP's envelope over
its four scales (:mod:`diffcodec.goals`, :mod:`diffcodec.rd`). Decode speed is
measured side by side in the same run (paired, interleaved repeats, median of
the per-pair ratios), FLOPs with ``torch.utils.flop_counter``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from diffcodec import goals
from diffcodec.codec import Codec
from diffcodec.evaluate import (
    LABELS,
    METHODS,
    evaluate_image,
    image_quality,
    is_number,
    load_methods,
    lowest_rate,
    mean_rows,
    paired_rows,
    point_id,
    sweep_curves,
)
from diffcore.bench.report import NA

#: decode steps compared in the speed section (the first is the baseline of every ratio)
SPEED_STEPS = {"oscar": (1, 10, 50), "rdeic": (2, 5)}
#: the quick smoke run leaves out 50 steps (FLOP counting alone costs seconds per UNet pass there)
QUICK_SPEED_STEPS = {"oscar": (1, 10), "rdeic": (2, 5)}
QUICK_SIDE, QUICK_SPEED_SIDE = 176, 64
#: the decode-time goal: OSCAR one step at least this many times faster than RDEIC 5 steps and 50 DDIM steps
SPEED_GOAL = 5.0
#: qualities of the WebP sweeps behind the BD-rates and the plot (per scale)
SWEEP = (0, 2, 5, 10, 20, 35, 50, 65, 80, 90)


# ---------------------------------------------------------------------------- speed


def _speed(
    codecs: Mapping[str, Codec],
    name: str,
    pixels: np.ndarray,
    *,
    steps: Mapping[str, Sequence[int]] = SPEED_STEPS,
    repeats: int,
    warmup: int,
    device: str,
) -> tuple[list[dict[str, Any]], str, dict[str, Any]]:
    """Decode time / FLOPs of OSCAR one step vs the same model with 10 / 50 DDIM steps, and RDEIC 2 / 5 steps."""
    from diffcore.bench.flops import count_flops
    from diffcore.bench.timing import time_paired

    h, w = pixels.shape[:2]
    variants: dict[str, Callable[[], Any]] = {}
    meta: dict[str, tuple[str, float, int]] = {}
    for m, method_steps in steps.items():
        c = codecs[m]
        r = lowest_rate(c)
        blob = c.compress(pixels, r)
        for s in method_steps:
            key = f"{LABELS[m]} " + (
                "one step" if m == "oscar" and s == 1 else f"{s} DDIM steps" if m == "oscar" else f"{s} steps"
            )
            variants[key] = lambda c=c, blob=blob, s=s: c.decompress(blob, steps=s)
            meta[key] = (point_id(m, r), 8.0 * len(blob) / (h * w), s)
    base = next(iter(variants))
    outs, flops = {}, {}
    for key, fn in variants.items():
        held: dict[str, Any] = {}
        flops[key] = count_flops(lambda fn=fn, held=held: held.setdefault("out", fn()))
        outs[key] = np.asarray(held["out"])
    sync = torch.cuda.synchronize if str(device).startswith("cuda") else None
    timing = time_paired(variants, baseline=base, repeats=repeats, warmup=warmup, sync=sync)
    rows, quality = [], {}
    for key in variants:
        t = timing[key]
        point, bpp, n_steps = meta[key]
        quality[key] = image_quality(pixels, outs[key])
        rows.append(
            {
                "decoder": key,
                "point": point,
                "bpp": bpp,
                "UNet passes": n_steps,
                f"time ÷ {base}": t.ratio,
                "time ratio IQR": f"{t.ratio_iqr[0]:.3f}–{t.ratio_iqr[1]:.3f}",
                f"FLOPs ÷ {base}": flops[key] / flops[base],
                "GFLOPs": flops[key] / 1e9,
                "seconds (median)": t.seconds,
                "PSNR dB": quality[key][0],
                "MS-SSIM": NA if quality[key][1] is None else quality[key][1],
            }
        )
    p1, m1 = quality[base]
    lines, data = [], {"image": name, "size": [h, w], "repeats": repeats, "warmup": warmup, "vs": {}}
    for key in variants:
        if key == base:
            continue
        t, fr, (pk, mk), k_steps = timing[key], flops[key] / flops[base], quality[key], meta[key][2]
        cost = f"PSNR {p1:.2f} dB vs {pk:.2f} dB ({p1 - pk:+.2f} dB)"
        if m1 is not None and mk is not None:
            cost += f", MS-SSIM {m1:.4f} vs {mk:.4f} ({m1 - mk:+.4f})"
        data["vs"][key] = {
            "time_ratio": t.ratio,
            "time_ratio_iqr": list(t.ratio_iqr),
            "flop_ratio": fr,
            "psnr": pk,
            "ms_ssim": mk,
            "one_step_psnr": p1,
            "one_step_ms_ssim": m1,
        }
        if key.startswith("OSCAR"):
            lines.append(
                f"- OSCAR one step vs the same model with **{k_steps} DDIM steps** from the same start: one step is "
                f"**{t.ratio:.1f}× faster** (IQR of the per-repeat ratios {t.ratio_iqr[0]:.2f}–{t.ratio_iqr[1]:.2f}) "
                f"with {fr:.1f}× fewer FLOPs; quality, one step vs {k_steps} steps: {cost}."
            )
        else:
            lines.append(
                f"- {key} (at its own lowest rate, a different blob): {t.ratio:.2f}× the decode time of OSCAR one step, "
                f"{fr:.2f}× its FLOPs."
            )
    against = [k for k in ("OSCAR 50 DDIM steps", "RDEIC 5 steps") if k in timing]
    data["goal_met"] = all(timing[k].ratio >= SPEED_GOAL for k in against) if len(against) == 2 else None
    if data["goal_met"] is None:
        lines.append("- Quick run: the 50-step comparison of the goal is left out (run without `--quick`).")
    else:
        lines.append(
            f"- Goal (OSCAR one step ≥ {SPEED_GOAL:g}× faster than 50 DDIM steps and than RDEIC 5 steps): "
            f"**{'met' if data['goal_met'] else 'not met'}**."
        )
    lines.append(
        "- Every decode includes the entropy / index decoding and the tinysd decoder (a fixed cost per image that bounds the "
        "time ratio); the FLOP counter sees matrix multiplies and convolutions only."
    )
    return rows, "\n".join(lines), data


# ---------------------------------------------------------------------------- the plot


def _plot(path: Path, means: list[dict[str, Any]], webp: Mapping[str, Mapping[int, list]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    styles = {
        "OSCAR": ("C0", "o-"),
        "OSCAR no diffusion": ("C0", "o:"),
        "RDEIC": ("C1", "s-"),
        "RDEIC no diffusion": ("C1", "s:"),
        "hyperprior": ("C2", "^-"),
        "JPEG": ("C3", "x"),
        "JPEG best scale": ("C3", "+--"),
        "WebP": ("C4", "x"),
        "WebP best scale": ("C4", "+--"),
        "AVIF best scale": ("C5", "+--"),
    }
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    for ax, key, col in zip(axes, ("PSNR dB", "MS-SSIM"), (1, 2)):
        for label, (color, fmt) in styles.items():
            pts = sorted((r["bpp"], r[key]) for r in means if r["method"] == label and is_number(r["bpp"]) and is_number(r[key]))
            if pts:
                ax.plot(*zip(*pts), fmt, color=color, lw=1.2, ms=5, label=label)
        for s, ls in zip(sorted(next(iter(webp.values()), {})), ("-", "--", "-.", ":")):
            curves = [pts[s] for pts in webp.values()]
            if all(all(is_number(p[col]) for p in c) for c in curves):
                bpp = [sum(p[0] for p in qs) / len(qs) for qs in zip(*curves)]
                val = [sum(p[col] for p in qs) / len(qs) for qs in zip(*curves)]
                ax.plot(bpp, val, ls, color="C4", lw=0.6, alpha=0.6, label=f"WebP sweep at {'native' if s == 1 else f'1/{s}'}")
        ae = [r[key] for r in means if r["method"] == "tinysd AE" and is_number(r[key])]
        if ae:
            ax.axhline(ae[0], color="C7", ls=":", label="tinysd AE alone (no bits)")
        ax.axvline(goals.LOW_BPP, color="grey", lw=0.6, ls="-.")
        ax.set(xscale="log", xlabel="real bpp (log scale)", ylabel=key, title=f"bpp vs {key.split()[0]} (mean over images)")
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


# ---------------------------------------------------------------------------- the benchmark


def _crop(px: np.ndarray, side: int) -> np.ndarray:
    h, w = px.shape[:2]
    s0, s1 = min(side, h), min(side, w)
    t, left = (h - s0) // 2, (w - s1) // 2
    return np.ascontiguousarray(px[t : t + s0, left : left + s1])


def _log(quiet: bool, msg: str) -> None:
    if not quiet:
        print(f"[bench codec] {msg}", file=sys.stderr, flush=True)


def run(
    out_dir: str | Path,
    *,
    quick: bool = False,
    command: str | None = None,
    data: str | Path | None = None,
    path: str | Path | None = None,
    device: str = "cpu",
) -> Path:
    """Write ``codec.md``, ``codec.json`` and ``codec_rd.png`` into ``out_dir``; returns the Markdown's path.

    ``command``: the command line the report names (``diffcore bench`` passes it). ``data``: a folder of
    images instead of the holdout photos; ``path``: a weights root instead of the shipped weights.
    ``quick``: one 176-px crop, the lowest rate of each codec, a 64-px crop and one timed repeat for
    speed — a smoke run, not for reports.
    """
    from diffcore.bench.report import Report
    from diffcore.data import load_folder, load_pool

    torch.manual_seed(0)
    pool = load_pool("holdout") if data is None else load_folder(data)
    images = [(im.name, im.pixels) for im in pool]
    desc = (
        f"the {len(images)} holdout photos of diffcore's offline pool" if data is None else f"the {len(images)} images in {data}"
    )
    if quick:
        n0, p0 = images[0]
        speed_img = (f"{n0} (centre {QUICK_SPEED_SIDE} px crop)", _crop(p0, QUICK_SPEED_SIDE))
        images = [(f"{n0} (centre {QUICK_SIDE} px crop)", _crop(p0, QUICK_SIDE))]
        desc += f", quick: only a centre {QUICK_SIDE} px crop of {n0}"
    else:
        speed_img = min(images, key=lambda im: im[1].shape[0] * im[1].shape[1])
    repeats, warmup = (1, 0) if quick else ((10, 1) if str(device).startswith("cuda") else (5, 1))
    methods = (*METHODS, "autoencoder")
    codecs, vae = load_methods(methods, path, device)
    rates = {m: ([lowest_rate(c)] if quick else [r.index for r in c.rates]) for m, c in codecs.items()}

    report = Report(
        "codec",
        "diffcodec: OSCAR and RDEIC vs their no-diffusion ablations, JPEG, WebP, AVIF (native and downscaled) "
        "and a learned hyperprior",
        Path(out_dir),
        command=command,
        quick=quick,
        intro=__doc__.split("\n\n", 1)[1].split("\n\nThe rate–distortion loops")[0].strip()
        + f"\n\nData: {desc}. Weights: {path if path is not None else 'the shipped weights'}. Device: {device}.",
    )
    report.data["weights"] = str(path) if path is not None else "shipped"
    report.data["data"] = desc
    report.table(
        "Operating points",
        [
            {
                "method": LABELS[m],
                "point": point_id(m, r.index),
                "label": r.label,
                "nominal bpp": r.bpp,
                "benchmarked": r.index in rates[m],
            }
            for m, c in codecs.items()
            for r in c.rates
        ],
        "Nominal bpp: for OSCAR the mean ideal code length of its rANS-coded indices on the training crops; for RDEIC "
        "and the hyperprior the mean real bpp measured at training time. The tables below use the real size of every blob.",
    )

    per_image: list[dict[str, Any]] = []
    for name, px in images:
        _log(quick, f"rate–distortion on {name} {px.shape[1]}x{px.shape[0]}")
        per_image += evaluate_image(name, px, methods, codecs, rates, vae)
    means = mean_rows(per_image)
    _log(quick, "WebP quality sweeps at every scale")
    webp = sweep_curves(images, "webp", (0, 10, 50, 90) if quick else SWEEP)

    for goal, fn in (
        (
            f'the decode beats its own "no diffusion" ablation by ≥ {goals.DIFFUSION_DB} dB PSNR or '
            f"≥ {goals.DIFFUSION_MS} MS-SSIM at the two lowest rates of OSCAR and RDEIC",
            goals.diffusion_goal,
        ),
        (
            f"OSCAR beats the best-scale WebP and JPEG in PSNR and MS-SSIM at every rate ≤ {goals.LOW_BPP} bpp, "
            f"and the best-scale AVIF in MS-SSIM at ≤ {goals.AVIF_BPP} bpp",
            goals.low_rate_goal,
        ),
        (
            f"above {goals.LOW_BPP} bpp, OSCAR or RDEIC within {goals.HIGH_RATE_DB} dB PSNR of the best-scale WebP "
            "at every point",
            goals.high_rate_goal,
        ),
    ):
        text, met, details = fn(means)
        report.goal(goal, text, met)
        report.data.setdefault("goal details", {})[fn.__name__] = details
    report.table(
        "Does the diffusion step earn its place?",
        [
            {
                k: r[k]
                for k in ("method", "point", "bpp", "PSNR dB", "MS-SSIM", "no diffusion PSNR", "no diffusion MS-SSIM")
                if k in r
            }
            for r in paired_rows(means)
        ],
        "Mean over the images. *No diffusion*: the same blob, its hyper-decoded (OSCAR) or entropy-decoded (RDEIC) latent "
        "decoded by tinysd's decoder with no UNet pass (`Codec.decompress(blob, steps=0)`).",
        key="Ablation",
    )
    report.table(
        f"Low rates: OSCAR and RDEIC against the classical codecs at ≤ {goals.LOW_BPP} bpp",
        paired_rows(means, max_bpp=goals.LOW_BPP),
        "Mean over the images. Each classical codec at the highest quality whose file is no larger than the codec's blob "
        "on the same image; *best scale*: the best of native, ½, ⅓ and ¼ resolution (bicubic upscaling), chosen per image "
        "for PSNR and for MS-SSIM separately. Rows that could not go as low say so in the per-image table.",
        key="Low rates",
    )
    report.table(
        "BD-rate against WebP",
        goals.bd_rates(per_image, webp),
        "Bjøntegaard delta rate (PCHIP interpolation of log-rate over quality, mean over the overlapping quality range) "
        "of each method's points on each image against WebP's envelope over its four scales (qualities "
        f"{', '.join(map(str, (0, 10, 50, 90) if quick else SWEEP))}), then the mean over the images where the curves "
        "overlap. Negative: fewer bits than WebP for the same quality.",
        key="BD-rate",
    )

    _log(quick, f"decode speed on {speed_img[0]}")
    speed_rows, speed_text, speed_data = _speed(
        codecs,
        speed_img[0],
        speed_img[1],
        steps=QUICK_SPEED_STEPS if quick else SPEED_STEPS,
        repeats=repeats,
        warmup=warmup,
        device=device,
    )
    h, w = speed_img[1].shape[:2]
    report.table(
        "Decode speed: OSCAR one step vs 10 / 50 DDIM steps, and RDEIC",
        speed_rows,
        f"On {speed_img[0]} ({w}×{h} px), each codec at its lowest rate, decoding the same blob with "
        "`Codec.decompress(blob, steps=...)`: OSCAR's one step, the same model running DDIM from the same norm-matched start "
        "at t(rate) in 10 and 50 steps, and RDEIC's relay sampler in 2 and 5 steps. Times are paired and interleaved "
        f"({repeats} repeat{'s' if repeats > 1 else ''} after {warmup} warm-up), ratios are medians of per-repeat ratios "
        "against OSCAR one step; seconds are medians on the machine above.\n\n" + speed_text,
        key="Decode speed",
    )
    report.data["speed"] = speed_data
    speed_goal = f"OSCAR one step ≥ {SPEED_GOAL:g}× faster than 50 DDIM steps and than RDEIC 5 steps"
    if speed_data["goal_met"] is not None:
        ratios = {k: speed_data["vs"][k]["time_ratio"] for k in ("OSCAR 50 DDIM steps", "RDEIC 5 steps")}
        report.goal(speed_goal, ", ".join(f"{v:.1f}× vs {k}" for k, v in ratios.items()), speed_data["goal_met"])
    else:
        report.goal(speed_goal, NA, None, "quick run: no 50 steps")

    plot = report.plot_path("rd")
    _plot(plot, means, webp)
    report.image(
        "Rate–distortion plot",
        plot,
        "Mean over the images: bpp (log scale) vs PSNR and vs MS-SSIM. Solid: the codecs; dotted: their no-diffusion "
        "ablations; crosses: JPEG / WebP at native resolution paired with each OSCAR / RDEIC point; dashed with plus "
        "signs: the best-scale JPEG / WebP / AVIF paired points; thin lines: WebP quality sweeps at each scale; "
        f"dash-dot: {goals.LOW_BPP} bpp.",
    )
    report.table(
        "Rate–distortion, mean over images",
        means,
        "One row per method and point; the classical rows `≤ X` are paired with point X (target bpp: X's mean real bpp).",
    )
    report.table("Rate–distortion, per image", per_image)
    report.data["WebP quality sweeps"] = webp
    return report.write()
