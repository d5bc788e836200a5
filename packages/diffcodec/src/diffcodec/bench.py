"""``diffcore bench codec``: OSCAR, RDEIC, the hyperprior baseline, JPEG, WebP and the tinysd autoencoder, in one run.

Every bpp and quality number is measured as :mod:`diffcodec.evaluate` says (real
bytes; decoded 8-bit RGB against the original; JPEG and WebP paired with each
diffusion-codec point at no more bytes; JPEG: libjpeg with optimized Huffman
tables, 4:2:0; WebP: libwebp ``method=6``), by its rate–distortion loops, which
``diffcodec eval DIR`` shares. The hyperprior baseline (compressai's ScaleHyperprior on pixels, trained by us on
the same photos) is the learned non-diffusion codec; the tinysd autoencoder
alone (no quantization, no bits) is the upper bound of the latent codecs.
Decode speed is measured side by side in the same run (paired, interleaved
repeats, median of the per-pair ratios), FLOPs with ``torch.utils.flop_counter``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from diffcodec.codec import Codec
from diffcodec.evaluate import (
    GOAL_BPP,
    LABELS,
    METHODS,
    evaluate_image,
    goal_check,
    image_quality,
    is_number,
    load_methods,
    lowest_rate,
    mean_rows,
    paired_rows,
    point_id,
    sweep_means,
)
from diffcore.bench.report import NA

#: decode steps compared in the speed section (the first is the baseline of every ratio)
SPEED_STEPS = {"oscar": (1, 10, 50), "rdeic": (2, 5)}
#: the quick smoke run leaves out 50 steps (FLOP counting alone costs seconds per UNet pass there)
QUICK_SPEED_STEPS = {"oscar": (1, 10), "rdeic": (2, 5)}
QUICK_SIDE, QUICK_SPEED_SIDE = 176, 64


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
    k50 = "OSCAR 50 DDIM steps"
    if k50 in timing:
        met = timing[k50].ratio >= 10
        data["goal_10x_met"] = met
        lines.append(
            f"- Goal (OSCAR one step ≥ 10× faster than 50 DDIM steps of the same model): **{'met' if met else 'not met'}**."
        )
    else:
        data["goal_10x_met"] = None
        lines.append("- Quick run: the 50-step comparison of the goal is left out (run without `--quick`).")
    lines.append(
        "- Every decode includes the entropy / index decoding and the tinysd decoder (a fixed cost per image that bounds the "
        "time ratio); the FLOP counter sees matrix multiplies and convolutions only."
    )
    return rows, "\n".join(lines), data


# ---------------------------------------------------------------------------- the plot


def _plot(path: Path, means: list[dict[str, Any]], sweeps: list[dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"OSCAR": "C0", "RDEIC": "C1", "hyperprior": "C2", "JPEG": "C3", "WebP": "C4", "tinysd AE": "C7"}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key in zip(axes, ("PSNR dB", "MS-SSIM")):
        for label in ("OSCAR", "RDEIC", "hyperprior"):
            pts = sorted((r["bpp"], r[key]) for r in means if r["method"] == label and is_number(r["bpp"]) and is_number(r[key]))
            if pts:
                ax.plot(*zip(*pts), "o-", color=colors[label], label=label)
        for label in ("JPEG", "WebP"):
            pts = sorted((r["bpp"], r[key]) for r in sweeps if r["method"] == label and is_number(r[key]))
            if pts:
                ax.plot(*zip(*pts), "--", color=colors[label], lw=1, label=f"{label} (quality sweep)")
            pts = sorted((r["bpp"], r[key]) for r in means if r["method"] == label and is_number(r["bpp"]) and is_number(r[key]))
            if pts:
                ax.plot(*zip(*pts), "x", color=colors[label], ms=8, label=f"{label} (paired, ≤ codec bpp)")
        ae = [r[key] for r in means if r["method"] == "tinysd AE" and is_number(r[key])]
        if ae:
            ax.axhline(ae[0], color=colors["tinysd AE"], ls=":", label="tinysd AE alone (no bits)")
        ax.axvline(GOAL_BPP, color="grey", lw=0.6, ls="-.")
        ax.set(xscale="log", xlabel="real bpp (log scale)", ylabel=key, title=f"bpp vs {key.split()[0]} (mean over images)")
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=7)
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


def _counts(vs: Mapping[str, Any]) -> str:
    """A goal's measured value: per-image wins / losses / uncontested points against one baseline."""
    return f"{vs['per image win']} wins, {vs['per image loss']} losses, {vs['per image uncontested']} uncontested per image"


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
        "diffcodec: OSCAR and RDEIC vs JPEG, WebP, a learned hyperprior and the tinysd autoencoder",
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
        "Nominal bpp: OSCAR's index bits before the container; for the entropy-coded methods the mean real bpp "
        "measured at training time. The tables below use the real size of every blob.",
    )

    per_image: list[dict[str, Any]] = []
    for name, px in images:
        _log(quick, f"rate–distortion on {name} {px.shape[1]}x{px.shape[0]}")
        per_image += evaluate_image(name, px, methods, codecs, rates, vae)
    means = mean_rows(per_image)
    _log(quick, "JPEG / WebP quality sweeps")
    sweeps = sweep_means(images, (None if not quick else (1, 10, 50, 90)))

    goal_rows, goal_text, goal_data = goal_check(per_image, means)
    for label, d in goal_data.items():
        report.goal(
            f"{label}: no point ≤ {GOAL_BPP} bpp where WebP or JPEG has a higher MS-SSIM at equal or lower bpp",
            ", ".join(f"{k}: {_counts(v)}" for k, v in d.items() if k.startswith("vs ")) or f"no point ≤ {GOAL_BPP} bpp",
            d["goal_met"],
            "met only by default against " + " and ".join(d["met_by_default_against"]) if d.get("met_by_default_against") else "",
        )
    report.table(
        f"Goal check: MS-SSIM at ≤ {GOAL_BPP} bpp",
        goal_rows,
        "At every OSCAR / RDEIC point whose real bpp is at most "
        f"{GOAL_BPP} (per image, then the points whose mean bpp is), does the codec beat WebP and JPEG in MS-SSIM at "
        "equal or lower real bpp? JPEG / WebP use the highest quality whose file is no larger than the codec's blob on "
        "the same image; when even their lowest quality makes a bigger file they cannot go this low: such a point is "
        "*uncontested* (no loss for the codec, but no head-to-head win either; the table shows the bigger file's score).\n\n"
        + goal_text,
    )
    report.data["goal"] = goal_data

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
    if speed_data["goal_10x_met"] is not None:
        ratio = speed_data["vs"]["OSCAR 50 DDIM steps"]["time_ratio"]
        report.goal("OSCAR one step ≥ 10× faster than 50 DDIM steps of the same model", f"{ratio:.1f}×", ratio >= 10)
    else:
        report.goal("OSCAR one step ≥ 10× faster than 50 DDIM steps of the same model", NA, None, "quick run: no 50 steps")

    plot = report.plot_path("rd")
    _plot(plot, means, sweeps)
    report.image(
        "Rate–distortion plot",
        plot,
        "Mean over the images: bpp (log scale) vs PSNR and vs MS-SSIM; dashed: JPEG / WebP at fixed qualities; "
        "crosses: JPEG / WebP paired with each OSCAR / RDEIC point; dotted: the tinysd autoencoder alone; "
        f"dash-dot: {GOAL_BPP} bpp.",
    )
    report.table(
        "Rate–distortion, mean over images",
        means,
        "One row per method and point; JPEG / WebP rows `≤ X` are paired with point X (target bpp: X's mean real bpp).",
    )
    report.table(
        "Paired comparison at every point, mean over images",
        paired_rows(means),
        "Where a baseline wins above the goal's rates too.",
    )
    report.table("Rate–distortion, per image", per_image)
    report.data["JPEG / WebP quality sweeps"] = sweeps
    return report.write()
