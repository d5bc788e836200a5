"""tinysd with the shipped weights: quality floors, determinism, typed errors."""

import numpy as np
import pytest
import torch

from diffcore.data import holdout_latents, load_pool, to_tensor
from diffcore.errors import CheckpointError, InvalidInputError, UnknownNameError
from diffcore.metrics import psnr
from diffcore.prior.autoencode import encode, reconstruct
from diffcore.prior.evaluate import evaluate_denoiser
from diffcore.prior.generate import generate
from diffcore.zoo import load_tinysd


@pytest.fixture(scope="module")
def tinysd():
    return load_tinysd()


def test_card_metrics_match_a_fresh_measurement(tinysd):
    """The card's holdout PSNR is what the shipped weights really give."""
    from diffcore.checkpoint import load_card
    from diffcore.prior.evaluate import evaluate_autoencoder
    from diffcore.zoo import DEFAULT_TINYSD, WEIGHTS

    card = load_card(WEIGHTS / DEFAULT_TINYSD / "autoencoder")
    fresh = evaluate_autoencoder(tinysd.vae, load_pool("holdout")[:1] + load_pool("holdout")[1:])
    assert fresh["holdout_psnr"] == pytest.approx(card["metrics"]["holdout_psnr"], abs=0.01)


def test_autoencoder_reconstructs_holdout_photo_any_size(tinysd):
    img = next(im for im in load_pool("holdout") if im.name == "chelsea")  # 451 x 300: not multiples of 4
    x = to_tensor(img.pixels)[None]
    rec = reconstruct(tinysd.vae, x)
    assert rec.shape == x.shape
    assert psnr((x + 1) / 2, (rec + 1) / 2).item() > 30.0  # measured 31.2 dB


def test_denoiser_beats_no_skill_baseline_at_every_t(tinysd):
    lat = holdout_latents(tinysd.vae, load_pool("holdout"))
    with torch.no_grad():
        d = evaluate_denoiser(tinysd.unet, lat)
    for t in (50, 250, 500, 750, 950):
        assert d[f"eps_mse_t{t}"] < d[f"baseline_eps_mse_t{t}"], t


def test_generation_is_seeded(tinysd):
    a = generate(tinysd, sampler="ddim", steps=3, seed=7, n=2, size=64)
    b = generate(tinysd, sampler="ddim", steps=3, seed=7, n=2, size=64)
    c = generate(tinysd, sampler="ddim", steps=3, seed=8, n=2, size=64)
    assert a.images.shape == (2, 64, 64, 3) and a.images.dtype == np.uint8
    assert np.array_equal(a.images, b.images) and not np.array_equal(a.images, c.images)


@pytest.mark.parametrize(
    "kwargs, err",
    [
        ({"size": 100}, InvalidInputError),
        ({"n": 0}, InvalidInputError),
        ({"steps": 0}, InvalidInputError),
        ({"sampler": "nope"}, UnknownNameError),
    ],
)
def test_bad_generation_requests(tinysd, kwargs, err):
    with pytest.raises(err):
        generate(tinysd, **{"steps": 2, "n": 1, "size": 64, **kwargs})


def test_bad_images_are_typed_errors(tinysd):
    with pytest.raises(InvalidInputError, match="B, 3, H, W"):
        encode(tinysd.vae, torch.zeros(1, 1, 32, 32))
    with pytest.raises(InvalidInputError, match="at least"):
        encode(tinysd.vae, torch.zeros(1, 3, 2, 2))
    with pytest.raises(InvalidInputError, match="uint8"):
        to_tensor(np.zeros((8, 8), dtype=np.float32))


def test_missing_weights_are_a_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="diffcore train"):
        load_tinysd(path=tmp_path / "nowhere")
