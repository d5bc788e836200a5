"""The Prior tab's handlers without a browser (its browser flows are in test_browser.py)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

gr = pytest.importorskip("gradio")

from diffcore.offline_gradio import handler  # noqa: E402
from diffcore.prior import ui  # noqa: E402
from diffcore.prior.edit import box_mask, img2img, inpaint  # noqa: E402
from diffcore.zoo import shared_tinysd  # noqa: E402


def _no_progress(*args, **kwargs) -> None:
    return None


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return Image.open(ui._example_paths()[0]).convert("RGB")  # the cat, 451×300


def test_demo_names_its_endpoints() -> None:
    demo = ui.build_demo()
    names = {fn.api_name for fn in demo.fns.values()}
    assert {"prior_generate", "prior_img2img", "prior_inpaint"} <= names


def test_img2img_handler_shows_the_start_and_the_result(photo: Image.Image) -> None:
    noised, result, info = ui._img2img(photo, 0.4, "ddim", 10, 2, progress=_no_progress)
    want = img2img(shared_tinysd(), photo, strength=0.4, steps=10, seed=2)
    assert np.array_equal(result, want.image) and np.array_equal(noised, want.noised)
    assert result.shape == (160, 256, 3)
    assert "**SDEdit at strength 0.40, 256×160 px, ddim: 4 of 10 steps from t = 399" in info and "seed 2." in info


def test_inpaint_handler_tints_the_box_and_keeps_the_rest(photo: Image.Image) -> None:
    shown, result, info = ui._inpaint(photo, 20, 30, 60, 90, "ddim", 6, 0, progress=_no_progress)
    want = inpaint(shared_tinysd(), photo, lambda h, w: box_mask(h, w, (0.2, 0.3, 0.6, 0.9)), steps=6, seed=0)
    assert np.array_equal(result, want.image)
    box = box_mask(160, 256, (0.2, 0.3, 0.6, 0.9))
    assert np.array_equal(shown[~box], want.source[~box]) and shown[box][:, 1].mean() < 0.5 * want.source[box][:, 1].mean()
    assert "**Inpainting, 256×160 px, ddim: 6 of 6 steps from t = 999" in info


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda p: ui._img2img(None, 0.5, "ddim", 10, 0, progress=_no_progress), "Upload a photo first"),
        (lambda p: ui._img2img(p, 0.05, "ddim", 10, 0, progress=_no_progress), "runs no step"),
        (lambda p: ui._inpaint(p, 60, 30, 20, 90, "ddim", 6, 0, progress=_no_progress), "right > left"),
        (lambda p: ui._inpaint(None, 20, 30, 60, 90, "ddim", 6, 0, progress=_no_progress), "Upload a photo first"),
    ],
)
def test_bad_requests_are_gradio_errors(photo: Image.Image, call, match: str) -> None:
    with pytest.raises(gr.Error, match=match):
        handler(call)(photo)  # as the page wires it (diffcore.offline_gradio.on)
