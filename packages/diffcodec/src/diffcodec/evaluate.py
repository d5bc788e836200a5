"""Rate–distortion evaluation shared by ``diffcodec eval DIR`` and ``diffcore bench codec``.

Every bpp is the real size of the bytes, ``8 · len(blob) / pixels`` (the diffcodec
container's header and checksum included; JPEG and WebP files as Pillow writes
them). Every quality number is measured on the decoded 8-bit RGB image against
the original, in [0, 1]: PSNR, and MS-SSIM (5 scales) on images whose sides are
both at least 176 px. JPEG and WebP are *paired* with the diffusion codecs: on
each image, for each OSCAR and RDEIC point, their quality is searched for the
highest whose real bpp is at most that point's real bpp on that image.

:func:`evaluate_folder` gives the rows for any folder of images; render them
with :func:`format_table` (diffcore's report table). :func:`goal_check` is the
benchmark's MS-SSIM goal at the lowest rates.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from diffcodec import baselines
from diffcodec.codec import Codec
from diffcore.bench.report import NA, format_table
from diffcore.errors import InvalidInputError, UnknownNameError

__all__ = [
    "CODECS",
    "GOAL_BPP",
    "LABELS",
    "METHODS",
    "PAIRED",
    "evaluate_folder",
    "evaluate_image",
    "format_table",
    "goal_check",
    "image_quality",
    "is_number",
    "load_methods",
    "lowest_rate",
    "mean_rows",
    "paired_rows",
    "point_id",
    "sweep_means",
]

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


# ---------------------------------------------------------------------------- measuring


def image_quality(ref: np.ndarray, out: np.ndarray) -> tuple[float, float | None]:
    """(PSNR dB, MS-SSIM or None when a side is under 176 px) of ``out`` against ``ref``, both (H, W, 3) uint8."""
    from diffcore.metrics import MS_SSIM_MIN_SIDE, ms_ssim, psnr

    if ref.shape != out.shape:
        raise InvalidInputError(f"decoded image is {out.shape}, the original {ref.shape}")
    a = torch.from_numpy(np.array(ref)).permute(2, 0, 1)[None].double() / 255
    b = torch.from_numpy(np.array(out)).permute(2, 0, 1)[None].double() / 255
    p = float(psnr(a, b)[0])
    m = float(ms_ssim(a, b)[0]) if min(ref.shape[:2]) >= MS_SSIM_MIN_SIDE else None
    return p, m


def is_number(v: Any) -> bool:
    """A finite int or float (not a bool, not ``"n/a"``)."""
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
        "MS-SSIM": NA if q[1] is None else q[1],
        "note": note,
    }


def point_id(method: str, index: int) -> str:
    """The name of a codec's operating point in the tables (``oscar-2``)."""
    return f"{method}-{index}"


def _setting(codec: Codec, index: int) -> str:
    m = re.search(r"\((.*)\)", codec.rates[index].label)
    steps = codec.default_steps
    parts = [m.group(1)] if m else []
    if steps:
        parts.append(f"{steps} step" + ("s" if steps > 1 else ""))
    return ", ".join(parts)


def lowest_rate(codec: Codec) -> int:
    """The index of the codec's rate with the lowest nominal bpp."""
    return min(codec.rates, key=lambda r: (not math.isfinite(r.bpp), r.bpp, r.index)).index


def evaluate_image(
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
            pid = point_id(m, r)
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
        return _row(name, "autoencoder", "no quantization", "", NA, (float("nan"), None), note=f"not run: {e}")
    out = ((rec[0].clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()
    return _row(name, "autoencoder", "no quantization", "upper bound, no bits", NA, image_quality(pixels, out))


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
            vals = [r[key] for r in rs if is_number(r.get(key))]
            return sum(vals) / len(vals) if vals else (NA if key != "target bpp" else "")

        settings = list(dict.fromkeys(str(r["setting"]) for r in rs))
        if len(settings) > 1 and all(s.startswith("q=") for s in settings):
            qs = sorted(int(s[2:]) for s in settings)
            setting = f"q={qs[0]}–{qs[-1]}"
        else:
            setting = settings[0] if len(settings) == 1 else "varies"
        notes = []
        unreached = sum(1 for r in rs if is_number(r.get("target bpp")) and is_number(r["bpp"]) and r["bpp"] > r["target bpp"])
        if unreached:
            notes.append(f"cannot go this low on {unreached} of {n} images (uses more bits there)")
        n_ms = sum(1 for r in rs if is_number(r.get("MS-SSIM")))
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


def _check_methods(methods: Iterable[str]) -> tuple[str, ...]:
    if isinstance(methods, str):
        methods = (methods,)
    ms = tuple(dict.fromkeys(str(m).lower() for m in methods))
    bad = [m for m in ms if m not in LABELS]
    if bad or not ms:
        raise UnknownNameError(f"unknown method(s) {bad or list(ms)}; choose from {sorted(LABELS)}")
    return ms


def load_methods(methods: Sequence[str], path: str | Path | None, device: str) -> tuple[dict[str, Codec], Any]:
    """The codecs among ``methods`` (from the weights root ``path``) and the tinysd VAE if ``"autoencoder"`` is asked."""
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
    codecs, vae = load_methods(ms, path, device)
    rates = {m: [r.index for r in c.rates] for m, c in codecs.items()}
    rows = [r for im in images for r in evaluate_image(im.name, im.pixels, ms, codecs, rates, vae)]
    return rows + (mean_rows(rows) if len(images) > 1 else [])


# ---------------------------------------------------------------------------- the paired comparison


def _verdict(r: Mapping[str, Any], b: Mapping[str, Any], name: str) -> tuple[str, str | None]:
    """Does codec row ``r`` beat baseline row ``b`` in MS-SSIM at equal or lower real bpp?

    Returns (text, status) with status ``"win"``, ``"loss"``, ``"uncontested"`` (the baseline cannot make a file
    this small: its lowest quality is bigger than the codec's blob) or None (no MS-SSIM).
    """
    if not (is_number(r["MS-SSIM"]) and is_number(b["MS-SSIM"])):
        return "n/a (MS-SSIM needs ≥ 176 px)", None
    higher = r["MS-SSIM"] > b["MS-SSIM"]
    if is_number(b["bpp"]) and is_number(r["bpp"]) and b["bpp"] > r["bpp"]:
        tail = "its smallest, bigger file scores lower" if higher else "its smallest, bigger file scores higher"
        return f"uncontested: {name} cannot go this low ({tail})", "uncontested"
    return ("yes" if higher else f"no ({name} wins)"), ("win" if higher else "loss")


def paired_rows(rows: Sequence[Mapping[str, Any]], *, max_bpp: float | None = None, psnr: bool = True) -> list[dict[str, Any]]:
    """Each OSCAR / RDEIC row (of bpp <= ``max_bpp``) next to the WebP and JPEG rows paired with it on the same image."""
    index = {(r["image"], r["method"], r["point"]): r for r in rows}
    out = []
    for r in rows:
        if r["method"] not in (LABELS[m] for m in PAIRED) or not is_number(r["bpp"]):
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


def goal_check(per_image: list[dict[str, Any]], means: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str, dict[str, Any]]:
    """The goal's rows (points ≤ GOAL_BPP, per image then mean), a summary text and its data."""
    table = paired_rows(per_image, max_bpp=GOAL_BPP, psnr=False) + paired_rows(means, max_bpp=GOAL_BPP, psnr=False)
    lines, data = [], {}
    for m in PAIRED:
        label = LABELS[m]
        mine = [r for r in per_image if r["method"] == label and is_number(r["bpp"])]
        if not mine:
            continue
        low = [r for r in mine if r["bpp"] <= GOAL_BPP]
        mean_low = [r for r in means if r["method"] == label and is_number(r["bpp"]) and r["bpp"] <= GOAL_BPP]
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

            def say(c: dict[str, int], name: str = name) -> str:
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


# ---------------------------------------------------------------------------- quality sweeps


def sweep_means(images: Sequence[tuple[str, np.ndarray]], qualities: Iterable[int] | None) -> list[dict[str, Any]]:
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
                    "MS-SSIM": sum(ms) / len(ms) if all(m is not None for m in ms) else NA,
                }
            )
    return rows
