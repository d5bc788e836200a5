"""The codec benchmark: a quick run writes the report with every section, its goals and finite numbers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from PIL import Image

from diffcodec import bench

CODEC_LABELS = {"OSCAR", "RDEIC", "hyperprior"}
ABLATIONS = {"OSCAR no diffusion", "RDEIC no diffusion"}
CLASSICAL = {"JPEG", "WebP", "JPEG best scale", "WebP best scale", "AVIF best scale"}
#: what ``diffcore bench`` passes: the report names it, it does not rebuild it
COMMAND = "diffcore bench codec --quick --out /tmp/codec"


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


@pytest.fixture(scope="module")
def quick_report(codec_path, tmp_path_factory) -> Path:
    return bench.run(tmp_path_factory.mktemp("bench"), quick=True, path=codec_path, command=COMMAND)


def test_quick_run_writes_md_json_png(quick_report):
    out = quick_report.parent
    assert quick_report.name == "codec.md"
    assert (out / "codec.json").is_file()
    with Image.open(out / "codec_rd.png") as im:
        assert im.size[0] > 500
    md = quick_report.read_text()
    assert f"Produced by `{COMMAND}`." in md and "Machine: cpu" in md
    for section in (
        "## Operating points",
        "## Does the diffusion step earn its place?",
        "## Low rates: OSCAR and RDEIC against the classical codecs at ≤ 0.1 bpp",
        "## BD-rate against WebP",
        "## Decode speed: OSCAR one step vs 10 / 50 DDIM steps, and RDEIC",
        "## Rate–distortion plot",
        "## Rate–distortion, mean over images",
        "## Rate–distortion, per image",
    ):
        assert section in md, section
    assert "](codec_rd.png)" in md
    goals = md.split("## Goals", 1)[1].split("\n## ", 1)[0]
    assert '| the decode beats its own "no diffusion" ablation by ≥ 0.5 dB PSNR' in goals
    assert "| OSCAR beats the best-scale WebP and JPEG in PSNR and MS-SSIM at every rate ≤ 0.1 bpp" in goals
    assert "| OSCAR one step ≥ 5× faster than 50 DDIM steps and than RDEIC 5 steps | n/a | not checked |" in goals


def test_quick_run_numbers(quick_report):
    data = json.loads(quick_report.with_suffix(".json").read_text())
    assert data["command"] == COMMAND and data["quick"] is True and data["machine"]["cores"] >= 1
    res = data["results"]
    rows = res["Rate–distortion, per image"]
    assert {r["method"] for r in rows} == CODEC_LABELS | ABLATIONS | CLASSICAL | {"tinysd AE"}
    for r in rows:
        assert _finite(r["PSNR dB"]) and 0 < r["MS-SSIM"] <= 1, r  # a 176-px crop: MS-SSIM is defined
        if r["method"] == "tinysd AE":
            assert r["bpp"] == "n/a"
            continue
        assert _finite(r["bpp"]) and r["bpp"] > 0, r
        if r["method"] in CLASSICAL:  # paired: at most the codec point's real bpp, or flagged
            assert r["point"].startswith("≤ ")
            assert r["bpp"] <= r["target bpp"] or "cannot go this low" in r["note"], r
    # every OSCAR / RDEIC point has its JPEG and WebP pair, with the codec's real bpp as target
    for r in rows:
        if r["method"] in ("OSCAR", "RDEIC"):
            pairs = [b for b in rows if b["point"] == f"≤ {r['point']}"]
            assert {b["method"] for b in pairs} == CLASSICAL
            assert all(b["target bpp"] == r["bpp"] for b in pairs)
    assert len(res["Rate–distortion, mean over images"]) == len(rows)  # one image: one mean row per row
    speed = res["Decode speed"]
    assert [s["decoder"] for s in speed] == ["OSCAR one step", "OSCAR 10 DDIM steps", "RDEIC 2 steps", "RDEIC 5 steps"]
    base = speed[0]
    assert base["time ÷ OSCAR one step"] == 1.0 and base["FLOPs ÷ OSCAR one step"] == 1.0
    for s in speed:
        assert all(_finite(s[k]) and s[k] > 0 for k in ("time ÷ OSCAR one step", "FLOPs ÷ OSCAR one step", "seconds (median)"))
        assert _finite(s["PSNR dB"])
    assert speed[1]["FLOPs ÷ OSCAR one step"] > 2  # 10 UNet passes vs 1 (plus the fixed decoder cost)
    assert speed[3]["GFLOPs"] > speed[2]["GFLOPs"]
    assert res["speed"]["goal_met"] is None  # the quick run leaves 50 steps out, and says so
    sweeps = res["WebP quality sweeps"]
    assert set(sweeps) == {rows[0]["image"]} and set(next(iter(sweeps.values()))) == {"1", "2", "3", "4"}
    assert {r["method"] for r in res["BD-rate"]} == CODEC_LABELS | ABLATIONS
    ablation = res["Ablation"]
    assert {r["method"] for r in ablation} == {"OSCAR", "RDEIC"} and all(_finite(r["no diffusion PSNR"]) for r in ablation)
    verdicts = [g["met"] for g in data["goals"]]
    assert len(verdicts) == 4 and verdicts[-1] is None
