"""The vanilla policy on diffcore.sampling against the DDIM loop it replaced, kept here as the reference."""

from __future__ import annotations

import pytest
import torch

from diffdrive.model import DrivePlanner
from diffdrive.sampling import make_scheduler, vanilla_ddim
from diffdrive.scene import SCENE_DIM


def _tiny_vanilla(k: int = 4) -> DrivePlanner:
    torch.manual_seed(0)
    return DrivePlanner(kind="vanilla", num_modes=k, d_model=32, ffn=64).eval()


@torch.no_grad()
def _old_vanilla_ddim(model: DrivePlanner, scenes: torch.Tensor, steps: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """diffdrive's own loop before it moved onto diffcore.sampling.sample (eta = 0 DDIM, last prediction and logits)."""
    sched = make_scheduler()
    sched.set_timesteps(steps)
    ctx = model.encode(scenes)
    c = model.config
    x = torch.randn((scenes.shape[0], c.num_modes, c.horizon, c.pose_dim), generator=torch.Generator().manual_seed(seed))
    pred = logits = None
    for t in sched.timesteps:
        pred, logits = model.decode(ctx, x, t)[-1]
        x = sched.step(pred, int(t), x, eta=0.0).prev_sample
    return pred, logits


@pytest.mark.parametrize("steps", [1, 4, 20])
def test_vanilla_ddim_is_bit_identical_to_the_old_loop(steps: int) -> None:
    m = _tiny_vanilla()
    scenes = torch.randn(3, SCENE_DIM, generator=torch.Generator().manual_seed(1))
    pred, logits = vanilla_ddim(m, scenes, steps=steps, generator=torch.Generator().manual_seed(7))
    want_pred, want_logits = _old_vanilla_ddim(m, scenes, steps, seed=7)
    assert torch.equal(pred, want_pred) and torch.equal(logits, want_logits)
    other, _ = vanilla_ddim(m, scenes, steps=steps, generator=torch.Generator().manual_seed(8))
    assert (other - pred).abs().max() > 1e-3  # the noise matters: the comparison is not vacuous
