"""The codec benchmark's goals and BD-rates, on hand-made rows whose verdicts are known."""

from __future__ import annotations

import pytest

from diffcodec import goals


def _m(method, point, bpp, psnr, ms):
    return {"image": "mean of 2", "method": method, "point": point, "bpp": bpp, "PSNR dB": psnr, "MS-SSIM": ms}


MEANS = [
    _m("OSCAR", "oscar-0", 0.03, 25.0, 0.85),
    _m("OSCAR no diffusion", "oscar-0", 0.03, 24.0, 0.84),  # +1 dB: earns its place
    _m("OSCAR", "oscar-1", 0.08, 26.0, 0.88),
    _m("OSCAR no diffusion", "oscar-1", 0.08, 25.9, 0.83),  # +0.1 dB but +0.05 MS-SSIM: earns it too
    _m("OSCAR", "oscar-2", 0.2, 28.0, 0.93),
    _m("OSCAR no diffusion", "oscar-2", 0.2, 28.0, 0.93),  # not among the two lowest: not checked
    _m("WebP best scale", "≤ oscar-0", 0.03, 24.5, 0.84),
    _m("JPEG best scale", "≤ oscar-0", 0.03, 22.0, 0.80),
    _m("AVIF best scale", "≤ oscar-0", 0.03, 26.0, 0.86),  # AVIF wins in MS-SSIM at ≤ 0.05 bpp
    _m("WebP best scale", "≤ oscar-1", 0.08, 25.5, 0.87),
    _m("JPEG best scale", "≤ oscar-1", 0.08, 24.0, 0.85),
    _m("AVIF best scale", "≤ oscar-1", 0.08, 27.0, 0.90),  # above 0.05 bpp: not a goal
    _m("WebP best scale", "≤ oscar-2", 0.2, 28.3, 0.94),  # -0.3 dB above 0.1 bpp: within 0.5
]


def test_diffusion_goal_checks_the_two_lowest_rates():
    text, met, d = goals.diffusion_goal(MEANS)
    assert met is True and set(d) == {"oscar-0", "oscar-1"}
    assert d["oscar-0"]["psnr_gain"] == pytest.approx(1.0) and "oscar-1 +0.10 dB / +0.0500" in text
    worse = [r if r["method"] != "OSCAR no diffusion" or r["point"] != "oscar-1" else {**r, "MS-SSIM": 0.87} for r in MEANS]
    assert goals.diffusion_goal(worse)[1] is False
    assert goals.diffusion_goal([r for r in MEANS if "no diffusion" not in r["method"]])[1] is None


def test_low_rate_goal_needs_every_metric_and_avif_only_at_the_lowest_rates():
    text, met, d = goals.low_rate_goal(MEANS)
    assert met is False and "oscar-0 MS-SSIM 0.85 vs AVIF best scale 0.86" in text
    assert "oscar-1 vs AVIF best scale MS-SSIM" not in d  # 0.08 bpp > 0.05
    no_avif = [r for r in MEANS if not r["method"].startswith("AVIF")]
    assert goals.low_rate_goal(no_avif)[:2] == ("all won", True)
    psnr_loss = [
        r if r["point"] != "≤ oscar-1" or not r["method"].startswith("WebP") else {**r, "PSNR dB": 26.5} for r in no_avif
    ]
    assert goals.low_rate_goal(psnr_loss)[1] is False


def test_high_rate_goal_allows_half_a_db():
    text, met, d = goals.high_rate_goal(MEANS)
    assert met is True and d["OSCAR"]["oscar-2"] == pytest.approx(-0.3) and "oscar-2 -0.30 dB" in text
    far = [r if r["point"] != "≤ oscar-2" else {**r, "PSNR dB": 29.0} for r in MEANS]
    assert goals.high_rate_goal(far)[1] is False


def test_envelope_keeps_only_points_better_than_every_cheaper_one():
    pts = [(0.1, 20.0), (0.05, 21.0), (0.2, 25.0), (0.15, 24.0), (0.3, 24.5)]
    assert goals.envelope(pts) == [(0.05, 21.0), (0.15, 24.0), (0.2, 25.0)]


def test_bd_rates_against_the_webp_envelope():
    """A codec that needs half WebP's bits at every quality has a BD-rate of about −50 % (the dominated ¼-scale
    points are off the envelope and change nothing)."""
    webp = {"a": {1: [(0.1, 20.0, 0.8), (0.2, 23.0, 0.85), (0.4, 26.0, 0.9)], 4: [(0.15, 19.0, 0.78), (0.3, 19.5, 0.79)]}}
    per_image = [
        {"image": "a", "method": "OSCAR", "point": f"oscar-{i}", "bpp": b / 2, "PSNR dB": q, "MS-SSIM": m}
        for i, (b, q, m) in enumerate(webp["a"][1])
    ]
    rows = {r["method"]: r for r in goals.bd_rates(per_image, webp)}
    assert rows["OSCAR"]["BD-rate PSNR %"] == pytest.approx(-50.0, abs=0.5)
    assert rows["OSCAR"]["images (PSNR)"] == 1
    assert rows["RDEIC"]["BD-rate PSNR %"] == "n/a" and rows["RDEIC"]["images (PSNR)"] == 0
