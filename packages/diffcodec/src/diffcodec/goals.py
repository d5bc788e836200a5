"""The codec benchmark's goals (issue 18), each checked on the mean-over-images rows of one run.

* :func:`diffusion_goal` — the diffusion step earns its place: at each codec's two
  lowest rates the decode beats its own "no diffusion" ablation by ≥ 0.5 dB PSNR
  or ≥ 0.02 MS-SSIM.
* :func:`low_rate_goal` — OSCAR beats the best-scale WebP and JPEG in PSNR and
  MS-SSIM at every OSCAR rate ≤ 0.1 bpp, and the best-scale AVIF in MS-SSIM at
  ≤ 0.05 bpp.
* :func:`high_rate_goal` — above 0.1 bpp, OSCAR or RDEIC within 0.5 dB PSNR of
  the best-scale WebP at every point.
* :func:`bd_rates` — Bjøntegaard delta rate of every method against WebP's
  envelope (the best of its four scales at each rate), per image, then the mean.

Each goal function returns (measured text, met or None when nothing was checked, details).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from diffcodec.evaluate import ABLATION, LABELS, PAIRED, is_number

LOW_BPP, AVIF_BPP = 0.1, 0.05
DIFFUSION_DB, DIFFUSION_MS = 0.5, 0.02
HIGH_RATE_DB = 0.5


def _by(rows: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], Mapping[str, Any]]:
    return {(r["method"], r["point"]): r for r in rows}


def _points(means: Sequence[Mapping[str, Any]], label: str) -> list[Mapping[str, Any]]:
    return sorted((r for r in means if r["method"] == label and is_number(r["bpp"])), key=lambda r: r["bpp"])


def diffusion_goal(means: Sequence[Mapping[str, Any]]) -> tuple[str, bool | None, dict[str, Any]]:
    """Decode vs "no diffusion" at each diffusion codec's two lowest rates."""
    idx, parts, met, details = _by(means), [], None, {}
    for m in PAIRED:
        for r in _points(means, LABELS[m])[:2]:
            plain = idx.get((ABLATION[m], r["point"]))
            if plain is None:
                continue
            dp = r["PSNR dB"] - plain["PSNR dB"]
            dm = r["MS-SSIM"] - plain["MS-SSIM"] if is_number(r["MS-SSIM"]) and is_number(plain["MS-SSIM"]) else None
            ok = dp >= DIFFUSION_DB or (dm is not None and dm >= DIFFUSION_MS)
            met = ok if met is None else met and ok
            details[r["point"]] = {"psnr_gain": dp, "ms_ssim_gain": dm, "met": ok}
            parts.append(f"{r['point']} {dp:+.2f} dB" + (f" / {dm:+.4f}" if dm is not None else ""))
    return ", ".join(parts) or "no OSCAR / RDEIC points", met, details


def low_rate_goal(means: Sequence[Mapping[str, Any]]) -> tuple[str, bool | None, dict[str, Any]]:
    """OSCAR vs the best-scale WebP / JPEG (PSNR and MS-SSIM) at ≤ 0.1 bpp and AVIF (MS-SSIM) at ≤ 0.05 bpp."""
    idx, parts, met, details = _by(means), [], None, {}
    for r in _points(means, "OSCAR"):
        if r["bpp"] > LOW_BPP:
            continue
        for name, metrics in (
            ("WebP best scale", ("PSNR dB", "MS-SSIM")),
            ("JPEG best scale", ("PSNR dB", "MS-SSIM")),
            ("AVIF best scale", ("MS-SSIM",)),
        ):
            if name.startswith("AVIF") and r["bpp"] > AVIF_BPP:
                continue
            b = idx.get((name, f"≤ {r['point']}"))
            if b is None:
                continue
            for k in metrics:
                if not (is_number(r[k]) and is_number(b[k])):
                    continue
                ok = r[k] > b[k]
                met = ok if met is None else met and ok
                details[f"{r['point']} vs {name} {k}"] = {"oscar": r[k], "baseline": b[k], "met": ok}
                if not ok:
                    parts.append(f"{r['point']} {k.split()[0]} {r[k]:.4g} vs {name} {b[k]:.4g}")
    if met is None:
        return f"no OSCAR point ≤ {LOW_BPP} bpp", None, details
    return ("all won" if met else "lost: " + "; ".join(parts)), met, details


def high_rate_goal(means: Sequence[Mapping[str, Any]]) -> tuple[str, bool | None, dict[str, Any]]:
    """Above 0.1 bpp: OSCAR's or RDEIC's PSNR minus the best-scale WebP's at the same bytes, per point."""
    idx, details = _by(means), {}
    verdicts = []
    for m in PAIRED:
        gaps = []
        for r in _points(means, LABELS[m]):
            b = idx.get(("WebP best scale", f"≤ {r['point']}"))
            if r["bpp"] <= LOW_BPP or b is None:
                continue
            gaps.append((r["point"], r["PSNR dB"] - b["PSNR dB"]))
        if gaps:
            details[LABELS[m]] = dict(gaps)
            verdicts.append(all(g >= -HIGH_RATE_DB for _, g in gaps))
    text = "; ".join(f"{k}: " + ", ".join(f"{p} {g:+.2f} dB" for p, g in v.items()) for k, v in details.items())
    return text or f"no point above {LOW_BPP} bpp", (any(verdicts) if verdicts else None), details


def envelope(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The upper-left envelope of (bpp, quality) points: each kept point has higher quality than every cheaper one."""
    out: list[tuple[float, float]] = []
    for bpp, q in sorted(points):
        if not out or q > out[-1][1]:
            out.append((bpp, q))
    return out


def bd_rates(per_image: Sequence[Mapping[str, Any]], webp: Mapping[str, Mapping[int, list]]) -> list[dict[str, Any]]:
    """BD-rate (%) of every codec and ablation against WebP's envelope over its scales, per image then the mean."""
    from diffcodec.rd import bd_rate

    labels = [LABELS["oscar"], ABLATION["oscar"], LABELS["rdeic"], ABLATION["rdeic"], LABELS["hyperprior"]]
    out = []
    for label in labels:
        row: dict[str, Any] = {"method": label}
        for key, col in (("PSNR dB", 1), ("MS-SSIM", 2)):
            vals = []
            for image, scales in webp.items():
                ref = envelope([(p[0], p[col]) for pts in scales.values() for p in pts if is_number(p[col])])
                test = [
                    (r["bpp"], r[key]) for r in per_image if r["image"] == image and r["method"] == label and is_number(r[key])
                ]
                v = bd_rate(ref, test) if len(ref) >= 2 and len(test) >= 2 else None
                if v is not None:
                    vals.append(v)
            row[f"BD-rate {key.split()[0]} %"] = sum(vals) / len(vals) if vals else "n/a"
            row[f"images ({key.split()[0]})"] = len(vals)
        out.append(row)
    return out
