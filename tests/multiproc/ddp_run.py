"""Train a tiny deterministic regression with diffcore.train (run by test_ddp.py).

Usage: ``accelerate launch [--cpu | --multi_gpu] --num_processes N ddp_run.py OUT_DIR``.
Writes OUT_DIR/log.jsonl (one line per step), OUT_DIR/final.safetensors (rank 0)
and OUT_DIR/rank_<i>.json (how each process saw the run).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from accelerate import PartialState
from safetensors.torch import save_file

from diffcore.train import TrainConfig, train

# the same toy objective and data as the single-process tests
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "packages" / "diffcore" / "tests"))
from test_train import Regression, Table


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
