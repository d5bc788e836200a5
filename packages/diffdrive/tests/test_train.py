import math
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from diffcore.train import TrainingCard
from diffdrive.anchors import kmeans_anchors, nearest_anchor
from diffdrive.model import DrivePlanner
from diffdrive.scene import SCENE_DIM
from diffdrive.train import PlannerObjective, match_anchors, sigmoid_focal


def test_focal_loss_matches_its_definition():
    logits = torch.tensor([[2.0, -1.0, 0.5]])
    target = torch.tensor([[1.0, 0.0, 0.0]])
    p = torch.sigmoid(logits)[0]
    want = 0.25 * -math.log(p[0]) * (1 - p[0]) ** 2
    want += 0.75 * -math.log(1 - p[1]) * p[1] ** 2 + 0.75 * -math.log(1 - p[2]) * p[2] ** 2
    assert sigmoid_focal(logits, target).item() == pytest.approx(float(want), rel=1e-5)


def test_anchor_matching_and_kmeans():
    import numpy as np

    rng = np.random.default_rng(0)
    t = 0.5 * np.arange(1, 9)
    keep = np.stack([20 * t, 0 * t, 0 * t], 1)
    left = np.stack([20 * t, -4 * np.minimum(t / 3, 1), 0 * t], 1)
    fut = np.concatenate([keep + rng.normal(0, 0.1, (50, 8, 3)), left + rng.normal(0, 0.1, (50, 8, 3))]).astype("float32")
    anchors = kmeans_anchors(fut, 2, seed=0)
    assert anchors.shape == (2, 8, 3)
    idx = nearest_anchor(anchors, fut)
    assert len(set(idx[:50])) == 1 and len(set(idx[50:])) == 1 and idx[0] != idx[50]
    assert torch.equal(match_anchors(torch.from_numpy(anchors), torch.from_numpy(fut)), torch.from_numpy(idx))


@pytest.mark.parametrize("kind", ["anchored", "vanilla", "regression"])
def test_objective_trains(kind):
    torch.manual_seed(0)
    m = DrivePlanner(kind=kind, num_modes=1 if kind == "regression" else 4, d_model=32, ffn=64)
    m.anchors.copy_(torch.randn(m.anchors.shape) + torch.tensor([40.0, 0.0, 0.0]))
    obj = PlannerObjective(m)
    batch = {"scenes": torch.randn(16, SCENE_DIM), "futures": torch.randn(16, 8, 3) + torch.tensor([40.0, 0.0, 0.0])}
    opt = torch.optim.Adam(m.parameters(), 3e-3)
    losses = []
    for _ in range(60):
        out = obj(batch)
        assert torch.isfinite(out["loss"])
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(out["reg"].item())
    assert sum(losses[-10:]) / 10 < 0.8 * sum(losses[:5]) / 5  # t is drawn per step: compare averages
    if kind == "regression":
        assert out["cls"].item() == 0.0
    else:
        assert F.one_hot(torch.tensor([0]), 4).shape == (1, 4) and out["cls"].item() > 0


@pytest.mark.slow
def test_smoke_recipe_end_to_end(tmp_path):
    """``diffdrive train --smoke``: tiny data, every stage, loadable weights with training cards."""
    out = tmp_path / "run"
    r = subprocess.run(
        [sys.executable, "-m", "diffdrive.cli", "train", "--smoke", "--out", str(out), "--weights", str(out / "w")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    from diffdrive import Planner

    for name in ("diffusiondrive", "vanilla", "regression"):
        card = TrainingCard.read(out / "w" / name)
        assert (card.steps, card.batch, card.seed) == (4, 8, 0) and "val_min_ade" in card.metrics
        assert card.command == f"diffcore train drive --stage {name} --seed 0 --smoke"
        assert card.details["episodes"]["merge"]["train"] == 2
        Planner.load(name, path=out / "w")
