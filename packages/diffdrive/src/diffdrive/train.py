"""Training recipe of the shipped planners: ``diffcore train drive [--stage S]`` (or ``diffdrive train``).

Stages on diffcore's stage runner (:func:`diffcore.train.run_stages`), each
seeded and resumable (checkpoints and the cached data under ``--out``), each
planner saved with its :class:`~diffcore.train.TrainingCard`:

1. ``data`` — expert episodes of every scenario and split (cached ``.npz``).
2. ``diffusiondrive`` — k-means anchors on the training futures, then the
   truncated diffusion objective: anchors noised at t < 50, the ground truth
   matched to its nearest anchor, focal loss on the mode confidences (×10) plus
   L1 on the matched mode's trajectory (×8), summed over both cascade layers
   (DiffusionDrive §3.3 and its reference loss weights).
3. ``vanilla`` — the same network without anchors: K noisy copies of the ground
   truth at t in [0, 1000), L1 on every copy, focal loss on the copy whose
   prediction is closest (what lets it pick one of its K samples at test time).
4. ``regression`` — the same network with one query, no noise: L1 only.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from diffcore.checkpoint import save_model
from diffcore.train import Run, TrainConfig, run_stages, train
from diffdrive.data import EPISODES, DriveData, load_split
from diffdrive.model import DrivePlanner
from diffdrive.sampling import TRAIN_TIMESTEPS, TRUNC_TRAIN_T, make_scheduler

WEIGHTS = Path(__file__).resolve().parent / "weights"
#: stage -> (model kind, weights folder)
PLANNERS = {"diffusiondrive": "anchored", "vanilla": "vanilla", "regression": "regression"}


@dataclass(frozen=True)
class DriveRecipe:
    """Hyperparameters every planner stage shares (defaults: the shipped run); ``steps`` is per planner."""

    seed: int = 0
    steps: int = 5000
    batch: int = 256
    lr: float = 1e-3
    warmup: int = 200
    num_modes: int = 20
    d_model: int = 128
    cls_weight: float = 10.0
    reg_weight: float = 8.0
    eval_every: int = 2000
    eval_samples: int = 1024
    episodes: dict | None = None  # per scenario and split; None: data.EPISODES

    def smoke(self) -> DriveRecipe:
        """Two training episodes per scenario, tiny planners, a few steps: checks the recipe end to end."""
        small = {"train": 2, "val": 1, "test": 1}
        return dataclasses.replace(
            self,
            steps=4,
            batch=8,
            warmup=1,
            num_modes=4,
            d_model=32,
            eval_every=2,
            eval_samples=16,
            episodes={"highway": small, "merge": small},
        )


def sigmoid_focal(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0, alpha: float = 0.25) -> torch.Tensor:
    """Sigmoid focal loss (Lin et al. 2017) summed over modes, averaged over the batch."""
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p = logits.sigmoid()
    p_t = p * target + (1 - p) * (1 - target)
    a_t = alpha * target + (1 - alpha) * (1 - target)
    return (a_t * ce * (1 - p_t) ** gamma).sum(-1).mean()


def match_anchors(anchors: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Nearest anchor (K, H, P) to each ground truth (B, H, P) by mean waypoint distance: (B,)."""
    return (gt[:, None, :, :2] - anchors[None, :, :, :2]).norm(dim=-1).mean(-1).argmin(1)


class PlannerObjective(nn.Module):
    """The loss of one planner kind (see the module doc); ``forward(batch)`` -> ``{"loss", "reg", "cls"}``."""

    def __init__(self, model: DrivePlanner, cls_weight: float = 10.0, reg_weight: float = 8.0) -> None:
        super().__init__()
        self.model, self.cls_weight, self.reg_weight = model, cls_weight, reg_weight
        self.sched = make_scheduler()

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        m = self.model
        dev = m.anchors.device
        scenes, fut = batch["scenes"].to(dev), batch["futures"].to(dev)
        gt = m.normalise(fut)  # (B, H, P)
        B, (K, H, P) = gt.shape[0], m.anchors.shape
        kind = m.config.kind
        target = None
        if kind == "anchored":
            target = match_anchors(m.anchors, fut)
            t = torch.randint(0, TRUNC_TRAIN_T, (B,), device=dev)
            clean = m.normalise(m.anchors).expand(B, -1, -1, -1)
            x = self.sched.add_noise(clean, torch.randn_like(clean), t)
        elif kind == "vanilla":
            t = torch.randint(0, TRAIN_TIMESTEPS, (B,), device=dev)
            clean = gt[:, None].expand(B, K, H, P)
            x = self.sched.add_noise(clean, torch.randn_like(clean), t)
        else:
            t = torch.zeros(B, dtype=torch.long, device=dev)
            x = torch.zeros(B, K, H, P, device=dev)
        reg = cls = torch.zeros((), device=dev)
        for pred, logits in m(scenes, x, t):
            if kind == "anchored":
                reg = reg + (pred[torch.arange(B, device=dev), target] - gt).abs().mean()
            else:
                reg = reg + (pred - gt[:, None]).abs().mean()
            if kind == "vanilla":
                target = (pred.detach() - gt[:, None]).abs().mean((2, 3)).argmin(1)
            if kind != "regression":
                cls = cls + sigmoid_focal(logits, F.one_hot(target, K).float())
        return {"loss": self.reg_weight * reg + self.cls_weight * cls, "reg": reg, "cls": cls}


class SampleDataset(Dataset):
    """Samples drawn from a fresh seeded permutation every epoch; ``length`` items in all."""

    def __init__(self, data: DriveData, length: int, seed: int) -> None:
        self.scenes = torch.from_numpy(data.scenes)
        self.futures = torch.from_numpy(data.futures)
        self.length, self.seed = length, seed
        self._epoch, self._perm = -1, torch.empty(0, dtype=torch.long)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        n = len(self.scenes)
        if i // n != self._epoch:  # the loop reads items in order: one permutation per epoch
            self._epoch = i // n
            self._perm = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed * 100_003 + self._epoch))
        j = int(self._perm[i % n])
        return {"scenes": self.scenes[j], "futures": self.futures[j]}


@torch.no_grad()
def open_loop(
    model: DrivePlanner, data: DriveData, *, steps: int | None = None, seed: int = 0, batch: int = 512
) -> dict[str, float]:
    """Open-loop metrics on ``data``: min-ADE / min-FDE over K modes, the chosen mode's ADE / FDE,
    mode diversity (mean pairwise waypoint distance between modes, m)."""
    from diffdrive.sampling import DEFAULT_STEPS, SAMPLERS

    kind = model.config.kind
    steps = steps or DEFAULT_STEPS[kind]
    g = torch.Generator().manual_seed(seed)
    sums = {"min_ade": 0.0, "min_fde": 0.0, "ade": 0.0, "fde": 0.0, "diversity": 0.0}
    dev = model.anchors.device
    for i in range(0, len(data), batch):
        scenes = torch.from_numpy(data.scenes[i : i + batch]).to(dev)
        gt = torch.from_numpy(data.futures[i : i + batch]).to(dev)[:, None, :, :2]  # (B, 1, H, 2)
        pred, logits = SAMPLERS[kind](model, scenes, steps=steps, generator=g)
        traj = model.denormalise(pred)[..., :2]  # (B, K, H, 2)
        err = (traj - gt).norm(dim=-1)  # (B, K, H)
        best = logits.argmax(1)
        pick = err[torch.arange(len(err)), best]
        sums["min_ade"] += err.mean(-1).min(1).values.sum().item()
        sums["min_fde"] += err[..., -1].min(1).values.sum().item()
        sums["ade"] += pick.mean(-1).sum().item()
        sums["fde"] += pick[:, -1].sum().item()
        K = traj.shape[1]
        if K > 1:
            pair = (traj[:, :, None] - traj[:, None]).norm(dim=-1).mean(-1)  # (B, K, K)
            sums["diversity"] += (pair.sum((1, 2)) / (K * (K - 1))).sum().item()
    return {k: v / len(data) for k, v in sums.items()}


def _subset(data: DriveData, n: int, seed: int) -> DriveData:
    idx = np.sort(np.random.default_rng(seed).permutation(len(data))[:n])
    return DriveData(data.scenes[idx], data.futures[idx], data.episodes[idx])


def _data_dir(run: Run) -> Path:
    return run.out / "data"


def collect_data(recipe: DriveRecipe, run: Run) -> Path:
    """Stage ``data``: the expert episodes of every split, cached under ``OUT/data``."""
    for split in ("train", "val", "test"):
        load_split(_data_dir(run), split, episodes_table=recipe.episodes)
    return _data_dir(run)


def train_planner(stage: str, recipe: DriveRecipe, run: Run) -> Path:
    """Train one planner stage and save it (with its training card) to ``weights/<stage>``."""
    from diffdrive.anchors import kmeans_anchors

    torch.manual_seed(recipe.seed)
    kind = PLANNERS[stage]
    train_data = load_split(_data_dir(run), "train", episodes_table=recipe.episodes)
    val = _subset(load_split(_data_dir(run), "val", episodes_table=recipe.episodes), recipe.eval_samples, recipe.seed)
    model = DrivePlanner(kind=kind, num_modes=1 if kind == "regression" else recipe.num_modes, d_model=recipe.d_model)
    if kind == "anchored":
        model.anchors.copy_(torch.from_numpy(kmeans_anchors(train_data.futures, recipe.num_modes, seed=recipe.seed)))
    cfg = TrainConfig(
        steps=recipe.steps,
        batch_size=recipe.batch,
        lr=recipe.lr,
        warmup_steps=recipe.warmup,
        weight_decay=1e-4,
        seed=recipe.seed,
        checkpoint_every=500,
        log_every=50,
    )
    ds = SampleDataset(train_data, recipe.steps * recipe.batch, recipe.seed)
    result = train(
        PlannerObjective(model, recipe.cls_weight, recipe.reg_weight),
        ds,
        cfg,
        run.out / stage,
        eval_fn=lambda o, s: open_loop(o.model, val),
        eval_every=recipe.eval_every,
    )
    final = result.objective.model
    metrics = open_loop(final, val)
    episodes = recipe.episodes or EPISODES
    card = run.card(
        stage,
        model=f"diffdrive {stage} planner ({kind})",
        data=f"highway-env expert (IDM/MOBIL) episodes, seeds by split (diffdrive.data.SPLIT_SEEDS): "
        f"{len(train_data)} training samples; metrics on {len(val)} validation samples",
        config=cfg,
        parameters=final,
        metrics={f"val_{k}": round(v, 4) for k, v in metrics.items()},
        episodes=episodes,
        train_samples=len(train_data),
        val_samples_scored=len(val),
        recipe=asdict(recipe),
    )
    return save_model(final, run.weights / stage, card)


#: stage name -> stage function, in the order ``all`` runs them
STAGES = {"data": collect_data} | {stage: partial(train_planner, stage) for stage in PLANNERS}


def main(argv: list[str] | None = None) -> None:
    """``diffcore train drive``: collect the data and train every planner (every stage by default)."""
    run_stages(argv, "drive", DriveRecipe(), STAGES, WEIGHTS)


if __name__ == "__main__":
    main()
