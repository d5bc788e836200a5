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
        for label in ("JPEG", "WebP"):
            assert sum(r["method"] == label for r in mine) == n_rates["oscar"] + n_rates["rdeic"]
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


def _r(image, method, point, bpp, ms, target=""):
    return {"image": image, "method": method, "point": point, "bpp": bpp, "PSNR dB": 20.0, "MS-SSIM": ms, "target bpp": target}


def test_goal_check_counts_wins_losses_and_uncontested():
    """A win, a loss and a point WebP / JPEG cannot reach are told apart; any loss means the goal is not met."""
    rows = [
        _r("a", "OSCAR", "oscar-0", 0.05, 0.80),
        _r("a", "WebP", "≤ oscar-0", 0.20, 0.90, 0.05),  # cannot go this low
        _r("a", "JPEG", "≤ oscar-0", 0.04, 0.70, 0.05),  # win
        _r("b", "OSCAR", "oscar-0", 0.06, 0.80),
        _r("b", "WebP", "≤ oscar-0", 0.06, 0.85, 0.06),  # loss
        _r("b", "JPEG", "≤ oscar-0", 0.05, 0.60, 0.06),  # win
        _r("b", "OSCAR", "oscar-3", 0.30, 0.95),  # above the goal's bpp: not checked
        _r("b", "WebP", "≤ oscar-3", 0.30, 0.99, 0.30),
    ]
    table, text, data = evaluate.goal_check(rows, [])
    assert [(r["image"], r["point"]) for r in table] == [("a", "oscar-0"), ("b", "oscar-0")]
    assert table[0]["beats WebP"].startswith("uncontested") and table[0]["beats JPEG"] == "yes"
    assert table[1]["beats WebP"] == "no (WebP wins)"
    webp = data["OSCAR"]["vs WebP"]
    assert (webp["per image win"], webp["per image loss"], webp["per image uncontested"]) == (0, 1, 1)
    assert webp["bigger file scores higher"] == 1
    assert data["OSCAR"]["goal_met"] is False and "**not met**" in text and "**WebP wins** at: b oscar-0" in text
    _, text, data = evaluate.goal_check([r for r in rows if r["image"] == "a"], [])
    assert data["OSCAR"]["goal_met"] is True and data["OSCAR"]["met_by_default_against"] == ["WebP"]
    assert "**met (WebP only by default" in text
    only_a_jpeg_win = [r for r in rows if r["image"] == "a" and r["method"] != "WebP"]
    _, text, data = evaluate.goal_check(only_a_jpeg_win, [])
    assert data["OSCAR"]["goal_met"] is True and "**met**" in text
    unreachable = [r for r in rows if r["image"] == "a"][:2]  # OSCAR and a WebP that cannot go this low
    _, text, data = evaluate.goal_check(unreachable, [])
    assert "**met only by default" in text and data["OSCAR"]["vs WebP"]["bigger file scores higher"] == 1
