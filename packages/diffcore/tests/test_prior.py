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
from diffcore.zoo import AUTOENCODER_NAMES, load_autoencoder, load_tinysd


@pytest.fixture(scope="module")
def tinysd():
    return load_tinysd()


@pytest.mark.parametrize("name", AUTOENCODER_NAMES)
def test_card_metrics_match_a_fresh_measurement(name):
    """Each shipped autoencoder's card gives the holdout PSNR and MS-SSIM its weights really give."""
    from diffcore.prior.evaluate import evaluate_autoencoder
    from diffcore.train import TrainingCard
    from diffcore.zoo import WEIGHTS

    card = TrainingCard.read(WEIGHTS / name / "autoencoder")
    fresh = evaluate_autoencoder(load_autoencoder(name), load_pool("holdout"))
    assert fresh["holdout_psnr"] == pytest.approx(card.metrics["holdout_psnr"], abs=0.01)
    assert fresh["holdout_ms_ssim"] == pytest.approx(card.metrics["holdout_ms_ssim"], abs=1e-4)


def test_v2_is_the_one_shipped_version_and_the_default():
    """tinysd-v2 (wider autoencoder, 4 latent channels, its own UNet and tinydit) is all that ships, and the default."""
    from diffcore.zoo import DEFAULT_TINYSD, TINYSD_NAMES, WEIGHTS, load_tinydit

    assert AUTOENCODER_NAMES == TINYSD_NAMES == ("tinysd-v2",) and DEFAULT_TINYSD == "tinysd-v2"
    assert sorted(p.name for p in WEIGHTS.iterdir() if p.is_dir()) == ["tinysd-v2"]  # v1's folder is gone
    v2 = load_autoencoder("tinysd-v2")
    assert v2.config.latent_channels == 4
    assert list(v2.config.block_out_channels) == [32, 64, 128] and v2.config.layers_per_block == 2
    x = to_tensor(next(im for im in load_pool("holdout") if im.name == "flower").pixels[:64, :96])[None]
    assert encode(v2, x).shape == (1, 4, 16, 24)
    prior = load_tinysd()
    assert prior.unet.config.in_channels == 4 and list(prior.vae.config.block_out_channels) == [32, 64, 128]
    assert load_tinydit().config.in_channels == 4
    with pytest.raises(UnknownNameError, match=r"no shipped tinysd 'v3'.*shipped: tinysd-v2$"):
        load_autoencoder("v3")


@pytest.mark.parametrize("loader", ["load_tinysd", "load_autoencoder", "load_tinydit"])
def test_retired_v1_is_refused_naming_what_ships(loader):
    from diffcore import zoo

    with pytest.raises(UnknownNameError, match=r"tinysd v1 \('tinysd'\) was retired.*shipped: tinysd-v2$"):
        getattr(zoo, loader)("tinysd")


def test_autoencoder_reconstructs_holdout_photo_any_size(tinysd):
    img = next(im for im in load_pool("holdout") if im.name == "chelsea")  # 451 x 300: not multiples of 4
    x = to_tensor(img.pixels)[None]
    rec = reconstruct(tinysd.vae, x)
    assert rec.shape == x.shape
    assert psnr((x + 1) / 2, (rec + 1) / 2).item() > 30.0  # measured 30.75 dB (tinysd-v2)


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
        ({"seed": 2**64}, InvalidInputError),  # was "Overflow when unpacking long long"
        ({"seed": 1e30}, InvalidInputError),
        ({"seed": 1.0}, InvalidInputError),
        ({"seed": None}, InvalidInputError),
        ({"steps": 101}, InvalidInputError),  # bounded: a tiny request never buys minutes
        ({"size": 100_000}, InvalidInputError),
        ({"n": 65}, InvalidInputError),
        ({"n": 2.0}, InvalidInputError),
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
