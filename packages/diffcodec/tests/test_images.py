"""What users pass in: every PIL mode and numpy layout is coded or refused with an :class:`UnsupportedImageError`.

The first half tests :func:`diffcodec.images.to_rgb` alone (no model); the
second half runs odd images and bad ``rate`` values through the real codecs.
"""

from __future__ import annotations

import time
import tracemalloc

import numpy as np
import pytest
from PIL import Image

from diffcodec import Codec, UnsupportedImageError
from diffcodec.bitstream import MAX_PIXELS, MAX_SIDE
from diffcodec.images import to_rgb
from diffcore.errors import InvalidInputError

METHODS = ("oscar", "rdeic", "hyperprior")


@pytest.fixture(scope="module")
def rgb() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (7, 9, 3), dtype=np.uint8)


def _same_gray(a: np.ndarray, gray: np.ndarray) -> None:
    assert a.shape == (*gray.shape, 3) and a.dtype == np.uint8 and a.flags.c_contiguous
    for c in range(3):
        np.testing.assert_array_equal(a[..., c], gray)


# --------------------------------------------------------------------------- to_rgb: accepted


def test_rgb_passes_through(rgb):
    out = to_rgb(rgb)
    np.testing.assert_array_equal(out, rgb)
    np.testing.assert_array_equal(to_rgb(Image.fromarray(rgb)), rgb)
    np.testing.assert_array_equal(to_rgb(rgb[::-1, ::2]), rgb[::-1, ::2])  # strided views are copied contiguous
    assert to_rgb(rgb[::-1, ::2]).flags.c_contiguous


def test_grayscale(rgb):
    gray = rgb[..., 0]
    _same_gray(to_rgb(Image.fromarray(gray, "L")), gray)
    _same_gray(to_rgb(gray), gray)
    _same_gray(to_rgb(gray[..., None]), gray)


def test_bilevel():
    bits = np.zeros((5, 6), dtype=bool)
    bits[1:3, 2:5] = True
    _same_gray(to_rgb(Image.fromarray(bits).convert("1")), np.where(bits, 255, 0).astype(np.uint8))


def test_palette_without_transparency(rgb):
    im = Image.fromarray(rgb).quantize(16)
    assert im.mode == "P" and "transparency" not in im.info
    np.testing.assert_array_equal(to_rgb(im), np.asarray(im.convert("RGB")))


def test_palette_with_transparency():
    im = Image.new("P", (4, 3), 1)
    im.putpalette([0, 0, 0, 200, 10, 20, 5, 6, 7] + [0] * 759)
    im.info["transparency"] = 0  # index 0 is transparent but unused: every pixel is opaque
    np.testing.assert_array_equal(to_rgb(im), np.full((3, 4, 3), (200, 10, 20), np.uint8))
    im.putpixel((2, 1), 0)  # now one pixel is transparent
    with pytest.raises(UnsupportedImageError, match="transparent"):
        to_rgb(im)
    im2 = Image.new("P", (4, 3), 1)
    im2.putpalette([0, 0, 0, 200, 10, 20] + [0] * 762)
    im2.info["transparency"] = bytes([255, 128])  # per-index alpha: index 1 is half transparent
    with pytest.raises(UnsupportedImageError, match="transparent"):
        to_rgb(im2)


def test_grayscale_with_a_transparent_key():
    im = Image.new("L", (3, 3), 40)
    im.info["transparency"] = 41  # a tRNS key that no pixel has
    _same_gray(to_rgb(im), np.full((3, 3), 40, np.uint8))
    im.info["transparency"] = 40
    with pytest.raises(UnsupportedImageError, match="transparent"):
        to_rgb(im)


def test_rgba_and_la(rgb):
    alpha = np.full((*rgb.shape[:2], 1), 255, np.uint8)
    rgba = np.concatenate([rgb, alpha], axis=2)
    np.testing.assert_array_equal(to_rgb(Image.fromarray(rgba, "RGBA")), rgb)
    np.testing.assert_array_equal(to_rgb(rgba), rgb)
    la = np.concatenate([rgb[..., :1], alpha], axis=2)
    _same_gray(to_rgb(Image.fromarray(la, "LA")), rgb[..., 0])
    _same_gray(to_rgb(la), rgb[..., 0])
    for arr, mode in [(rgba, "RGBA"), (la, "LA")]:
        see_through = arr.copy()
        see_through[3, 4, -1] = 254
        with pytest.raises(UnsupportedImageError, match="transparent"):
            to_rgb(Image.fromarray(see_through, mode))
        with pytest.raises(UnsupportedImageError, match="transparent"):
            to_rgb(see_through)


def test_16_bit():
    rng = np.random.default_rng(1)
    a16 = rng.integers(0, 65536, (6, 5), dtype=np.uint16)
    expect = (a16 >> 8).astype(np.uint8)
    im = Image.fromarray(a16)
    assert im.mode.startswith("I;16")
    _same_gray(to_rgb(im), expect)
    _same_gray(to_rgb(im.convert("I")), expect)
    _same_gray(to_rgb(Image.frombytes("I;16B", (5, 6), a16.astype(">u2").tobytes())), expect)
    _same_gray(to_rgb(a16), expect)
    rgb16 = rng.integers(0, 65536, (6, 5, 3), dtype=np.uint16)
    np.testing.assert_array_equal(to_rgb(rgb16), (rgb16 >> 8).astype(np.uint8))
    rgba16 = np.concatenate([rgb16, np.full((6, 5, 1), 65535, np.uint16)], axis=2)
    np.testing.assert_array_equal(to_rgb(rgba16), (rgb16 >> 8).astype(np.uint8))
    rgba16[0, 0, 3] = 0
    with pytest.raises(UnsupportedImageError, match="transparent"):
        to_rgb(rgba16)


def test_cmyk_and_ycbcr(rgb):
    for mode in ("CMYK", "YCbCr"):
        im = Image.fromarray(rgb).convert(mode)
        np.testing.assert_array_equal(to_rgb(im), np.asarray(im.convert("RGB")))


def test_tiny_and_extreme_but_legal_shapes():
    assert to_rgb(np.zeros((1, 1), np.uint8)).shape == (1, 1, 3)
    assert to_rgb(Image.new("RGB", (5, 3))).shape == (3, 5, 3)
    assert to_rgb(np.broadcast_to(np.uint8(7), (1, MAX_SIDE))).shape == (1, MAX_SIDE, 3)


# --------------------------------------------------------------------------- to_rgb: refused


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, np.int32, np.int64, np.int8, bool])
def test_other_dtypes_are_refused(dtype):
    with pytest.raises(UnsupportedImageError, match="uint8"):
        to_rgb(np.zeros((4, 4, 3), dtype=dtype))


def test_float_pil_images_are_refused():
    with pytest.raises(UnsupportedImageError, match="floating"):
        to_rgb(Image.new("F", (4, 4)))


@pytest.mark.parametrize("shape", [(0, 0), (0, 5), (5, 0), (0, 4, 3), (3, 0, 3)], ids=str)
def test_empty_images_are_refused(shape):
    with pytest.raises(UnsupportedImageError, match="empty"):
        to_rgb(np.zeros(shape, np.uint8))


def test_empty_pil_image_is_refused():
    with pytest.raises(UnsupportedImageError, match="empty"):
        to_rgb(Image.new("RGB", (0, 0)))


@pytest.mark.parametrize("shape", [(4,), (4, 4, 5), (4, 4, 3, 1), (1, 4, 4, 3), ()], ids=str)
def test_bad_shapes_are_refused(shape):
    with pytest.raises(UnsupportedImageError):
        to_rgb(np.zeros(shape, np.uint8))


@pytest.mark.parametrize("thing", [None, "image.png", [[0, 1], [2, 3]], b"\x89PNG"], ids=["none", "str", "list", "bytes"])
def test_non_images_are_refused(thing):
    with pytest.raises(UnsupportedImageError, match="PIL image or a numpy array"):
        to_rgb(thing)


@pytest.mark.parametrize(
    "shape, dtype",
    [((MAX_SIDE + 1, 1, 3), np.uint8), ((2049, 2048), np.uint8), ((16384, 16384, 3), np.uint8), ((16384, 16384, 4), np.uint16)],
    ids=["side", "pixels", "16k-rgb", "16k-rgba16"],
)
def test_too_big_arrays_are_refused_before_any_copy(shape, dtype):
    huge = np.broadcast_to(np.zeros((), dtype), shape)  # no memory behind it
    tracemalloc.start()
    t = time.perf_counter()
    try:
        with pytest.raises(UnsupportedImageError, match="pixels in all"):
            to_rgb(huge)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20 and time.perf_counter() - t < 0.5
    assert MAX_PIXELS == 1 << 22


def test_too_big_files_are_refused_before_decoding(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    Image.new("P", (2100, 2100)).save(path)  # compresses to a few kB
    with Image.open(path) as im:

        def no_decoding(*args, **kwargs):
            raise AssertionError("the pixels were decoded")

        monkeypatch.setattr(im, "load", no_decoding)
        with pytest.raises(UnsupportedImageError, match="2100x2100"):
            to_rgb(im)


def test_truncated_files_are_an_unsupported_image(tmp_path):
    path = tmp_path / "cut.png"
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:2000])
    with Image.open(path) as im, pytest.raises(UnsupportedImageError, match="cannot read"):
        to_rgb(im)


def test_every_refusal_is_a_value_error():
    assert issubclass(UnsupportedImageError, ValueError) and issubclass(UnsupportedImageError, InvalidInputError)


# --------------------------------------------------------------------------- through the codecs


@pytest.fixture(scope="module")
def codecs(codec_path) -> dict[str, Codec]:
    return {m: Codec.load(m, path=codec_path) for m in METHODS}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("size", [(1, 1), (3, 5), (15, 15), (1, 40)], ids=str)
def test_tiny_images_keep_their_size(codecs, method, size):
    h, w = size
    img = np.random.default_rng(h * 100 + w).integers(0, 256, (h, w, 3), dtype=np.uint8)
    codec = codecs[method]
    rate = len(codec.rates) - 1
    out = codec.decompress(codec.compress(img, rate))
    assert out.mode == "RGB" and out.size == (w, h)


@pytest.mark.parametrize("method", METHODS)
def test_other_modes_code_like_their_rgb(codecs, method, small_image):
    codec = codecs[method]
    gray = Image.fromarray(small_image).convert("L")
    blob = codec.compress(gray)
    assert blob == codec.compress(gray.convert("RGB"))
    assert codec.decompress(blob).size == gray.size
    pal = Image.fromarray(small_image).quantize(32)
    assert codec.compress(pal) == codec.compress(pal.convert("RGB"))
    assert codec.compress(small_image.astype(np.uint16) * 257) == codec.compress(small_image)  # 16-bit


@pytest.mark.parametrize("method", METHODS)
def test_transparent_and_float_images_are_refused_by_compress(codecs, method, small_image):
    rgba = np.concatenate([small_image, np.zeros((*small_image.shape[:2], 1), np.uint8)], axis=2)
    with pytest.raises(UnsupportedImageError, match="transparent"):
        codecs[method].compress(rgba)
    with pytest.raises(UnsupportedImageError, match="uint8"):
        codecs[method].compress(small_image / 255.0)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("rate", [-1, 99, 1.5, True, False, "0", None, np.float32(0)], ids=repr)
def test_bad_rates_are_refused(codecs, method, rate, small_image):
    with pytest.raises(InvalidInputError, match="rate"):
        codecs[method].compress(small_image, rate)


@pytest.mark.parametrize("method", METHODS)
def test_numpy_integer_rates_are_fine(codecs, method, small_image):
    codec = codecs[method]
    assert codec.compress(small_image, np.int64(0)) == codec.compress(small_image, 0)
    with pytest.raises(InvalidInputError, match="rate"):
        codec.compress(small_image, len(codec.rates))
