"""How each planner turns a scene into K trajectories, with diffusers' ``DDIMScheduler``.

- :func:`truncated_anchored` — DiffusionDrive's inference (§3.2): the anchors are
  noised only to ``trunc_t = 8`` of 1000 (not to pure noise), then 2 DDIM steps
  at timesteps 10 and 0 of a 1000-step schedule, as in the reference code
  (``set_timesteps(1000)``, ``roll_timesteps = [10, 0]``). Training noised the
  anchors at t < 50 only.
- :func:`vanilla_ddim` — the vanilla diffusion policy: K samples from pure
  Gaussian noise, ``steps`` DDIM steps over the whole schedule, run by
  :func:`diffcore.sampling.sample`.
- :func:`single_pass` — the regression planner: one pass, no noise.

A fresh scheduler is made per call: schedulers hold per-call state, and
concurrent users must not share one.
"""

from __future__ import annotations

import torch
from diffusers import DDIMScheduler

from diffcore.sampling import sample
from diffdrive.model import DrivePlanner

TRAIN_TIMESTEPS = 1000
TRUNC_TRAIN_T = 50  # training noises anchors at t in [0, 50)
TRUNC_T = 8  # inference starts from anchors noised to t = 8
TRUNC_STEP_RATIO = 20  # DiffusionDrive: roll timesteps = arange(steps) * 20 / steps -> [10, 0] for 2 steps


def make_scheduler() -> DDIMScheduler:
    """DiffusionDrive's scheduler: 1000 steps, scaled-linear betas, x0 ("sample") prediction."""
    return DDIMScheduler(
        num_train_timesteps=TRAIN_TIMESTEPS, beta_schedule="scaled_linear", prediction_type="sample", clip_sample=False
    )


def _noise(shape: tuple[int, ...], generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    """Gaussian noise drawn on the generator's device (seeded plans are the same on any device), moved to ``like``'s."""
    dev = generator.device if generator is not None else like.device
    return torch.randn(shape, generator=generator, device=dev).to(like.device, like.dtype)


Output = tuple[torch.Tensor, torch.Tensor]  # trajectories (B, K, H, P) normalised, logits (B, K)


class _LastLayer:
    """The planner's last cascade layer as a :data:`diffcore.sampling.loop.Denoiser` (x0 prediction).

    It keeps the logits of its latest call, the scores of the trajectories that
    call predicted; one instance per sampling call, so concurrent plans share nothing.
    """

    def __init__(self, model: DrivePlanner, ctx: tuple) -> None:
        self.model, self.ctx = model, ctx
        self.logits: torch.Tensor | None = None  # (B, K)

    def __call__(self, x: torch.Tensor, t: torch.Tensor, cond: object = None) -> torch.Tensor:  # x: (B, K, H, P)
        pred, self.logits = self.model.decode(self.ctx, x, t[0])[-1]  # one timestep for the batch, as the planner's loops pass it
        return pred


def _ddim(model: DrivePlanner, ctx: tuple, x: torch.Tensor, sched: DDIMScheduler, timesteps: torch.Tensor) -> Output:
    """Deterministic DDIM (eta = 0) at DiffusionDrive's roll timesteps; the last layer's clean prediction and logits.

    Not :func:`diffcore.sampling.sample`: the reference calls the model at
    t = 10 on anchors noised to t = 8 and steps with ``set_timesteps(1000)``'s
    stride (10 → 9, then 0 → clean), a schedule that is neither a sampler's grid
    nor an SDEdit tail of one; the shipped weights were measured with it.
    """
    pred = logits = None
    for t in timesteps:
        pred, logits = model.decode(ctx, x, t.to(x.device))[-1]
        x = sched.step(pred, int(t), x, eta=0.0).prev_sample
    return pred, logits


@torch.no_grad()
def truncated_anchored(
    model: DrivePlanner, scenes: torch.Tensor, *, steps: int = 2, generator: torch.Generator | None = None
) -> Output:
    """Truncated diffusion from noised anchors (DiffusionDrive); returns the last layer's clean trajectories and logits."""
    sched = make_scheduler()
    sched.set_timesteps(TRAIN_TIMESTEPS)
    B = scenes.shape[0]
    ctx = model.encode(scenes)
    x0 = model.normalise(model.anchors).expand(B, -1, -1, -1)
    noise = _noise(x0.shape, generator, x0)
    x = sched.add_noise(x0, noise, torch.full((B,), TRUNC_T, dtype=torch.long, device=x0.device))
    roll = (torch.arange(steps) * (TRUNC_STEP_RATIO / steps)).round().long().flip(0)
    return _ddim(model, ctx, x, sched, roll)


@torch.no_grad()
def vanilla_ddim(
    model: DrivePlanner, scenes: torch.Tensor, *, steps: int = 20, generator: torch.Generator | None = None
) -> Output:
    """K samples from pure noise, ``steps`` DDIM steps (vanilla diffusion policy); the last call's x0 and logits."""
    B = scenes.shape[0]
    c = model.config
    x = _noise((B, c.num_modes, c.horizon, c.pose_dim), generator, scenes)
    last = _LastLayer(model, model.encode(scenes))
    sched = make_scheduler()
    _, x0s = sample(last, sched, x, steps=steps, return_x0=True, progress=False, base_config=sched.config)
    return x0s[-1], last.logits


@torch.no_grad()
def single_pass(model: DrivePlanner, scenes: torch.Tensor, *, steps: int = 1, generator: torch.Generator | None = None) -> Output:
    """The regression planner: one query from the zero trajectory at t = 0."""
    B = scenes.shape[0]
    c = model.config
    start = torch.zeros((B, c.num_modes, c.horizon, c.pose_dim), device=scenes.device)
    return model.decode(model.encode(scenes), start, torch.zeros((), device=scenes.device))[-1]


SAMPLERS = {"anchored": truncated_anchored, "vanilla": vanilla_ddim, "regression": single_pass}
DEFAULT_STEPS = {"anchored": 2, "vanilla": 20, "regression": 1}
