"""The shared training loop, on Hugging Face ``accelerate``.

What is trained is an *objective*: an ``nn.Module`` whose ``forward(batch)``
returns a dict with a scalar ``"loss"`` (and any other scalars worth logging).
Wrapping the model this way keeps every gradient-carrying call inside
``forward``, which is what DistributedDataParallel needs to synchronise
gradients, so one script runs unchanged on one CPU process, several CPU
processes (gloo) or many GPUs: ``accelerate launch --num_processes N …``.

The batch schedule is fixed by the config, not by the number of processes:
step ``s`` consumes dataset items ``[s·B, (s+1)·B)`` of the global batch ``B``,
split evenly across processes. A 2-process run therefore sees exactly the
batches of a 1-process run, and a resumed run the batches it would have seen.

Checkpoints (``out_dir/checkpoint``) are written to a temporary folder and
renamed into place, so a run killed at any moment leaves either the previous
checkpoint or the new one, never a torn one. Weights go to safetensors; optimizer
and RNG state go through ``torch.save`` and are read back with
``weights_only=True`` (no arbitrary unpickling).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm.auto import tqdm

from diffcore.errors import CheckpointError, InvalidInputError


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one run (JSON-serialisable).

    Args:
        steps: optimizer steps in total.
        batch_size: *global* batch size, split across processes.
        lr: peak learning rate (AdamW).
        lr_schedule: a ``diffusers.optimization`` schedule name
            ("constant", "cosine", "linear", "constant_with_warmup" …).
        warmup_steps: linear warm-up steps before the schedule.
        weight_decay: AdamW weight decay.
        grad_clip: max global gradient norm, or ``None`` for no clipping.
        ema_decay: EMA decay (diffusers ``EMAModel`` with its warm-up), or
            ``None`` for no EMA.
        seed: seeds parameters' init order, noise and dropout (per process:
            ``seed + process_index``).
        checkpoint_every: steps between atomic checkpoints (0: only at the end).
        log_every: steps between JSON log lines.
        num_workers: DataLoader workers per process.
        progress: show a tqdm bar on the main process.
    """

    steps: int
    batch_size: int
    lr: float = 1e-3
    lr_schedule: str = "cosine"
    warmup_steps: int = 0
    weight_decay: float = 0.0
    grad_clip: float | None = 1.0
    ema_decay: float | None = 0.999
    seed: int = 0
    checkpoint_every: int = 250
    log_every: int = 25
    num_workers: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        if self.steps <= 0 or self.batch_size <= 0:
            raise InvalidInputError(f"steps and batch_size must be positive, got {self.steps}, {self.batch_size}")
        if not self.lr > 0:
            raise InvalidInputError(f"lr must be positive, got {self.lr}")
        if self.ema_decay is not None and not 0.0 < self.ema_decay < 1.0:
            raise InvalidInputError(f"ema_decay must be in (0, 1) or None, got {self.ema_decay}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise InvalidInputError(f"grad_clip must be positive or None, got {self.grad_clip}")
        if self.log_every <= 0:
            raise InvalidInputError(f"log_every must be positive, got {self.log_every}")
        if self.checkpoint_every < 0 or self.warmup_steps < 0 or self.num_workers < 0:
            raise InvalidInputError(
                "checkpoint_every, warmup_steps and num_workers must be >= 0, got "
                f"{self.checkpoint_every}, {self.warmup_steps}, {self.num_workers}"
            )
        from diffusers.optimization import SchedulerType

        valid = [t.value for t in SchedulerType]
        if self.lr_schedule not in valid:
            raise InvalidInputError(f"lr_schedule {self.lr_schedule!r} is not one of {valid}")


@dataclass
class TrainResult:
    """What :func:`train` returns.

    ``objective`` is unwrapped, on CPU, in eval mode, and holds the EMA weights
    when EMA was on. ``log`` is the list of JSON log records; ``seconds`` the
    wall time of this call (a resumed run's earlier part is in its log).
    """

    objective: nn.Module
    log: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    steps: int = 0
    resumed_from: int = 0


class _GlobalBatchSampler(Sampler[int]):
    """Yields this process's share of global batches ``start … steps-1``."""

    def __init__(self, *, start: int, steps: int, global_batch: int, rank: int, world: int) -> None:
        self.start, self.steps, self.B = start, steps, global_batch
        self.b, self.rank = global_batch // world, rank

    def __iter__(self) -> Iterator[int]:
        for s in range(self.start, self.steps):
            first = s * self.B + self.rank * self.b
            yield from range(first, first + self.b)

    def __len__(self) -> int:
        return (self.steps - self.start) * self.b


def _write_checkpoint(
    out: Path, step: int, objective: nn.Module, optimizer, lr_sched, ema, rank: int, world: int, accelerator
) -> None:
    from safetensors.torch import save_file

    final, tmp = out / "checkpoint", out / "checkpoint.tmp"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        # clone: tied weights (e.g. a language model's input and output embeddings) share storage, which
        # safetensors refuses; loading restores the tie, since both names get the same values
        state = {k: v.detach().cpu().clone().contiguous() for k, v in objective.state_dict().items()}
        save_file(state, str(tmp / "model.safetensors"))
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(lr_sched.state_dict(), tmp / "lr_scheduler.pt")
        if ema is not None:
            torch.save(ema.state_dict(), tmp / "ema.pt")
    accelerator.wait_for_everyone()
    torch.save(torch.get_rng_state(), tmp / f"rng_{rank}.pt")
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (tmp / "state.json").write_text(json.dumps({"step": step, "world_size": world}))
        old = out / "checkpoint.old"
        shutil.rmtree(old, ignore_errors=True)
        if final.exists():
            os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


def _read_checkpoint(ckpt: Path, objective: nn.Module, optimizer, lr_sched, ema, rank: int) -> int:
    from safetensors.torch import load_file

    try:
        state = json.loads((ckpt / "state.json").read_text())
        objective.load_state_dict(load_file(str(ckpt / "model.safetensors")))
        optimizer.load_state_dict(torch.load(ckpt / "optimizer.pt", weights_only=True))
        lr_sched.load_state_dict(torch.load(ckpt / "lr_scheduler.pt", weights_only=True))
        if ema is not None:
            ema.load_state_dict(torch.load(ckpt / "ema.pt", weights_only=True))
        rng = ckpt / f"rng_{rank}.pt"
        if rng.exists():
            torch.set_rng_state(torch.load(rng, weights_only=True))
    except (OSError, KeyError, RuntimeError, ValueError) as e:
        raise CheckpointError(f"cannot resume from {ckpt}: {e}. Delete that folder to start over, or pass resume=False.") from e
    return int(state["step"])


def train(
    objective: nn.Module,
    dataset: Dataset,
    config: TrainConfig,
    out_dir: str | Path,
    *,
    eval_fn: Callable[[nn.Module, int], dict] | None = None,
    eval_every: int = 0,
    resume: bool = True,
) -> TrainResult:
    """Train ``objective`` on ``dataset`` under ``config``; see the module doc.

    Args:
        objective: module whose ``forward(batch)`` returns ``{"loss": scalar, …}``.
        dataset: map-style dataset with at least ``steps * batch_size`` items.
        config: the run's hyperparameters.
        out_dir: where ``log.jsonl`` and ``checkpoint/`` live.
        eval_fn: ``eval_fn(objective_with_ema_weights, step) -> {name: float}``,
            run on the main process every ``eval_every`` steps and at the end.
        resume: continue from ``out_dir/checkpoint`` when it exists.
    """
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from diffusers.optimization import get_scheduler
    from diffusers.training_utils import EMAModel

    accelerator = Accelerator()
    world, rank = accelerator.num_processes, accelerator.process_index
    if config.batch_size % world:
        raise InvalidInputError(f"batch_size {config.batch_size} is not divisible by {world} processes")
    if len(dataset) < config.steps * config.batch_size:
        raise InvalidInputError(
            f"dataset has {len(dataset)} items but {config.steps} steps x batch {config.batch_size} need "
            f"{config.steps * config.batch_size}"
        )
    out = Path(out_dir)
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
    set_seed(config.seed + rank)

    params = [p for p in objective.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    # Stepped by hand once per step: accelerate's wrapper would step it once per process.
    lr_sched = get_scheduler(config.lr_schedule, optimizer, num_warmup_steps=config.warmup_steps, num_training_steps=config.steps)
    ema = EMAModel(params, decay=config.ema_decay) if config.ema_decay is not None else None

    start = 0
    ckpt = out / "checkpoint"
    if resume and accelerator.is_main_process and not ckpt.exists():
        # killed between the two renames of _write_checkpoint: finish the swap
        tmp, old = out / "checkpoint.tmp", out / "checkpoint.old"
        if (tmp / "state.json").exists():  # state.json is written last: tmp is complete
            os.replace(tmp, ckpt)
        elif old.exists():
            os.replace(old, ckpt)
    accelerator.wait_for_everyone()
    if resume and ckpt.exists():
        start = _read_checkpoint(ckpt, objective, optimizer, lr_sched, ema, rank)
    model, optimizer = accelerator.prepare(objective, optimizer)
    if ema is not None:
        ema.to(accelerator.device)

    sampler = _GlobalBatchSampler(start=start, steps=config.steps, global_batch=config.batch_size, rank=rank, world=world)
    loader = DataLoader(dataset, batch_size=config.batch_size // world, sampler=sampler, num_workers=config.num_workers)

    log_path = out / "log.jsonl"
    log: list[dict] = []
    if accelerator.is_main_process and log_path.exists():
        kept = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
        log = [r for r in kept if r.get("step", 0) <= start]
        log_path.write_text("".join(json.dumps(r) + "\n" for r in log))

    def run_eval(step: int) -> None:
        if eval_fn is None or not accelerator.is_main_process:
            return
        probe = copy.deepcopy(accelerator.unwrap_model(model))
        if ema is not None:
            ema.copy_to([p for p in probe.parameters() if p.requires_grad])
        probe.eval()
        with torch.no_grad():
            metrics = eval_fn(probe, step)
        record = {"step": step, "eval": {k: float(v) for k, v in metrics.items()}}
        log.append(record)
        with log_path.open("a") as f:
            f.write(json.dumps(record) + "\n")

    t0 = time.perf_counter()
    bar = tqdm(total=config.steps, initial=start, disable=not (config.progress and accelerator.is_main_process), desc="train")
    model.train()
    step = start
    for batch in loader:
        batch = batch.to(accelerator.device) if torch.is_tensor(batch) else batch
        out_d = model(batch)
        loss = out_d["loss"]
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss is {loss.item()} at step {step}; lower the learning rate or check the data")
        accelerator.backward(loss)
        grad_norm = None
        if config.grad_clip is not None:
            grad_norm = accelerator.clip_grad_norm_(params, config.grad_clip)
        optimizer.step()
        lr_sched.step()
        optimizer.zero_grad(set_to_none=True)
        if ema is not None:
            ema.step(params)
        step += 1
        bar.update(1)
        if step % config.log_every == 0 or step == config.steps:
            scalars = {k: accelerator.reduce(v.detach().float(), "mean").item() for k, v in out_d.items()}
            if accelerator.is_main_process:
                record = {"step": step, **scalars, "lr": lr_sched.get_last_lr()[0], "time_s": round(time.perf_counter() - t0, 3)}
                if grad_norm is not None:
                    record["grad_norm"] = float(grad_norm)
                log.append(record)
                with log_path.open("a") as f:
                    f.write(json.dumps(record) + "\n")
                bar.set_postfix(loss=f"{scalars['loss']:.4g}")
        if config.checkpoint_every and step % config.checkpoint_every == 0 and step < config.steps:
            _write_checkpoint(out, step, accelerator.unwrap_model(model), optimizer, lr_sched, ema, rank, world, accelerator)
        if eval_every and step % eval_every == 0 and step < config.steps:
            run_eval(step)
            model.train()
    bar.close()
    if step > start or not ckpt.exists():
        _write_checkpoint(out, step, accelerator.unwrap_model(model), optimizer, lr_sched, ema, rank, world, accelerator)
    run_eval(step)

    final = accelerator.unwrap_model(model)
    if ema is not None:
        ema.copy_to(params)
    final = final.cpu().eval()
    accelerator.wait_for_everyone()
    accelerator.end_training()
    if accelerator.is_main_process:
        (out / "config.json").write_text(json.dumps(asdict(config), indent=2))
    return TrainResult(final, log, time.perf_counter() - t0, step, start)
