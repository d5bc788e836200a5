"""``diffcore bench codec``: OSCAR, RDEIC, the hyperprior baseline, JPEG, WebP and the tinysd autoencoder, in one run.

Every bpp is the real size of the bytes, ``8 · len(blob) / pixels`` (the diffcodec
container's header and checksum included; JPEG and WebP files as Pillow writes
them). Every quality number is measured on the decoded 8-bit RGB image against
the original, in [0, 1]: PSNR, and MS-SSIM (5 scales) on images whose sides are
both at least 176 px. JPEG and WebP are *paired* with the diffusion codecs: on
each image, for each OSCAR and RDEIC point, their quality is searched for the
highest whose real bpp is at most that point's real bpp on that image (JPEG:
libjpeg with optimized Huffman tables, 4:2:0; WebP: libwebp ``method=6``). The
hyperprior baseline (compressai's ScaleHyperprior on pixels, trained by us on
the same photos) is the learned non-diffusion codec; the tinysd autoencoder
alone (no quantization, no bits) is the upper bound of the latent codecs.
Decode speed is measured side by side in the same run (paired, interleaved
repeats, median of the per-pair ratios), FLOPs with ``torch.utils.flop_counter``.

``evaluate_folder`` and ``format_table`` give the same rate–distortion rows for
any folder of images (``diffcodec eval DIR``).
"""

from __future__ import annotations

import math
import re
import shlex
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from diffcodec import baselines
from diffcodec.codec import Codec
from diffcore.errors import InvalidInputError, UnknownNameError

#: the methods of a rate–distortion evaluation (``"autoencoder"`` may be added: the tinysd autoencoder alone)
METHODS: tuple[str, ...] = ("oscar", "rdeic", "hyperprior", "jpeg", "webp")
LABELS = {
    "oscar": "OSCAR",
    "rdeic": "RDEIC",
    "hyperprior": "hyperprior",
    "jpeg": "JPEG",
    "webp": "WebP",
    "autoencoder": "tinysd AE",
}
CODECS = ("oscar", "rdeic", "hyperprior")
#: the diffusion codecs JPEG / WebP are paired with
PAIRED = ("oscar", "rdeic")
#: the goal's "lowest rates"
GOAL_BPP = 0.1
#: decode steps compared in the speed section (the first is the baseline of every ratio)
SPEED_STEPS = {"oscar": (1, 10, 50), "rdeic": (2, 5)}
#: the quick smoke run leaves out 50 steps (FLOP counting alone costs seconds per UNet pass there)
QUICK_SPEED_STEPS = {"oscar": (1, 10), "rdeic": (2, 5)}
QUICK_SIDE, QUICK_SPEED_SIDE = 176, 64
_NA = "n/a"


# ---------------------------------------------------------------------------- measuring


def image_quality(ref: np.ndarray, out: np.ndarray) -> tuple[float, float | None]:
    """(PSNR dB, MS-SSIM or None when a side is under 176 px) of ``out`` against ``ref``, both (H, W, 3) uint8."""
    from diffcore.metrics import ms_ssim, psnr
    from diffcore.prior.recipe import MS_SSIM_MIN_SIDE

    if ref.shape != out.shape:
        raise InvalidInputError(f"decoded image is {out.shape}, the original {ref.shape}")
    a = torch.from_numpy(np.array(ref)).permute(2, 0, 1)[None].double() / 255
    b = torch.from_numpy(np.array(out)).permute(2, 0, 1)[None].double() / 255
    p = float(psnr(a, b)[0])
    m = float(ms_ssim(a, b)[0]) if min(ref.shape[:2]) >= MS_SSIM_MIN_SIDE else None
    return p, m


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _row(
    image: str, method: str, point: str, setting: str, bpp: Any, q: tuple[float, float | None], target: Any = "", note: str = ""
):
    return {
        "image": image,
        "method": LABELS[method],
        "point": point,
        "setting": setting,
        "bpp": bpp,
        "target bpp": target,
        "PSNR dB": q[0],
        "MS-SSIM": _NA if q[1] is None else q[1],
        "note": note,
    }


def _point_id(method: str, index: int) -> str:
    return f"{method}-{index}"


def _setting(codec: Codec, index: int) -> str:
    m = re.search(r"\((.*)\)", codec.rates[index].label)
    steps = codec.default_steps
    parts = [m.group(1)] if m else []
    if steps:
        parts.append(f"{steps} step" + ("s" if steps > 1 else ""))
    return ", ".join(parts)


def _lowest_rate(codec: Codec) -> int:
    return min(codec.rates, key=lambda r: (not math.isfinite(r.bpp), r.bpp, r.index)).index


def _evaluate_image(
    name: str,
    pixels: np.ndarray,
    methods: Sequence[str],
    codecs: Mapping[str, Codec],
    rates: Mapping[str, Sequence[int]],
    vae: Any = None,
    qualities: Iterable[int] | None = None,
) -> list[dict[str, Any]]:
    """Rate–distortion rows of one image; JPEG / WebP paired with the OSCAR / RDEIC points (a sweep when there are none)."""
    h, w = pixels.shape[:2]
    rows: list[dict[str, Any]] = []
    targets: list[tuple[str, float]] = []
    for m in CODECS:
        if m not in methods:
            continue
        c = codecs[m]
        for r in rates[m]:
            blob = c.compress(pixels, r)
            out = np.asarray(c.decompress(blob))
            bpp = 8.0 * len(blob) / (h * w)
            pid = _point_id(m, r)
            rows.append(_row(name, m, pid, _setting(c, r), bpp, image_quality(pixels, out)))
            if m in PAIRED:
                targets.append((pid, bpp))
    for fmt in ("jpeg", "webp"):
        if fmt not in methods:
            continue
        if targets:
            for pid, target in targets:
                p = baselines.match_bpp(pixels, fmt, target)
                note = "" if p.reached else f"{LABELS[fmt]} cannot go this low: its lowest quality gives {p.bpp:.4g} bpp"
                q = image_quality(pixels, baselines.decode(p.data))
                rows.append(_row(name, fmt, f"≤ {pid}", f"q={p.quality}", p.bpp, q, target, note))
        else:
            for p in baselines.sweep(pixels, fmt, qualities):
                q = image_quality(pixels, baselines.decode(p.data))
                rows.append(_row(name, fmt, f"q={p.quality}", f"q={p.quality}", p.bpp, q))
    if "autoencoder" in methods:
        rows.append(_autoencoder_row(name, pixels, vae))
    return rows


def _autoencoder_row(name: str, pixels: np.ndarray, vae: Any) -> dict[str, Any]:
    from diffcore.data import to_tensor
    from diffcore.prior.autoencode import reconstruct

    try:
        x = to_tensor(pixels)[None].to(vae.device)
        rec = reconstruct(vae, x)
    except InvalidInputError as e:
        return _row(name, "autoencoder", "no quantization", "", _NA, (float("nan"), None), note=f"not run: {e}")
    out = ((rec[0].clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()
    return _row(name, "autoencoder", "no quantization", "upper bound, no bits", _NA, image_quality(pixels, out))


def mean_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per-image rows -> one row per (method, point): the mean over images of bpp, target bpp, PSNR and MS-SSIM.

    MS-SSIM is averaged over the images that have it (the note says when that is not all of them); a
    JPEG / WebP row's note counts the images where it could not go as low as its target (it used more bits there).
    """
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["method"], r["point"]), []).append(r)
    out = []
    for (method, point), rs in groups.items():
        n = len(rs)

        def mean(key: str, rs: list[Mapping[str, Any]] = rs) -> Any:
            vals = [r[key] for r in rs if _num(r.get(key))]
            return sum(vals) / len(vals) if vals else (_NA if key != "target bpp" else "")

        settings = list(dict.fromkeys(str(r["setting"]) for r in rs))
        if len(settings) > 1 and all(s.startswith("q=") for s in settings):
            qs = sorted(int(s[2:]) for s in settings)
            setting = f"q={qs[0]}–{qs[-1]}"
        else:
            setting = settings[0] if len(settings) == 1 else "varies"
        notes = []
        unreached = sum(1 for r in rs if _num(r.get("target bpp")) and _num(r["bpp"]) and r["bpp"] > r["target bpp"])
        if unreached:
            notes.append(f"cannot go this low on {unreached} of {n} images (uses more bits there)")
        n_ms = sum(1 for r in rs if _num(r.get("MS-SSIM")))
        if 0 < n_ms < n:
            notes.append(f"MS-SSIM over the {n_ms} of {n} images ≥ 176 px")
        out.append(
            {
                "image": f"mean of {n}",
                "method": method,
                "point": point,
                "setting": setting,
                "bpp": mean("bpp"),
                "target bpp": mean("target bpp"),
                "PSNR dB": mean("PSNR dB"),
                "MS-SSIM": mean("MS-SSIM"),
                "note": "; ".join(notes),
            }
        )
    return out


def _cell(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if not math.isfinite(v):
            return _NA
        return f"{v:.4g}" if abs(v) < 1e5 else f"{v:.3e}"
    return str(v).replace("|", "\\|").replace("\n", " ")


def format_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Rows (dicts) -> a Markdown table; the columns are every key, in order of first appearance."""
    if not rows:
        return "(no rows)"
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    md = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    md += ["| " + " | ".join(_cell(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(md)


def _check_methods(methods: Iterable[str]) -> tuple[str, ...]:
    if isinstance(methods, str):
        methods = (methods,)
    ms = tuple(dict.fromkeys(str(m).lower() for m in methods))
    bad = [m for m in ms if m not in LABELS]
    if bad or not ms:
        raise UnknownNameError(f"unknown method(s) {bad or list(ms)}; choose from {sorted(LABELS)}")
    return ms


def _load(methods: Sequence[str], path: str | Path | None, device: str) -> tuple[dict[str, Codec], Any]:
    codecs = {m: Codec.load(m, path=path, device=device) for m in CODECS if m in methods}
    vae = None
    if "autoencoder" in methods:
        from diffcore.zoo import load_tinysd

        vae = load_tinysd(device=device).vae
    return codecs, vae


def evaluate_folder(
    folder: str | Path,
    methods: Iterable[str] | None = METHODS,
    path: str | Path | None = None,
    *,
    device: str = "cpu",
) -> list[dict[str, Any]]:
    """Rate–distortion rows for every image in ``folder``: OSCAR, RDEIC and the hyperprior at every rate,
    JPEG / WebP at the highest quality whose real bpp is at most each OSCAR / RDEIC point's (a quality
    sweep when neither diffusion codec is asked for), ``"autoencoder"`` if asked. With several images,
    the per-image rows are followed by their means (``image == "mean of N"``). ``methods=None``: all of
    :data:`METHODS`. ``path``: a weights root (default: the shipped weights). Render with :func:`format_table`.
    """
    from diffcore.data import load_folder

    ms = _check_methods(METHODS if methods is None else methods)
    images = load_folder(folder)
    codecs, vae = _load(ms, path, device)
    rates = {m: [r.index for r in c.rates] for m, c in codecs.items()}
    rows = [r for im in images for r in _evaluate_image(im.name, im.pixels, ms, codecs, rates, vae)]
    return rows + (mean_rows(rows) if len(images) > 1 else [])


# ---------------------------------------------------------------------------- the paired comparison


def _verdict(r: Mapping[str, Any], b: Mapping[str, Any], name: str) -> tuple[str, str | None]:
    """Does codec row ``r`` beat baseline row ``b`` in MS-SSIM at equal or lower real bpp?

    Returns (text, status) with status ``"win"``, ``"loss"``, ``"uncontested"`` (the baseline cannot make a file
    this small: its lowest quality is bigger than the codec's blob) or None (no MS-SSIM).
    """
    if not (_num(r["MS-SSIM"]) and _num(b["MS-SSIM"])):
        return "n/a (MS-SSIM needs ≥ 176 px)", None
    higher = r["MS-SSIM"] > b["MS-SSIM"]
    if _num(b["bpp"]) and _num(r["bpp"]) and b["bpp"] > r["bpp"]:
        tail = "its smallest, bigger file scores lower" if higher else "its smallest, bigger file scores higher"
        return f"uncontested: {name} cannot go this low ({tail})", "uncontested"
    return ("yes" if higher else f"no ({name} wins)"), ("win" if higher else "loss")


def paired_rows(rows: Sequence[Mapping[str, Any]], *, max_bpp: float | None = None, psnr: bool = True) -> list[dict[str, Any]]:
    """Each OSCAR / RDEIC row (of bpp <= ``max_bpp``) next to the WebP and JPEG rows paired with it on the same image."""
    index = {(r["image"], r["method"], r["point"]): r for r in rows}
    out = []
    for r in rows:
        if r["method"] not in (LABELS[m] for m in PAIRED) or not _num(r["bpp"]):
            continue
        if max_bpp is not None and r["bpp"] > max_bpp:
            continue
        row: dict[str, Any] = {"image": r["image"], "method": r["method"], "point": r["point"], "bpp": r["bpp"]}
        if psnr:
            row["PSNR dB"] = r["PSNR dB"]
        row["MS-SSIM"] = r["MS-SSIM"]
        for fmt in ("webp", "jpeg"):
            b = index.get((r["image"], LABELS[fmt], f"≤ {r['point']}"))
            if b is None:
                continue
            name = LABELS[fmt]
            row[f"{name} bpp"] = b["bpp"]
            if psnr:
                row[f"{name} PSNR"] = b["PSNR dB"]
            row[f"{name} MS-SSIM"] = b["MS-SSIM"]
            row[f"beats {name}"] = _verdict(r, b, name)[0]
        out.append(row)
    return out


def _goal(per_image: list[dict[str, Any]], means: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str, dict[str, Any]]:
    """The goal's rows (points ≤ GOAL_BPP, per image then mean), a summary text and its data."""
    table = paired_rows(per_image, max_bpp=GOAL_BPP, psnr=False) + paired_rows(means, max_bpp=GOAL_BPP, psnr=False)
    lines, data = [], {}
    for m in PAIRED:
        label = LABELS[m]
        mine = [r for r in per_image if r["method"] == label and _num(r["bpp"])]
        if not mine:
            continue
        low = [r for r in mine if r["bpp"] <= GOAL_BPP]
        mean_low = [r for r in means if r["method"] == label and _num(r["bpp"]) and r["bpp"] <= GOAL_BPP]
        if not low and not mean_low:
            lowest = min(r["bpp"] for r in mine)
            lines.append(
                f"- **{label}**: no point at ≤ {GOAL_BPP} bpp on any image (its lowest is {lowest:.4g} bpp): nothing to check."
            )
            data[label] = {"points": 0, "goal_met": None}
            continue
        d: dict[str, Any] = {}
        met, checked, by_default, compared = True, 0, [], []
        for fmt in ("webp", "jpeg"):
            name = LABELS[fmt]
            counts: dict[str, dict[str, int]] = {}
            losses, bigger_better = [], 0
            for scope, codec_rows, all_rows in (("per image", low, per_image), ("mean", mean_low, means)):
                idx = {(r["image"], r["point"]): r for r in all_rows if r["method"] == name}
                c = {"win": 0, "loss": 0, "uncontested": 0, "n/a": 0}
                for r in codec_rows:
                    b = idx.get((r["image"], f"≤ {r['point']}"))
                    if b is None:
                        continue
                    status = _verdict(r, b, name)[1]
                    c[status or "n/a"] += 1
                    if status == "loss":
                        losses.append((r, b))
                    if status == "uncontested" and scope == "per image" and b["MS-SSIM"] > r["MS-SSIM"]:
                        bigger_better += 1
                counts[scope] = c
            n = sum(v for c in counts.values() for k, v in c.items() if k != "n/a")
            if not n:
                continue
            checked += n
            compared.append(name)
            met = met and not losses
            if not losses and not any(c["win"] for c in counts.values()):
                by_default.append(name)  # never compared head to head: it cannot make files this small

            def say(c: dict[str, int]) -> str:
                return f"{c['win']} wins, {c['loss']} losses, {c['uncontested']} where {name} cannot go this low"

            text = (
                f"- **{label} vs {name}** (MS-SSIM at equal or lower real bpp, points ≤ {GOAL_BPP} bpp): "
                f"per image {say(counts['per image'])}; on average over the images {say(counts['mean'])}."
            )
            if bigger_better:
                text += (
                    f" At {bigger_better} of the per-image points where {name} cannot go this low, its smallest file "
                    "(bigger than the codec's blob) still scores a higher MS-SSIM."
                )
            if losses:
                text += f" **{name} wins** at: " + "; ".join(
                    f"{r['image']} {r['point']} ({r['MS-SSIM']:.4f} at {r['bpp']:.4g} bpp vs "
                    f"{b['MS-SSIM']:.4f} at {b['bpp']:.4g} bpp)"
                    for r, b in losses
                )
                text += "."
            lines.append(text)
            d[f"vs {name}"] = {
                **{f"{scope} {k}": v for scope, c in counts.items() for k, v in c.items()},
                "bigger file scores higher": bigger_better,
            }
        d["goal_met"] = bool(met and checked)
        d["met_by_default_against"] = by_default if met and checked else []
        data[label] = d
        if not (met and checked):
            verdict = "not met"
        elif by_default == compared:
            verdict = (
                f"met only by default: {' and '.join(compared)} cannot make a file this small at any checked point, "
                "so there is no head-to-head comparison"
            )
        elif by_default:
            verdict = f"met ({by_default[0]} only by default: it cannot make a file this small at any checked point)"
        else:
            verdict = "met"
        lines.append(
            f"- Goal for **{label}** (no point ≤ {GOAL_BPP} bpp where WebP or JPEG has a higher MS-SSIM at equal or lower bpp): "
            f"**{verdict}**."
        )
    return table, "\n".join(lines) or "No OSCAR or RDEIC rows.", data


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
        r = _lowest_rate(c)
        blob = c.compress(pixels, r)
        for s in method_steps:
            key = f"{LABELS[m]} " + (
                "one step" if m == "oscar" and s == 1 else f"{s} DDIM steps" if m == "oscar" else f"{s} steps"
            )
            variants[key] = lambda c=c, blob=blob, s=s: c.decompress(blob, steps=s)
            meta[key] = (_point_id(m, r), 8.0 * len(blob) / (h * w), s)
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
                "MS-SSIM": _NA if quality[key][1] is None else quality[key][1],
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


# ---------------------------------------------------------------------------- sweeps and the plot


def _sweep_means(images: Sequence[tuple[str, np.ndarray]], qualities: Iterable[int] | None) -> list[dict[str, Any]]:
    """JPEG / WebP at fixed qualities (each format's lowest included), averaged over the images (the plot's curves)."""
    rows = []
    for fmt in ("jpeg", "webp"):
        per_q: dict[int, list[tuple[float, float, float | None]]] = {}
        qs = None if qualities is None else sorted({baselines.QUALITY_RANGE[fmt][0], *qualities})
        for _, px in images:
            for p in baselines.sweep(px, fmt, qs):
                per_q.setdefault(p.quality, []).append((p.bpp, *image_quality(px, baselines.decode(p.data))))
        for q, vals in per_q.items():
            ms = [v[2] for v in vals]
            rows.append(
                {
                    "method": LABELS[fmt],
                    "quality": q,
                    "bpp": sum(v[0] for v in vals) / len(vals),
                    "PSNR dB": sum(v[1] for v in vals) / len(vals),
                    "MS-SSIM": sum(ms) / len(ms) if all(m is not None for m in ms) else _NA,
                }
            )
    return rows


def _plot(path: Path, means: list[dict[str, Any]], sweeps: list[dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"OSCAR": "C0", "RDEIC": "C1", "hyperprior": "C2", "JPEG": "C3", "WebP": "C4", "tinysd AE": "C7"}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key in zip(axes, ("PSNR dB", "MS-SSIM")):
        for label in ("OSCAR", "RDEIC", "hyperprior"):
            pts = sorted((r["bpp"], r[key]) for r in means if r["method"] == label and _num(r["bpp"]) and _num(r[key]))
            if pts:
                ax.plot(*zip(*pts), "o-", color=colors[label], label=label)
        for label in ("JPEG", "WebP"):
            pts = sorted((r["bpp"], r[key]) for r in sweeps if r["method"] == label and _num(r[key]))
            if pts:
                ax.plot(*zip(*pts), "--", color=colors[label], lw=1, label=f"{label} (quality sweep)")
            pts = sorted((r["bpp"], r[key]) for r in means if r["method"] == label and _num(r["bpp"]) and _num(r[key]))
            if pts:
                ax.plot(*zip(*pts), "x", color=colors[label], ms=8, label=f"{label} (paired, ≤ codec bpp)")
        ae = [r[key] for r in means if r["method"] == "tinysd AE" and _num(r[key])]
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


def run(
    out_dir: str | Path,
    *,
    quick: bool = False,
    data: str | Path | None = None,
    path: str | Path | None = None,
    device: str = "cpu",
) -> Path:
    """Write ``codec.md``, ``codec.json`` and ``codec_rd.png`` into ``out_dir``; returns the Markdown's path.

    ``data``: a folder of images instead of the holdout photos; ``path``: a weights root instead of the
    shipped weights. ``quick``: one 176-px crop, the lowest rate of each codec, a 64-px crop and one
    timed repeat for speed — a smoke run, not for reports.
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
    codecs, vae = _load(methods, path, device)
    rates = {m: ([_lowest_rate(c)] if quick else [r.index for r in c.rates]) for m, c in codecs.items()}

    report = Report(
        "codec",
        "diffcodec: OSCAR and RDEIC vs JPEG, WebP, a learned hyperprior and the tinysd autoencoder",
        Path(out_dir),
        command="diffcore bench codec" + (" --quick" if quick else ""),
        intro=__doc__.split("\n\n", 1)[1].split("\n\n``evaluate_folder``")[0].strip()
        + f"\n\nData: {desc}. Weights: {path if path is not None else 'the shipped weights'}. Device: {device}.",
    )
    report.data["invocation"] = shlex.join(sys.argv)
    report.data["weights"] = str(path) if path is not None else "shipped"
    report.data["data"] = desc
    report.table(
        "Operating points",
        [
            {
                "method": LABELS[m],
                "point": _point_id(m, r.index),
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
        per_image += _evaluate_image(name, px, methods, codecs, rates, vae)
    means = mean_rows(per_image)
    _log(quick, "JPEG / WebP quality sweeps")
    sweeps = _sweep_means(images, (None if not quick else (1, 10, 50, 90)))

    goal_rows, goal_text, goal_data = _goal(per_image, means)
    report.text(
        f"Goal check: MS-SSIM at ≤ {GOAL_BPP} bpp",
        "At every OSCAR / RDEIC point whose real bpp is at most "
        f"{GOAL_BPP} (per image, then the points whose mean bpp is), does the codec beat WebP and JPEG in MS-SSIM at "
        "equal or lower real bpp? JPEG / WebP use the highest quality whose file is no larger than the codec's blob on "
        "the same image; when even their lowest quality makes a bigger file they cannot go this low: such a point is "
        "*uncontested* (no loss for the codec, but no head-to-head win either; the table shows the bigger file's score).\n\n"
        + goal_text
        + "\n\n"
        + format_table(goal_rows),
    )
    report.data["goal"] = goal_data
    report.data[f"Goal check: MS-SSIM at ≤ {GOAL_BPP} bpp"] = goal_rows

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
    report.text(
        "Decode speed: OSCAR one step vs 10 / 50 DDIM steps, and RDEIC",
        f"On {speed_img[0]} ({w}×{h} px), each codec at its lowest rate, decoding the same blob with "
        "`Codec.decompress(blob, steps=...)`: OSCAR's one step, the same model running DDIM from the same norm-matched start "
        "at t(rate) in 10 and 50 steps, and RDEIC's relay sampler in 2 and 5 steps. Times are paired and interleaved "
        f"({repeats} repeat{'s' if repeats > 1 else ''} after {warmup} warm-up), ratios are medians of per-repeat ratios "
        "against OSCAR one step; seconds are medians on the machine above.\n\n" + speed_text + "\n\n" + format_table(speed_rows),
    )
    report.data["Decode speed"] = speed_rows
    report.data["speed"] = speed_data

    plot = report.plot_path("rd")
    _plot(plot, means, sweeps)
    report.image(
        "Rate–distortion plot",
        plot,
        "Mean over the images: bpp (log scale) vs PSNR and vs MS-SSIM; dashed: JPEG / WebP at fixed qualities; "
        "crosses: JPEG / WebP paired with each OSCAR / RDEIC point; dotted: the tinysd autoencoder alone; "
        f"dash-dot: {GOAL_BPP} bpp.",
    )
    report.text(
        "Rate–distortion, mean over images",
        "One row per method and point; JPEG / WebP rows `≤ X` are paired with point X (target bpp: X's mean real bpp).\n\n"
        + format_table(means),
    )
    report.data["Rate–distortion, mean over images"] = means
    report.text(
        "Paired comparison at every point, mean over images",
        "Where a baseline wins above the goal's rates too.\n\n" + format_table(paired_rows(means)),
    )
    report.text("Rate–distortion, per image", format_table(per_image))
    report.data["Rate–distortion, per image"] = per_image
    report.data["JPEG / WebP quality sweeps"] = sweeps
    return report.write()
