"""Rate–distortion evaluation shared by ``diffcodec eval DIR`` and ``diffcore bench codec``.

Every bpp is the real size of the bytes, ``8 · len(blob) / pixels`` (the diffcodec
container's header and checksum included; JPEG, WebP and AVIF files as Pillow
writes them). Every quality number is measured on the decoded 8-bit RGB image
against the original, in [0, 1]: PSNR, and MS-SSIM (5 scales) on images whose
sides are both at least 176 px.

The classical codecs are *paired* with the diffusion codecs: on each image, for
each OSCAR and RDEIC point, each is searched for the highest quality whose real
bpp is at most that point's (:func:`diffcodec.baselines.match_scales`), at
native resolution and downscaled by 2, 3 and 4 (bicubic upscaling after
decoding), the standard low-rate mode. Rows:

* ``JPEG`` / ``WebP`` — native resolution;
* ``JPEG best scale`` / ``WebP best scale`` / ``AVIF best scale`` — per image
  the best of the four scales, picked separately for PSNR and for MS-SSIM (the
  strongest baseline each metric can have; the setting column names both);
* ``OSCAR no diffusion`` / ``RDEIC no diffusion`` — the ablation: the same blob,
  its hyper-decoded / entropy-decoded latent straight into tinysd's decoder.

:func:`evaluate_folder` gives the rows for any folder of images; render them
with :func:`format_table` (diffcore's report table).
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
    "ABLATION",
    "CODECS",
    "LABELS",
    "METHODS",
    "PAIRED",
    "SCALED",
    "evaluate_folder",
    "evaluate_image",
    "format_table",
    "image_quality",
    "is_number",
    "load_methods",
    "lowest_rate",
    "mean_rows",
    "paired_rows",
    "point_id",
    "sweep_curves",
]

#: the methods of a rate–distortion evaluation (``"autoencoder"`` may be added: the tinysd autoencoder alone)
METHODS: tuple[str, ...] = ("oscar", "rdeic", "hyperprior", "jpeg", "webp", "avif")
LABELS = {
    "oscar": "OSCAR",
    "rdeic": "RDEIC",
    "hyperprior": "hyperprior",
    "jpeg": "JPEG",
    "webp": "WebP",
    "avif": "AVIF",
    "autoencoder": "tinysd AE",
}
CODECS = ("oscar", "rdeic", "hyperprior")
#: the diffusion codecs the classical ones are paired with, and the label of each one's "no diffusion" ablation
PAIRED = ("oscar", "rdeic")
ABLATION = {"oscar": "OSCAR no diffusion", "rdeic": "RDEIC no diffusion"}
#: the best-of-scales row of each classical codec (AVIF has only this one)
SCALED = {"jpeg": "JPEG best scale", "webp": "WebP best scale", "avif": "AVIF best scale"}
#: the classical codecs that also get a native-resolution row
NATIVE = ("jpeg", "webp")
_FRACTION = {1: "×1", 2: "½", 3: "⅓", 4: "¼"}


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
    """One table row; ``method`` is the row's label (a :data:`LABELS` value, an ablation or a best-scale row)."""
    return {
        "image": image,
        "method": method,
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
    """Rate–distortion rows of one image: every codec point (and the OSCAR / RDEIC ablations), the classical
    codecs paired with each OSCAR / RDEIC point (a native quality sweep when there are none)."""
    h, w = pixels.shape[:2]
    rows: list[dict[str, Any]] = []
    targets: list[tuple[str, float]] = []
    for m in CODECS:
        if m not in methods:
            continue
        c = codecs[m]
        for r in rates[m]:
            blob = c.compress(pixels, r)
            bpp = 8.0 * len(blob) / (h * w)
            pid = point_id(m, r)
            rows.append(_row(name, LABELS[m], pid, _setting(c, r), bpp, image_quality(pixels, np.asarray(c.decompress(blob)))))
            if m in PAIRED:
                plain = np.asarray(c.decompress(blob, steps=0))
                rows.append(_row(name, ABLATION[m], pid, "no UNet pass", bpp, image_quality(pixels, plain)))
                targets.append((pid, bpp))
    for fmt in ("jpeg", "webp", "avif"):
        if fmt not in methods:
            continue
        if not targets:
            if fmt in NATIVE:
                for p in baselines.sweep(pixels, fmt, qualities):
                    q = image_quality(pixels, baselines.decode(p.data, size=(h, w)))
                    rows.append(_row(name, LABELS[fmt], f"q={p.quality}", f"q={p.quality}", p.bpp, q))
            continue
        for pid, target in targets:
            scored = [
                (p, image_quality(pixels, baselines.decode(p.data, size=(h, w))))
                for p in baselines.match_scales(pixels, fmt, target)
            ]
            if fmt in NATIVE:
                p, q = next(pq for pq in scored if pq[0].scale == 1)
                rows.append(_row(name, LABELS[fmt], f"≤ {pid}", f"q={p.quality}", p.bpp, q, target, _unreached(fmt, p)))
            rows.append(_best_scale_row(name, fmt, pid, target, scored))
    if "autoencoder" in methods:
        rows.append(_autoencoder_row(name, pixels, vae))
    return rows


def _unreached(fmt: str, p: baselines.Point) -> str:
    return "" if p.reached else f"{LABELS[fmt]} cannot go this low: its lowest quality gives {p.bpp:.4g} bpp"


def _best_scale_row(name: str, fmt: str, pid: str, target: float, scored: list) -> dict[str, Any]:
    """The best of the scales within the target, for PSNR and for MS-SSIM separately (or the smallest file, flagged)."""
    fits = [pq for pq in scored if pq[0].reached]
    if not fits:
        p, q = min(scored, key=lambda pq: pq[0].bpp)
        setting = f"{_FRACTION[p.scale]} q={p.quality}"
        return _row(name, SCALED[fmt], f"≤ {pid}", setting, p.bpp, q, target, _unreached(fmt, p))
    by_psnr = max(fits, key=lambda pq: pq[1][0])
    with_ms = [pq for pq in fits if pq[1][1] is not None]
    by_ms = max(with_ms, key=lambda pq: pq[1][1]) if with_ms else by_psnr
    setting = f"PSNR: {_FRACTION[by_psnr[0].scale]} q={by_psnr[0].quality}"
    if with_ms:
        setting += f"; MS-SSIM: {_FRACTION[by_ms[0].scale]} q={by_ms[0].quality}"
    q = (by_psnr[1][0], by_ms[1][1])
    return _row(name, SCALED[fmt], f"≤ {pid}", setting, max(by_psnr[0].bpp, by_ms[0].bpp), q, target)


def _autoencoder_row(name: str, pixels: np.ndarray, vae: Any) -> dict[str, Any]:
    from diffcore.data import to_tensor
    from diffcore.prior.autoencode import reconstruct

    try:
        x = to_tensor(pixels)[None].to(vae.device)
        rec = reconstruct(vae, x)
    except InvalidInputError as e:
        return _row(name, LABELS["autoencoder"], "no quantization", "", NA, (float("nan"), None), note=f"not run: {e}")
    out = ((rec[0].clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()
    return _row(name, LABELS["autoencoder"], "no quantization", "upper bound, no bits", NA, image_quality(pixels, out))


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

#: the baseline rows :func:`paired_rows` puts beside each codec point, strongest first
PAIRED_BASELINES = ("WebP best scale", "JPEG best scale", "AVIF best scale", "WebP", "JPEG")


def paired_rows(rows: Sequence[Mapping[str, Any]], *, max_bpp: float | None = None) -> list[dict[str, Any]]:
    """Each OSCAR / RDEIC row (of bpp <= ``max_bpp``) with its ablation and the baseline rows paired with it on the same image."""
    index = {(r["image"], r["method"], r["point"]): r for r in rows}
    out = []
    for r in rows:
        if r["method"] not in (LABELS[m] for m in PAIRED) or not is_number(r["bpp"]):
            continue
        if max_bpp is not None and r["bpp"] > max_bpp:
            continue
        row: dict[str, Any] = {"image": r["image"], "method": r["method"], "point": r["point"], "bpp": r["bpp"]}
        row["PSNR dB"], row["MS-SSIM"] = r["PSNR dB"], r["MS-SSIM"]
        plain = index.get((r["image"], f"{r['method']} no diffusion", r["point"]))
        if plain is not None:
            row["no diffusion PSNR"], row["no diffusion MS-SSIM"] = plain["PSNR dB"], plain["MS-SSIM"]
        for name in PAIRED_BASELINES:
            b = index.get((r["image"], name, f"≤ {r['point']}"))
            if b is not None:
                row[f"{name} bpp"], row[f"{name} PSNR"], row[f"{name} MS-SSIM"] = b["bpp"], b["PSNR dB"], b["MS-SSIM"]
        out.append(row)
    return out


# ---------------------------------------------------------------------------- quality sweeps


def sweep_curves(
    images: Sequence[tuple[str, np.ndarray]], fmt: str, qualities: Iterable[int] | None
) -> dict[str, dict[int, list]]:
    """Per image and scale, ``fmt``'s quality sweep as (bpp, PSNR, MS-SSIM or None) points: the BD-rate references."""
    out: dict[str, dict[int, list]] = {}
    for name, px in images:
        h, w = px.shape[:2]
        qs = None if qualities is None else sorted({baselines.QUALITY_RANGE[fmt][0], *qualities})
        out[name] = {
            s: [(p.bpp, *image_quality(px, baselines.decode(p.data, size=(h, w)))) for p in baselines.sweep(px, fmt, qs, scale=s)]
            for s in baselines.SCALES
        }
    return out
