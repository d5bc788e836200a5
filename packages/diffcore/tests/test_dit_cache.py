"""DiT caches: diffusers' hooks under ``apply``, TeaCache and its fitter, on a tiny random DiT; tinydit's floor."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from diffusers import DiTTransformer2DModel
from diffusers.hooks import (
    FasterCacheConfig,
    FirstBlockCacheConfig,
    MagCacheConfig,
    PyramidAttentionBroadcastConfig,
    TaylorSeerCacheConfig,
)

from diffcore.cache import apply
from diffcore.cache.dit import dit_cache_suite
from diffcore.cache.teacache import (
    TeaCacheConfig,
    calibration_pairs,
    fit_polynomial,
    fit_teacache,
    polynomial_error,
)
from diffcore.errors import InvalidInputError
from diffcore.prior.dit import build_dit
from diffcore.sampling import sample

STEPS = 12
TINY = dict(num_layers=3, num_attention_heads=2, attention_head_dim=16, sample_size=8)


@pytest.fixture(scope="module")
def dit() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_dit(**TINY).eval()


@pytest.fixture(scope="module")
def noise() -> torch.Tensor:
    return torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))  # (B, C, H, W)


@pytest.fixture(scope="module")
def reference(dit, noise) -> torch.Tensor:
    return sample(dit, "ddim", noise, steps=STEPS, progress=False)


DIFFUSERS_CASES = {
    "fbc": lambda: FirstBlockCacheConfig(threshold=0.2),
    "pab": lambda: PyramidAttentionBroadcastConfig(
        spatial_attention_block_skip_range=2, spatial_attention_timestep_skip_range=(-1, 900)
    ),
    "faster": lambda: FasterCacheConfig(spatial_attention_block_skip_range=2, is_guidance_distilled=True, tensor_format="BCHW"),
    "taylorseer": lambda: TaylorSeerCacheConfig(
        cache_interval=3,
        disable_cache_before_step=2,
        taylor_factors_dtype=torch.float32,
        cache_identifiers=[r"transformer_blocks\.\d+\.(attn1|ff)"],
    ),
    "magcache": lambda: MagCacheConfig(threshold=0.5, num_inference_steps=STEPS, mag_ratios=[1.0] * STEPS, retention_ratio=0.1),
}


@pytest.mark.parametrize("name", sorted(DIFFUSERS_CASES))
def test_diffusers_cache_runs_through_apply_and_removes_exactly(dit, noise, reference, name):
    cfg = DIFFUSERS_CASES[name]()
    with apply(dit, cfg) as handle:
        assert handle.serialize is not None  # diffusers' hooks keep one state per hook: runs are serialised
        first = sample(dit, "ddim", noise, steps=STEPS, progress=False)
        again = sample(dit, "ddim", noise, steps=STEPS, progress=False)
    assert torch.isfinite(first).all()
    assert torch.equal(first, again)  # each run starts cold
    assert 0 < (first - reference).abs().max() < 2.0  # it did skip something, and stayed sane
    assert torch.equal(sample(dit, "ddim", noise, steps=STEPS, progress=False), reference)  # removed: bit-exact


def test_diffusers_cache_leaves_callers_config_untouched(dit, noise):
    cfg = PyramidAttentionBroadcastConfig(spatial_attention_block_skip_range=2)
    with apply(dit, cfg):
        sample(dit, "ddim", noise, steps=STEPS, progress=False)
    assert cfg.current_timestep_callback is None


def test_diffusers_cache_on_stock_dit_without_cachemixin(noise):
    torch.manual_seed(0)
    stock = DiTTransformer2DModel(in_channels=4, out_channels=4, num_embeds_ada_norm=1, **TINY).eval()
    labels = torch.zeros(2, dtype=torch.long)
    ref = sample(stock, "ddim", noise, steps=STEPS, cond=labels, progress=False)
    with apply(stock, FirstBlockCacheConfig(threshold=0.3)):
        out = sample(stock, "ddim", noise, steps=STEPS, cond=labels, progress=False)
    assert 0 < (out - ref).abs().max() < 2.0
    assert torch.equal(sample(stock, "ddim", noise, steps=STEPS, cond=labels, progress=False), ref)


def test_magcache_checks_run_length(dit, noise):
    with apply(dit, DIFFUSERS_CASES["magcache"]()), pytest.raises(InvalidInputError, match="num_inference_steps"):
        sample(dit, "ddim", noise, steps=STEPS + 3, progress=False)


@pytest.mark.parametrize(
    "make",
    [
        lambda: FirstBlockCacheConfig(threshold=-0.1),
        lambda: FirstBlockCacheConfig(threshold=float("nan")),
        lambda: TaylorSeerCacheConfig(cache_interval=0),
        lambda: PyramidAttentionBroadcastConfig(spatial_attention_block_skip_range=0),
        lambda: PyramidAttentionBroadcastConfig(
            spatial_attention_block_skip_range=2, spatial_attention_timestep_skip_range=(800, 100)
        ),
        lambda: FasterCacheConfig(is_guidance_distilled=False),
        lambda: MagCacheConfig(max_skip_steps=0, mag_ratios=[1.0] * 28),
    ],
)
def test_bad_diffusers_config_is_refused(dit, make):
    with pytest.raises(InvalidInputError):
        apply(dit, make())
    assert not hasattr(dit, "_diffcore_cache")


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(threshold=-1.0),
        dict(threshold=float("inf")),
        dict(threshold="0.1"),
        dict(coefficients=()),
        dict(coefficients=(1.0, float("nan"))),
        dict(max_skips=0),
        dict(max_skips=True),
    ],
)
def test_bad_teacache_config_is_refused(kwargs):
    with pytest.raises(InvalidInputError):
        TeaCacheConfig(**kwargs)


def test_teacache_needs_adaln_transformer_blocks():
    with pytest.raises(InvalidInputError, match="transformer_blocks"):
        apply(torch.nn.Conv2d(4, 4, 3), TeaCacheConfig())


def test_teacache_threshold_zero_is_exact_and_remove_restores(dit, noise, reference):
    with apply(dit, TeaCacheConfig(threshold=0.0)) as handle:
        out = sample(dit, "ddim", noise, steps=STEPS, progress=False)
    assert torch.equal(out, reference)
    assert not any(handle.last_state.log)  # no call skipped
    with apply(dit, TeaCacheConfig(threshold=0.5)):
        sample(dit, "ddim", noise, steps=STEPS, progress=False)
    assert torch.equal(sample(dit, "ddim", noise, steps=STEPS, progress=False), reference)


def test_teacache_error_grows_with_threshold(dit, noise, reference):
    errors, computed = [], []
    for threshold in (0.0, 0.2, 0.6, 2.0):
        with apply(dit, TeaCacheConfig(threshold=threshold)) as handle:
            out = sample(dit, "ddim", noise, steps=STEPS, progress=False)
        errors.append(float((out - reference).pow(2).mean()))
        computed.append(sum(not r for r in handle.last_state.log))
    assert errors[0] == 0.0
    assert errors == sorted(errors) and errors[-1] > 1e-4
    assert computed == sorted(computed, reverse=True) and computed[-1] < computed[0]
    assert computed[-1] >= 2  # the first and the last call always compute


def test_teacache_max_skips_caps_consecutive_skips(dit, noise):
    with apply(dit, TeaCacheConfig(threshold=100.0, max_skips=2)) as handle:
        sample(dit, "ddim", noise, steps=STEPS, progress=False)
    run, longest = 0, 0
    for reused in handle.last_state.log:
        run = run + 1 if reused else 0
        longest = max(longest, run)
    assert longest == 2


def test_teacache_state_is_per_run_across_threads(dit, noise, reference):
    cfg = TeaCacheConfig(threshold=0.3)
    with apply(dit, cfg) as handle:
        assert handle.serialize is None  # true per-run state: no lock
        alone = sample(dit, "ddim", noise, steps=STEPS, progress=False)
        outs: list[torch.Tensor] = [None, None]
        barrier = threading.Barrier(2)

        def run(i: int) -> None:
            barrier.wait()
            outs[i] = sample(dit, "ddim", noise, steps=STEPS, progress=False)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert torch.equal(outs[0], alone) and torch.equal(outs[1], alone)


def test_fitted_polynomial_predicts_output_change_better_than_identity(dit):
    g = torch.Generator().manual_seed(1)
    calib, held = torch.randn(2, 3, 4, 8, 8, generator=g)  # (runs, B, C, H, W)

    def runs(x):
        return lambda m: sample(m, "ddim", x, steps=20, progress=False)

    coef = fit_teacache(dit, runs(calib), degree=2)
    assert len(coef) == 3 and all(np.isfinite(coef))
    test_pairs = calibration_pairs(dit, runs(held))  # (P, 2): pairs of another run
    assert len(test_pairs) == 19
    assert polynomial_error(coef, test_pairs) < 0.5 * polynomial_error((1.0, 0.0), test_pairs)
    with pytest.raises(InvalidInputError):
        fit_polynomial(test_pairs[:2], degree=4)
    with pytest.raises(InvalidInputError, match="pairs"):
        fit_teacache(dit, lambda m: None)


def test_dit_cache_suite_configs_all_apply(dit, noise, reference):
    suite = dit_cache_suite(dit, steps=STEPS)
    assert {"FirstBlockCache(0.05)", "TaylorSeer(3, o1)", "TeaCache(0.05)", "TeaCache(0.1)"} <= suite.keys()
    for cfg in suite.values():
        with apply(dit, cfg):
            out = sample(dit, "ddim", noise, steps=STEPS, progress=False)
        assert torch.isfinite(out).all() and (out - reference).abs().max() < 2.0


def test_tinydit_default_class_and_cfg(dit, noise):
    x, t = noise, torch.full((2,), 500)
    assert torch.equal(dit(x, t).sample, dit(x, t, class_labels=torch.zeros(2, dtype=torch.long)).sample)
    guided = sample(
        dit,
        "ddim",
        noise,
        steps=4,
        cond=(torch.zeros(2, dtype=torch.long), torch.ones(2, dtype=torch.long)),
        guidance=2.0,
        progress=False,
    )
    assert torch.isfinite(guided).all()
    with pytest.raises(InvalidInputError, match="class_labels"):
        dit(x, t, class_labels=torch.full((2,), 5))


@pytest.mark.slow
def test_shipped_tinydit_beats_no_skill_on_holdout():
    from diffcore.checkpoint import load_card
    from diffcore.data import holdout_latents, holdout_tiles, split_images
    from diffcore.prior.evaluate import evaluate_denoiser, mean_eps_mse
    from diffcore.zoo import DEFAULT_TINYSD, WEIGHTS, load_tinydit, load_tinysd

    dit = load_tinydit()
    vae = load_tinysd().vae
    _, holdout, _ = split_images(None)
    hold = holdout_tiles(holdout_latents(vae, holdout), 16)  # (16, 4, 16, 16)
    with torch.no_grad():
        model_mse, base_mse = mean_eps_mse(evaluate_denoiser(dit, hold))
    assert model_mse < 0.35 * base_mse  # shipped (tinysd-v2): 0.088 vs 0.439
    assert abs(model_mse - load_card(WEIGHTS / DEFAULT_TINYSD / "dit")["metrics"]["holdout_eps_mse_mean"]) < 0.01
    x = sample(dit, "dpmpp_2m", torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(0)), steps=10, progress=False)
    assert torch.isfinite(x).all() and 0.3 < float(x.std()) < 3.0
