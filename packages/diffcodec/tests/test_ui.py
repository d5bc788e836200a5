"""The Image codec tab's handlers, without a browser: what Compress and Decode return, and bad input as gr.Error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

gr = pytest.importorskip("gradio")

from diffcodec import Codec, ui  # noqa: E402
from diffcodec.bitstream import Header, pack_unchecked  # noqa: E402
from diffcore.offline_gradio import handler  # noqa: E402


def _no_progress(*args, **kwargs) -> None:
    return None


@pytest.fixture(autouse=True)
def weights(codec_path, monkeypatch):
    if codec_path is not None:
        monkeypatch.setenv("DIFFCODEC_WEIGHTS", str(codec_path))
    else:
        monkeypatch.delenv("DIFFCODEC_WEIGHTS", raising=False)
    return codec_path


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return Image.open(ui._example_paths()[0]).convert("RGB")


def test_demo_builds_with_every_method_available():
    assert isinstance(ui.build_demo(), gr.Blocks)
    choices, problems = ui._rate_table()
    assert not problems
    assert len(choices["oscar"]) >= 4 and len(choices["rdeic"]) >= 3 and choices["hyperprior"]
    assert choices["oscar"][0][0].startswith("0: ") and " bpp — " in choices["oscar"][0][0]


@pytest.mark.parametrize("method", ["oscar", "hyperprior"])
def test_compress_then_decode_the_downloaded_blob(method, photo, weights):
    (before, after), _original, decoded, info, blob_path = ui._compress(photo, method, 0, True, progress=_no_progress)
    blob = Path(blob_path).read_bytes()
    assert blob_path.endswith(".dfc")
    assert np.array_equal(np.asarray(before), np.asarray(photo)) and after is decoded
    codec = Codec.load(method, path=weights)
    assert np.array_equal(np.asarray(decoded), np.asarray(codec.decompress(blob)))
    assert f"**{8 * len(blob) / (600 * 400):.4f} bpp** real: {len(blob):,} bytes for 600×400 px" in info
    assert "**PSNR " in info and "**MS-SSIM " in info and "Encode " in info and "decode " in info
    image, header = ui._decode(blob_path, 0, progress=_no_progress)
    assert np.array_equal(np.asarray(image), np.asarray(decoded))
    assert f"**{method}**, rate 0" in header and "600×400 px" in header and f"{len(blob):,} bytes" in header


def test_small_images_get_psnr_and_say_why_there_is_no_ms_ssim(photo):
    small = photo.crop((0, 0, 150, 100))
    info = ui._compress(small, "oscar", 0, True, progress=_no_progress)[3]
    assert "**PSNR " in info and "MS-SSIM needs both sides ≥ 176 px, this image is 150×100" in info


def test_large_images_are_downscaled_only_when_asked(photo, monkeypatch):
    monkeypatch.setattr(ui, "DEMO_SIDE", 300)  # the real 768 px works the same, only slower
    assert "for 300×200 px (downscaled from 600×400)" in ui._compress(photo, "hyperprior", 0, True, progress=_no_progress)[3]
    assert "for 600×400 px (" in ui._compress(photo, "hyperprior", 0, False, progress=_no_progress)[3]


def test_bad_input_is_a_gradio_error(photo, tmp_path):
    rgba = np.full((40, 40, 4), 255, dtype=np.uint8)
    rgba[..., 3] = 0
    cases = [
        (lambda: ui._compress(None, "oscar", 0, True, progress=_no_progress), "Upload an image first"),
        (lambda: ui._compress(Image.fromarray(rgba), "oscar", 0, True, progress=_no_progress), "transparent pixels"),
        (lambda: ui._compress(photo, "oscar", 99, True, progress=_no_progress), "rate must be an int"),
        (lambda: ui._decode(None, 0, progress=_no_progress), "Upload a .dfc blob first"),
        (lambda: ui._decode(ui._example_paths()[0], 0, progress=_no_progress), "not a diffcodec bitstream"),
    ]
    blob_path = ui._compress(photo, "hyperprior", 0, True, progress=_no_progress)[4]
    blob = bytearray(Path(blob_path).read_bytes())
    blob[40] ^= 1
    (tmp_path / "corrupt.dfc").write_bytes(bytes(blob))
    cases.append((lambda: ui._decode(str(tmp_path / "corrupt.dfc"), 0, progress=_no_progress), "CRC-32 mismatch"))
    cases.append((lambda: ui._decode(blob_path, 2, progress=_no_progress), "the hyperprior baseline has no diffusion"))
    # a container the library would decode (2 MP backed by its length) is more than the app takes
    big = pack_unchecked(Header("rdeic", 0, 2048, 1024), [bytes(600), bytes(600)])
    (tmp_path / "big.dfc").write_bytes(big)
    cases.append((lambda: ui._decode(str(tmp_path / "big.dfc"), 0, progress=_no_progress), "more than this app's"))
    wide = np.zeros((1100, 1000, 3), dtype=np.uint8)
    cases.append((lambda: ui._compress(wide, "hyperprior", 0, False, progress=_no_progress), "tick Downscale"))
    for call, message in cases:
        with pytest.raises(gr.Error, match=message):
            handler(call)()  # as the page wires it (diffcore.offline_gradio.on)


def test_missing_weights_leave_a_working_page_that_says_so(photo, tmp_path, monkeypatch):
    monkeypatch.setenv("DIFFCODEC_WEIGHTS", str(tmp_path))
    choices, problems = ui._rate_table()
    assert choices == {"oscar": [], "rdeic": [], "hyperprior": []}
    assert set(problems) == {"oscar", "rdeic", "hyperprior"} and "diffcore train codec" in problems["oscar"]
    assert isinstance(ui.build_demo(), gr.Blocks)
    with pytest.raises(gr.Error, match="its weights are missing"):
        handler(ui._compress)(photo, "oscar", None, True, progress=_no_progress)
