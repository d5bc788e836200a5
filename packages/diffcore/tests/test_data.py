"""diffcore.data: the offline pool and its split, random crops, user folders.

The network guard (repo-root conftest) is active here, so ``load_pool``
passing also proves that no photo is downloaded.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from diffcore.data import HOLDOUT, SOURCES, LatentCrops, RandomCrops, load_folder, load_pool, to_tensor, to_y
from diffcore.errors import DataError, InvalidInputError


@pytest.fixture(scope="module")
def pool() -> dict[str, list]:
    return {split: load_pool(split) for split in ("train", "holdout", "all")}


# --------------------------------------------------------------------------- pool


def test_pool_split_is_by_source(pool):
    train_sources = {im.source for im in pool["train"]}
    holdout_sources = {im.source for im in pool["holdout"]}
    assert holdout_sources == set(HOLDOUT) == {"coffee", "chelsea", "flower", "grace_hopper"}
    assert train_sources.isdisjoint(holdout_sources)
    assert train_sources | holdout_sources == set(SOURCES)
    names = [im.name for im in pool["all"]]
    assert len(set(names)) == len(names)
    assert set(names) == {im.name for im in pool["train"] + pool["holdout"]}
    assert len(pool["all"]) == len(pool["train"]) + len(pool["holdout"]) == len(SOURCES) + 1  # motorcycle: 2 views


def test_motorcycle_views_are_one_source_in_train(pool):
    moto = [im for im in pool["train"] if im.source == "motorcycle"]
    assert [im.name for im in moto] == ["motorcycle_0", "motorcycle_1"]
    assert moto[0].pixels.shape == moto[1].pixels.shape == (500, 741, 3)
    assert not np.array_equal(moto[0].pixels, moto[1].pixels)  # two different views
    assert all(im.source != "motorcycle" for im in pool["holdout"])


def test_every_pool_image_is_rgb_uint8(pool):
    for im in pool["all"]:
        assert im.pixels.ndim == 3 and im.pixels.shape[2] == 3, im.name
        assert im.pixels.dtype == np.uint8 and im.pixels.flags.c_contiguous, im.name
        assert min(im.pixels.shape[:2]) >= 172, im.name  # smallest is skimage's "text", 172x448


def test_pool_pixels_are_the_bundled_photos(pool):
    import skimage.data

    by_name = {im.name: im for im in pool["all"]}
    np.testing.assert_array_equal(by_name["astronaut"].pixels, skimage.data.astronaut())
    cam = skimage.data.camera()
    for c in range(3):  # grayscale replicated to RGB
        np.testing.assert_array_equal(by_name["camera"].pixels[:, :, c], cam)
    assert by_name["grace_hopper"].pixels.shape == (600, 512, 3)


def test_pool_rejects_unknown_split():
    with pytest.raises(InvalidInputError, match="split must be"):
        load_pool("test")


# --------------------------------------------------------------------------- conversions


def test_to_tensor_maps_uint8_to_unit_range():
    img = np.array([[[0, 255, 51]]], dtype=np.uint8)  # (1, 1, 3)
    x = to_tensor(img)
    assert x.shape == (3, 1, 1) and x.dtype == torch.float32
    assert x.flatten().tolist() == pytest.approx([-1.0, 1.0, 51 / 127.5 - 1], abs=1e-7)
    for bad in (img[:, :, :2], img.astype(np.float32), img[:, :, 0], [[0, 0, 0]]):
        with pytest.raises(InvalidInputError, match="uint8 RGB"):
            to_tensor(bad)


def test_to_y_on_known_colours():
    # BT.601 weights sum to 1, so grey stays grey; pure red is 0.299·1 + 0.701·(−1).
    red = torch.tensor([1.0, -1.0, -1.0])[:, None, None].expand(3, 2, 2)
    grey = torch.full((3, 2, 2), 0.3)
    assert to_y(red).shape == (1, 2, 2)
    assert to_y(red).flatten().tolist() == pytest.approx([0.299 - 0.587 - 0.114] * 4, abs=1e-6)
    assert to_y(grey).flatten().tolist() == pytest.approx([0.3] * 4, abs=1e-6)
    batch = torch.stack([red, grey])  # (2, 3, 2, 2)
    y = to_y(batch)
    assert y.shape == (2, 1, 2, 2)
    assert y[:, 0, 0, 0].tolist() == pytest.approx([-0.402, 0.3], abs=1e-6)
    with pytest.raises(InvalidInputError, match="RGB"):
        to_y(torch.zeros(4, 2, 2))


# --------------------------------------------------------------------------- random crops


def _coord_image(h: int, w: int, tag: int = 0) -> np.ndarray:
    """(h, w, 3) uint8 whose pixel (r, c) is (r, c, tag): a crop tells where it came from."""
    r, c = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    return np.stack([r, c, np.full_like(r, tag)], axis=2).astype(np.uint8)


def _decode(x: torch.Tensor) -> np.ndarray:
    return np.rint((x.numpy() + 1) * 127.5).astype(int)  # back to 0..255, (3, S, S)


def test_random_crops_are_deterministic_per_index():
    images = [_coord_image(100, 120, 0), _coord_image(60, 200, 1)]
    a = RandomCrops(images, size=16, length=50, seed=3)
    b = RandomCrops(images, size=16, length=50, seed=3)
    forward = [a[i] for i in range(50)]
    backward = [b[i] for i in reversed(range(50))][::-1]  # access order does not matter
    assert all(torch.equal(x, y) for x, y in zip(forward, backward))
    c = RandomCrops(images, size=16, length=50, seed=4)
    assert sum(torch.equal(forward[i], c[i]) for i in range(50)) == 0
    assert sum(torch.equal(forward[i], forward[i + 1]) for i in range(49)) == 0


def test_random_crops_are_windows_of_the_images():
    images = [_coord_image(100, 120, 7)]
    ds = RandomCrops(images, size=16, length=64, seed=0, hflip=True, vflip=True)
    flips = set()
    for i in range(len(ds)):
        x = ds[i]
        assert x.shape == (3, 16, 16) and x.dtype == torch.float32
        assert -1.0 <= x.min().item() and x.max().item() <= 1.0
        rows, cols, tag = _decode(x)
        assert (tag == 7).all()
        dr, dc = np.diff(rows[:, 0]), np.diff(cols[0])
        assert abs(dr).tolist() == [1] * 15 and abs(dc).tolist() == [1] * 15  # a contiguous window
        assert (rows == rows[:, :1]).all() and (cols == cols[:1]).all()
        assert 0 <= rows.min() and rows.max() < 100 and 0 <= cols.min() and cols.max() < 120
        flips.add((dr[0] < 0, dc[0] < 0))
    assert flips == {(False, False), (False, True), (True, False), (True, True)}
    no_flip = RandomCrops(images, size=16, length=64, seed=0, hflip=False, vflip=False)
    assert all(np.diff(_decode(no_flip[i])[1][0])[0] == 1 for i in range(64))


def test_random_crops_pick_images_by_sqrt_area():
    images = [_coord_image(50, 50, 0), _coord_image(100, 200, 1)]  # sqrt areas 50 and ~141.4
    ds = RandomCrops(images, size=8, length=4000, seed=0)
    p_big = np.sqrt(20000) / (50 + np.sqrt(20000))
    assert ds.p.tolist() == pytest.approx([1 - p_big, p_big], abs=1e-12)
    picks = np.array([ds._pick(i)[0, 0, 2] for i in range(len(ds))])
    sd = np.sqrt(p_big * (1 - p_big) / len(ds))
    assert abs(picks.mean() - p_big) < 4 * sd


def test_gray_crops_are_luma_of_the_rgb_crops():
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)]
    rgb = RandomCrops(images, size=12, length=8, seed=1)
    gray = RandomCrops(images, size=12, length=8, seed=1, gray=True)
    for i in range(8):
        assert gray[i].shape == (1, 12, 12)
        torch.testing.assert_close(gray[i], to_y(rgb[i]), rtol=0, atol=0)


def test_random_crops_size_checks():
    small, big = _coord_image(20, 30), _coord_image(64, 64)
    with pytest.raises(DataError, match="at least 32x32"):
        RandomCrops([small], size=32, length=4)
    ds = RandomCrops([small, big], size=32, length=4)  # images too small are skipped
    assert len(ds.images) == 1 and ds.images[0].shape == (64, 64, 3)
    assert len(ds) == 4
    with pytest.raises(IndexError):
        ds[4]
    with pytest.raises(InvalidInputError):
        RandomCrops([big], size=0, length=4)
    with pytest.raises(InvalidInputError):
        RandomCrops([big], size=8, length=0)


def test_latent_crops_shape_and_values():
    h, w, ch = 24, 30, 4
    # channel k at (r, c) holds 10000·k + 100·r + c: every crop element is traceable.
    r, c = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    z = torch.stack([10000 * k + 100 * r + c for k in range(ch)]).float()  # (C, h, w)
    ds = LatentCrops([z], size=8, length=20, seed=0)
    for i in range(20):
        x = ds[i]
        assert x.shape == (ch, 8, 8) and x.dtype == torch.float32 and x.is_contiguous()
        for k in range(ch):
            assert ((x[k] // 10000) == k).all()
        rows, cols = x[0] // 100, x[0] % 100
        assert torch.equal(rows, rows[:, :1].expand(8, 8))
        assert torch.diff(rows[:, 0]).tolist() == [1.0] * 7  # no vertical flips for latents
        assert torch.diff(cols[0]).abs().tolist() == [1.0] * 7
    assert torch.equal(ds[5], LatentCrops([z], size=8, length=20, seed=0)[5])


# --------------------------------------------------------------------------- user folders


@pytest.fixture()
def image_folder(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a_rgb.png")
    smooth = np.tile(np.linspace(0, 255, 32, dtype=np.uint8)[None, :, None], (24, 1, 3))
    Image.fromarray(smooth).save(tmp_path / "b_photo.jpg", quality=95)
    gray = rng.integers(0, 256, (16, 16), dtype=np.uint8)
    Image.fromarray(gray, mode="L").save(tmp_path / "c_gray.png")
    rgba = rng.integers(0, 256, (10, 12, 4), dtype=np.uint8)
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "d_alpha.png")
    (tmp_path / "e_notes.txt").write_text("not an image\n")
    png = (tmp_path / "a_rgb.png").read_bytes()
    (tmp_path / "f_truncated.png").write_bytes(png[: len(png) // 2])
    idat = png.find(b"IDAT") + 8
    (tmp_path / "g_broken.png").write_bytes(png[:idat] + bytes(64) + png[idat + 64 :])
    (tmp_path / "h_random.png").write_bytes(rng.integers(0, 256, 300, dtype=np.uint8).tobytes())
    (tmp_path / "sub").mkdir()
    Image.fromarray(rgb).save(tmp_path / "sub" / "nested.png")  # not recursive: ignored
    return tmp_path, {"rgb": rgb, "smooth": smooth, "gray": gray, "rgba": rgba}


def test_load_folder_reads_images_and_skips_the_rest(image_folder):
    root, src = image_folder
    images = load_folder(root)
    assert [im.name for im in images] == ["a_rgb", "b_photo", "c_gray", "d_alpha"]
    assert all(im.source == im.name for im in images)  # each file is its own source
    for im in images:
        assert im.pixels.ndim == 3 and im.pixels.shape[2] == 3 and im.pixels.dtype == np.uint8
    by = {im.name: im.pixels for im in images}
    np.testing.assert_array_equal(by["a_rgb"], src["rgb"])
    np.testing.assert_array_equal(by["c_gray"], np.repeat(src["gray"][:, :, None], 3, axis=2))
    np.testing.assert_array_equal(by["d_alpha"], src["rgba"][:, :, :3])  # alpha dropped, not composited
    assert by["b_photo"].shape == (24, 32, 3)
    assert np.abs(by["b_photo"].astype(int) - src["smooth"]).mean() < 2.0  # JPEG is lossy


def test_load_folder_min_side(image_folder):
    root, _ = image_folder
    assert [im.name for im in load_folder(root, min_side=16)] == ["a_rgb", "b_photo", "c_gray"]
    with pytest.raises(DataError, match="at least 100x100"):
        load_folder(root, min_side=100)


def test_load_folder_errors(tmp_path):
    with pytest.raises(DataError, match="not a folder"):
        load_folder(tmp_path / "missing")
    (tmp_path / "file.png").write_bytes(b"")
    with pytest.raises(DataError, match="not a folder"):
        load_folder(tmp_path / "file.png")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no readable image"):
        load_folder(empty)
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "x.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (junk / "y.txt").write_text("hello")
    with pytest.raises(DataError, match="no readable image"):
        load_folder(junk)
