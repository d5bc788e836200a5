"""diffcore.prior.reconstruction (PSNR / MS-SSIM / CIEDE2000 against bicubic ×4) and the prior benchmark's goals."""

from __future__ import annotations

import math

import numpy as np
import pytest

from diffcore.bench import Report
from diffcore.data import load_pool
from diffcore.errors import InvalidInputError
from diffcore.prior.bench import _autoencoder_goals
from diffcore.prior.reconstruction import autoencode, bicubic_x4, fidelity


def _srgb_grey_lightness(v: int) -> float:
    """CIE L* of the sRGB grey (v, v, v), from the sRGB and CIELAB definitions."""
    c = v / 255
    y = c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
    return 116 * y ** (1 / 3) - 16


def test_fidelity_of_a_uniform_shift():
    ref = np.full((200, 200, 3), 128, np.uint8)
    out = ref + np.uint8(10)
    f = fidelity(ref, out)
    assert f.psnr == pytest.approx(10 * math.log10(255**2 / 100), abs=1e-9)  # every value off by 10
    # neutral greys: CIEDE2000 is the lightness difference over S_L (Sharma et al. 2005, eq. 16)
    la, lb = _srgb_grey_lightness(128), _srgb_grey_lightness(138)
    mean_l = (la + lb) / 2
    s_l = 1 + 0.015 * (mean_l - 50) ** 2 / math.sqrt(20 + (mean_l - 50) ** 2)
    assert f.delta_e == pytest.approx((lb - la) / s_l, rel=1e-3)
    assert 0 < f.ms_ssim < 1
    assert fidelity(ref, ref).delta_e == 0.0 and fidelity(ref, ref).ms_ssim == pytest.approx(1.0)


def test_fidelity_no_ms_ssim_under_176_px():
    ref = np.zeros((100, 300, 3), np.uint8)
    assert fidelity(ref, ref).ms_ssim is None


def test_bicubic_x4_keeps_smooth_images_and_loses_fine_detail():
    h, w = 203, 301  # not multiples of 4
    ramp = np.broadcast_to(np.linspace(0, 255, w)[None, :, None], (h, w, 3)).round().astype(np.uint8)
    out = bicubic_x4(ramp)
    assert out.shape == ramp.shape and out.dtype == np.uint8
    assert fidelity(ramp, out).psnr > 40
    stripes = np.zeros((h, w, 3), np.uint8)
    stripes[:, ::2] = 255  # 2-px period: gone at a quarter of the resolution
    assert fidelity(stripes, bicubic_x4(stripes)).psnr < 8


def test_bad_images_are_typed_errors():
    with pytest.raises(InvalidInputError, match="uint8"):
        bicubic_x4(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(InvalidInputError, match="the original"):
        fidelity(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 9, 3), np.uint8))


def test_shipped_autoencoder_on_a_holdout_photo():
    """tinysd-v2 on chelsea: above bicubic ×4 in PSNR and MS-SSIM (measured 30.74 vs 30.35 dB, 0.969 vs 0.957), ΔE00 3.30."""
    from diffcore.zoo import load_tinysd

    photo = next(im for im in load_pool("holdout") if im.name == "chelsea").pixels  # 451 x 300
    rec = autoencode(load_tinysd("tinysd-v2").vae, photo)
    assert rec.shape == photo.shape and rec.dtype == np.uint8
    f, bicubic = fidelity(photo, rec), fidelity(photo, bicubic_x4(photo))
    assert f.psnr > 30.5 and f.ms_ssim > 0.965 and 0 < f.delta_e < 3.6
    assert f.psnr > bicubic.psnr + 0.2 and f.ms_ssim > bicubic.ms_ssim


def _rows(psnr: list[float], delta_e: list[float], ms: float) -> list[dict]:
    rows = [
        {
            "photo": f"p{i}",
            "bicubic ×4 PSNR dB": 30.0,
            "bicubic ×4 ΔE00": 2.0,
            "v PSNR dB": p,
            "v − bicubic dB": p - 30.0,
            "v ΔE00": d,
            "v MS-SSIM": ms,
        }
        for i, (p, d) in enumerate(zip(psnr, delta_e))
    ]
    mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k != "photo"}
    return [*rows, {"photo": "**mean**", **mean}]


@pytest.mark.parametrize(
    ("psnr", "delta_e", "ms", "met"),
    [
        ([31.5, 31.0, 31.2], [1.0, 1.5, 1.9], 0.97, [True, True, True, True]),
        ([33.0, 29.4, 32.0], [1.0, 2.0, 1.9], 0.96, [True, False, False, False]),  # mean +1.47, one photo -0.6 dB
        ([30.5, 30.6, 30.4], [1.0, 1.5, 1.9], 0.965, [False, True, True, True]),
    ],
)
def test_autoencoder_goals(tmp_path, psnr, delta_e, ms, met):
    r = Report("t", "T", tmp_path)
    _autoencoder_goals(r, _rows(psnr, delta_e, ms), ["v"])
    assert [g.met for g in r.goals] == met
    assert r.goals[0].measured == f"{np.mean(psnr):.2f} vs 30.00 dB ({np.mean(psnr) - 30:+.2f})"
