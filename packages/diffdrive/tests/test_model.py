import pytest
import torch

from diffcore.errors import InvalidInputError
from diffdrive.model import DrivePlanner
from diffdrive.sampling import TRUNC_T, make_scheduler, single_pass, truncated_anchored, vanilla_ddim
from diffdrive.scene import SCENE_DIM


def _tiny(kind: str = "anchored", k: int = 4) -> DrivePlanner:
    torch.manual_seed(0)
    m = DrivePlanner(kind=kind, num_modes=1 if kind == "regression" else k, d_model=32, ffn=64)
    m.anchors.copy_(torch.randn(m.anchors.shape) * torch.tensor([20.0, 2.0, 0.1]) + torch.tensor([60.0, 0.0, 0.0]))
    return m.eval()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"kind": "diffusion"}, "kind must be"),
        ({"kind": "regression", "num_modes": 3}, "exactly 1"),
        ({"norm_scale": (1.0,)}, "3 values"),
    ],
)
def test_invalid_configs(kwargs, match):
    with pytest.raises(InvalidInputError, match=match):
        DrivePlanner(**kwargs)


def test_normalisation_round_trips():
    m = _tiny()
    x = torch.randn(2, 4, 8, 3)
    assert torch.allclose(m.denormalise(m.normalise(x)), x, atol=1e-5)


def test_cascade_detaches_between_layers():
    """Layer 2 refines layer 1's *detached* output: layer 2's loss sends no gradient into layer 1's regression head."""
    m = _tiny().train()
    outs = m(torch.randn(3, SCENE_DIM), torch.zeros(3, 4, 8, 3), torch.full((3,), 10))
    outs[1][0].sum().backward()
    first = m.layers[0].reg_head[-1].weight.grad
    assert first is None or not first.abs().sum()
    assert m.layers[1].reg_head[-1].weight.grad.abs().sum() > 0


def test_truncated_diffusion_is_deterministic_and_batch_independent():
    m = _tiny()
    s = torch.randn(3, SCENE_DIM)
    a, la = truncated_anchored(m, s, generator=torch.Generator().manual_seed(5))
    b, lb = truncated_anchored(m, s, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and torch.equal(la, lb)
    one, _ = truncated_anchored(m, s[:1], generator=torch.Generator().manual_seed(5))
    assert torch.allclose(one[0], a[0], atol=1e-5)  # the first scene's noise is the first draw either way
    assert a.shape == (3, 4, 8, 3)


def test_truncation_keeps_the_anchors_recognisable():
    """The start of truncated inference is the anchors plus noise at t = 8: much closer to them than pure noise."""
    sched = make_scheduler()
    abar = sched.alphas_cumprod[TRUNC_T]
    assert abar > 0.99  # signal kept
    m = _tiny()
    x0 = m.normalise(m.anchors)
    noisy = sched.add_noise(x0, torch.randn(x0.shape, generator=torch.Generator().manual_seed(0)), torch.tensor([TRUNC_T]))
    assert (noisy - x0).abs().mean() < 0.1 * (torch.randn_like(x0) - x0).abs().mean()


def test_last_ddim_step_returns_the_prediction():
    """DDIM at t = 0 steps to alpha = 1: the final sample is the network's clean prediction."""
    m = _tiny("vanilla")
    s = torch.randn(2, SCENE_DIM)
    calls = []
    decode = m.decode
    m.decode = lambda ctx, x, t: calls.append((x.clone(), t, decode(ctx, x, t))) or calls[-1][2]
    pred, logits = vanilla_ddim(m, s, steps=4, generator=torch.Generator().manual_seed(0))
    sched = make_scheduler()
    sched.set_timesteps(4)
    called_at = [int(t.reshape(-1)[0]) for _, t, _ in calls]  # a timestep per row, all equal
    assert called_at == [int(t) for t in sched.timesteps] and called_at[-1] == 0
    x_last, _, out = calls[-1]
    assert torch.equal(pred, out[-1][0]) and torch.equal(logits, out[-1][1])  # the last layer's prediction, as is
    # and that is what a DDIM step at t = 0 lands on (alpha_prev = 1): the sample is the x0 prediction
    assert torch.allclose(sched.step(out[-1][0], 0, x_last, eta=0.0).prev_sample, pred, atol=1e-6)
    assert not torch.allclose(pred, x_last, atol=1e-3)  # the last pass did change the sample


def test_regression_is_one_mode_one_pass():
    m = _tiny("regression")
    pred, logits = single_pass(m, torch.randn(2, SCENE_DIM))
    assert pred.shape == (2, 1, 8, 3) and logits.shape == (2, 1)
