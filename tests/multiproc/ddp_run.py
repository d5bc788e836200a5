"""Train a tiny deterministic regression with diffcore.train (run by test_ddp.py).

Usage: ``accelerate launch [--cpu | --multi_gpu] --num_processes N ddp_run.py OUT_DIR``.
Writes OUT_DIR/log.jsonl (one line per step), OUT_DIR/final.safetensors (rank 0)
and OUT_DIR/rank_<i>.json (how each process saw the run).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from accelerate import PartialState
from safetensors.torch import save_file
from torch import nn
from torch.utils.data import Dataset

from diffcore.train import TrainConfig, train


class Regression(nn.Module):
    """A 4-16-2 MLP fitting a fixed smooth map; batch rows are (x, y), (B, 6). No randomness in forward."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.net = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 2))

    def forward(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        x, y = batch[:, :4], batch[:, 4:]  # (B, 4), (B, 2)
        err = self.net(x) - y
        return {"loss": err.pow(2).mean(), "mae": err.abs().mean()}


class Table(Dataset):
    """A fixed synthetic table, identical in every process."""

    def __init__(self, n: int) -> None:
        g = torch.Generator().manual_seed(1234)
        a = torch.randn(4, 2, generator=g)
        x = torch.randn(n, 4, generator=g)
        self.rows = torch.cat([x, torch.sin(x @ a)], dim=1)  # (n, 6)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.rows[i]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=8, help="global batch")
    args = parser.parse_args()

    config = TrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        lr=1e-2,
        lr_schedule="cosine",
        ema_decay=None,
        seed=0,
        checkpoint_every=10,  # also exercises the multi-rank checkpoint write
        log_every=1,
        progress=False,
    )
    result = train(Regression(), Table(args.steps * args.batch_size), config, args.out_dir)

    state = PartialState()
    (args.out_dir / f"rank_{state.process_index}.json").write_text(
        json.dumps(
            {
                "rank": state.process_index,
                "world": state.num_processes,
                "distributed_type": str(state.distributed_type),
                "backend": state.backend,
                "steps": result.steps,
            }
        )
    )
    if state.is_main_process:
        weights = {k: v.detach().contiguous() for k, v in result.objective.state_dict().items()}
        save_file(weights, str(args.out_dir / "final.safetensors"))


if __name__ == "__main__":
    main()
