"""The rate–distortion evaluation shared by ``diffcodec eval`` and the benchmark: folders, means, the paired goal check."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from diffcodec import Codec, evaluate
from diffcore.data import load_pool


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Two small crops of a holdout photo, one with odd sides."""
    coffee = next(p.pixels for p in load_pool("holdout") if p.source == "coffee")
    d = tmp_path_factory.mktemp("folder")
    Image.fromarray(coffee[100:148, 200:264]).save(d / "a.png")
    Image.fromarray(coffee[200:237, 300:351]).save(d / "b.png")
    (d / "notes.txt").write_text("not an image")
    return d


def test_evaluate_folder(folder, codec_path):
    rows = evaluate.evaluate_folder(folder, path=codec_path)
    per_image = [r for r in rows if not r["image"].startswith("mean")]
    means = [r for r in rows if r["image"].startswith("mean")]
    assert {r["image"] for r in per_image} == {"a", "b"} and {r["image"] for r in means} == {"mean of 2"}
    assert len(means) * 2 == len(per_image)
    n_rates = {m: len(Codec.load(m, path=codec_path).rates) for m in ("oscar", "rdeic", "hyperprior")}
    for name in ("a", "b"):
        mine = [r for r in per_image if r["image"] == name]
        for m, label in (("oscar", "OSCAR"), ("rdeic", "RDEIC"), ("hyperprior", "hyperprior")):
            assert sum(r["method"] == label for r in mine) == n_rates[m]
        for m in ("oscar", "rdeic"):  # the "no diffusion" ablation of every point, at the same real bpp
            plain = {r["point"]: r for r in mine if r["method"] == evaluate.ABLATION[m]}
            assert len(plain) == n_rates[m]
            assert all(plain[r["point"]]["bpp"] == r["bpp"] for r in mine if r["method"] == evaluate.LABELS[m])
        for label in ("JPEG", "WebP", "JPEG best scale", "WebP best scale", "AVIF best scale"):
            assert sum(r["method"] == label for r in mine) == n_rates["oscar"] + n_rates["rdeic"]
        for r in mine:  # a best-scale row is never worse than the native one it includes
            if r["method"] in ("JPEG", "WebP") and not r["note"]:
                best = next(b for b in mine if b["method"] == f"{r['method']} best scale" and b["point"] == r["point"])
                assert best["PSNR dB"] >= r["PSNR dB"] and best["bpp"] <= r["target bpp"]
    for r in rows:
        assert _finite(r["bpp"]) and _finite(r["PSNR dB"]), r
        assert r["MS-SSIM"] == "n/a"  # smaller than MS-SSIM's 176 px
    # the bpp is the real size of the blob
    pixels = np.asarray(Image.open(folder / "b.png"))
    blob = Codec.load("oscar", path=codec_path).compress(pixels, 1)
    row = next(r for r in per_image if r["image"] == "b" and r["point"] == "oscar-1")
    assert row["bpp"] == pytest.approx(8 * len(blob) / (37 * 51))
    table = evaluate.format_table(rows)
    lines = table.splitlines()
    assert lines[0].startswith("| image | method | point |") and len(lines) == len(rows) + 2


def test_evaluate_folder_baselines_only_sweeps(folder):
    rows = evaluate.evaluate_folder(folder, methods=["jpeg"])  # no codec asked: no weights loaded, a quality sweep
    assert {r["method"] for r in rows} == {"JPEG"}
    assert all(r["point"].startswith("q=") for r in rows)
    with pytest.raises(ValueError, match="unknown method"):
        evaluate.evaluate_folder(folder, methods=["png"])


def test_format_table_and_means():
    rows = [
        {"image": "x", "method": "OSCAR", "point": "oscar-0", "bpp": 0.05, "PSNR dB": 20.0, "MS-SSIM": 0.9, "note": "a|b"},
        {"image": "y", "method": "OSCAR", "point": "oscar-0", "bpp": 0.07, "PSNR dB": 22.0, "MS-SSIM": "n/a", "extra": True},
    ]
    md = evaluate.format_table(rows).splitlines()
    assert md[0] == "| image | method | point | bpp | PSNR dB | MS-SSIM | note | extra |"
    assert md[2] == "| x | OSCAR | oscar-0 | 0.05 | 20 | 0.9 | a\\|b |  |"
    assert md[3].endswith("| n/a |  | yes |")
    assert evaluate.format_table([]) == "(no rows)"
    full = [{**r, "setting": "t=300", "target bpp": ""} for r in rows]
    (m,) = evaluate.mean_rows(full)
    assert m["image"] == "mean of 2" and m["bpp"] == pytest.approx(0.06) and m["PSNR dB"] == pytest.approx(21.0)
    assert m["MS-SSIM"] == pytest.approx(0.9) and "1 of 2" in m["note"]
