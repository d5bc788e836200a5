"""The mechanisms each paper depends on, checked on their definitions."""

from __future__ import annotations

import copy

import pytest
import torch

from diffcodec.diffusion import (
    alphas_cumprod,
    channel_rms,
    ddim_from,
    norm_match,
    predict_x0,
    relay_start,
    relay_target,
    timestep_for_error,
)
from diffcodec.lora import add_lora, merged_unet, save_lora
from diffcodec.models import LatentHyperprior, OscarHyperCodec
from diffcore.prior.models import build_unet


def test_timestep_matches_the_noise_to_signal_ratio():
    a = alphas_cumprod()
    for mse in (0.01, 0.1, 0.5):
        t = timestep_for_error(mse)
        assert abs(((1 - a[t]) / a[t]).item() - mse) < 0.02 * mse + 1e-3
    assert timestep_for_error(0.01) < timestep_for_error(0.1) < timestep_for_error(0.5)


def test_norm_match_gives_the_forward_process_channel_norms():
    torch.manual_seed(0)
    z_hat = 0.3 * torch.randn(2, 4, 16, 16) + 0.1
    rms0 = torch.tensor([[1.0, 0.8, 1.2, 0.5], [0.9, 1.1, 0.7, 1.0]])
    t = torch.tensor([100, 400])
    x = norm_match(z_hat, rms0, t)
    a = alphas_cumprod()[t].float().view(-1, 1)
    want = (a * rms0**2 + 1 - a).sqrt()
    torch.testing.assert_close(x.pow(2).mean(dim=(-2, -1)).sqrt(), want, rtol=1e-4, atol=1e-5)
    # the direction of each channel is kept: only a positive scale per channel
    cos = torch.nn.functional.cosine_similarity(x.flatten(2), z_hat.flatten(2), dim=-1)
    assert (cos > 0.9999).all()


def test_channel_rms_is_what_float16_side_information_carries():
    z = torch.randn(1, 4, 8, 8) * 1.234567
    rms = channel_rms(z)
    assert torch.equal(rms, rms.half().float())


def test_relay_target_maps_the_start_back_to_the_clean_latent():
    torch.manual_seed(0)
    x0, c, eps = torch.randn(3, 1, 4, 8, 8)
    n = 300
    x_n = relay_start(c, n, eps)
    a = alphas_cumprod()[n].float()
    eps_prime = relay_target(eps, c, x0, n)
    torch.testing.assert_close(x_n, a.sqrt() * x0 + (1 - a).sqrt() * eps_prime, rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def unet():
    torch.manual_seed(0)
    return build_unet().eval()


def test_ddim_one_step_is_the_x0_prediction_and_steps_change_the_result(unet):
    torch.manual_seed(1)
    x = torch.randn(1, 4, 16, 16)
    with torch.no_grad():
        one = ddim_from(unet, x, 200, 1)
        direct = predict_x0(unet, x, torch.tensor([200]))[0]
        three = ddim_from(unet, x, 200, 3)
    torch.testing.assert_close(one, direct)
    assert not torch.allclose(one, three)
    with pytest.raises(ValueError):
        ddim_from(unet, x, 200, 0)


def test_lora_save_load_merge_reproduces_the_adapted_model(unet, tmp_path):
    torch.manual_seed(2)
    adapted = add_lora(copy.deepcopy(unet), 4)
    with torch.no_grad():
        for n, p in adapted.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.02)  # LoRA B starts at zero: make the adapter do something
    save_lora(adapted, tmp_path / "lora", {"rank": 4})
    merged = merged_unet(unet, tmp_path / "lora")
    x, t = torch.randn(2, 4, 16, 16), torch.tensor([10, 500])
    with torch.no_grad():
        want, got, base = adapted(x, t).sample, merged(x, t).sample, unet(x, t).sample
    torch.testing.assert_close(got, want, rtol=2e-2, atol=2e-3)  # adapter stored in float16
    assert (got - base).abs().max() > 1e-3
    assert all(not p.requires_grad for p in merged.parameters())


def test_oscar_rates_and_grid():
    codec = OscarHyperCodec(strides=(4, 2), codebook_sizes=(256, 1024))
    assert codec.nominal_bpp(0) == 8 / 256 and codec.nominal_bpp(1) == 10 / 64
    assert (codec.index_cdf(0) == 0).all()  # no index distribution before fit_index_prior
    z = torch.randn(1, 4, 13, 10)
    with torch.no_grad():
        idx = codec.encode(z, 0)
        assert idx.shape == (1, 4, 3) and idx.max() < 256
        assert codec.decode(idx, 0, (13, 10)).shape == (1, 4, 13, 10)
    with pytest.raises(ValueError):
        OscarHyperCodec(strides=(4,), codebook_sizes=(300,))


def test_latent_hyperprior_round_trip_is_lossless_on_the_symbols():
    torch.manual_seed(0)
    m = LatentHyperprior(N=16, M=8).eval()
    m.update(force=True)
    z = torch.randn(1, 4, 16, 24)
    with torch.no_grad():
        ys, ws, shape = m.compress(z)
        c = m.decompress(ys, ws, shape)
        want = m(z)["c"]  # eval-mode forward rounds the same way
    assert c.shape == z.shape
    torch.testing.assert_close(c, want, rtol=1e-4, atol=1e-4)
