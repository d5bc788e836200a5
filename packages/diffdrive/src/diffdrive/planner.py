"""The planner API: ``Planner.load()``, ``plan(scene)``, ``as_policy(env)``.

from diffdrive import Planner, make_env

planner = Planner.load()                      # DiffusionDrive, 2 steps
env = make_env("highway")
obs, _ = env.reset(seed=0)
plan = planner.plan(obs)                      # 20 trajectories, confidences, the chosen one
policy = planner.as_policy(env)               # plans -> ContinuousAction controls
obs, *_ = env.step(policy(obs))
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from diffcore.errors import CheckpointError, InvalidInputError, UnknownNameError
from diffcore.validate import SEED_LIMIT, check_count, check_seed
from diffdrive.controller import TrackingController
from diffdrive.errors import AnchorMismatchError
from diffdrive.limits import MAX_STEPS
from diffdrive.model import DrivePlanner
from diffdrive.sampling import DEFAULT_STEPS, SAMPLERS
from diffdrive.scene import SCENE_DIM, Scene, check_scenes, observe

WEIGHTS = Path(__file__).resolve().parent / "weights"
#: shipped planners: name -> weights folder
PLANNERS = ("diffusiondrive", "vanilla", "regression")


@dataclass(frozen=True)
class Plan:
    """One scene's plan, in the ego frame (x forward, y right; metres, radians), one pose every 0.5 s.

    Attributes:
        trajectories: (K, 8, 3) candidate trajectories (x, y, heading).
        confidences: (K,) per-mode confidence (sigmoid of the classification head).
        chosen: index of the executed trajectory (the most confident).
        seconds: wall time of the planning call this plan came from (the whole batch).
    """

    trajectories: np.ndarray
    confidences: np.ndarray
    chosen: int
    seconds: float = 0.0

    @property
    def trajectory(self) -> np.ndarray:
        """The chosen trajectory, (8, 3)."""
        return self.trajectories[self.chosen]


def check_checkpoint(path: Path) -> None:
    """Refuse a checkpoint whose stored anchors do not match its config (before building the model)."""
    import json

    from safetensors import SafetensorError, safe_open

    from diffcore.checkpoint import check_folder

    check_folder(path)
    try:
        cfg = json.loads((path / "config.json").read_text())
        files = sorted(path.glob("*.safetensors"))
        with safe_open(str(files[0]), framework="pt") as f:
            shape = tuple(f.get_slice("anchors").get_shape()) if "anchors" in f.keys() else None
            anchors = f.get_tensor("anchors") if shape else None
    except (OSError, ValueError, SafetensorError, AttributeError, TypeError) as e:
        raise CheckpointError(f"checkpoint at {path} is unreadable: {e}") from e
    if not isinstance(cfg, dict):
        raise CheckpointError(f"checkpoint at {path} has a config.json that is not a JSON object")
    want = (cfg.get("num_modes", 20), cfg.get("horizon", 8), cfg.get("pose_dim", 3))
    if shape is None:
        raise AnchorMismatchError(f"checkpoint at {path} stores no anchors tensor; config expects {want}")
    if shape != want:
        raise AnchorMismatchError(f"checkpoint at {path} stores anchors of shape {shape} but its config says {want}")
    if cfg.get("kind") == "anchored" and (not torch.isfinite(anchors).all() or not anchors.abs().sum()):
        raise AnchorMismatchError(f"checkpoint at {path} is anchored but its anchors are empty or not finite")


@lru_cache(maxsize=8)
def _load(path: str, device: str) -> DrivePlanner:
    from safetensors import SafetensorError

    from diffcore.checkpoint import load_model

    check_checkpoint(Path(path))
    try:
        model = load_model(DrivePlanner, path)
    except (SafetensorError, TypeError, KeyError) as e:  # a header that parses but lies, a config of wrong types
        raise CheckpointError(f"checkpoint at {path} is corrupt: {e}") from e
    if not all(torch.isfinite(t).all() for t in model.state_dict().values()):
        raise CheckpointError(f"checkpoint at {path} holds NaN or infinite weights")
    return model.to(device).eval().requires_grad_(False)


class Planner:
    """A trained planner: DiffusionDrive (``"diffusiondrive"``), ``"vanilla"`` diffusion, or ``"regression"``."""

    def __init__(self, model: DrivePlanner, name: str, *, steps: int | None = None) -> None:
        self.model, self.name = model, name
        self.kind = model.config.kind
        self.steps = DEFAULT_STEPS[self.kind] if steps is None else check_count(steps, "steps", high=MAX_STEPS)

    @classmethod
    def load(
        cls, name: str | None = None, *, path: str | Path | None = None, device: str = "cpu", steps: int | None = None
    ) -> Planner:
        """Load the planner ``name``.

        Args:
            name: ``"diffusiondrive"`` (the default; 2 steps), ``"vanilla"`` (20 steps) or ``"regression"``.
            path: a weights root laid out like the shipped ``weights/`` folder (one sub-folder per planner), as
                ``diffdrive train --weights PATH`` writes it; None: the shipped weights.
            device: ``"cpu"`` or ``"cuda"``.
            steps: denoising steps in [1, ``MAX_STEPS``] (default: 2 for DiffusionDrive, 20 for vanilla).
        """
        name = "diffusiondrive" if name is None else name
        if name not in PLANNERS:
            raise UnknownNameError(f"unknown planner {name!r}; choose one of {list(PLANNERS)}")
        root = Path(path) if path is not None else WEIGHTS
        return cls(_load(str(root / name), device), name, steps=steps)

    @property
    def label(self) -> str:
        return f"{self.name} ({self.steps} step{'s' * (self.steps != 1)})" if self.kind != "regression" else self.name

    def plan(self, scene: Any, *, seed: int = 0) -> Plan | list[Plan]:
        """Plan for one scene ``(SCENE_DIM,)`` -> :class:`Plan`, or a batch ``(B, SCENE_DIM)`` -> list of plans.

        Deterministic for a given ``seed`` (the diffusion noise is drawn from it), an int in ``[0, 2**32)``.
        """
        scenes, single = check_scenes(scene)
        plans = self.plan_batch(scenes, seed=seed)
        return plans[0] if single else plans

    def plan_batch(self, scenes: Any, *, seed: int = 0) -> list[Plan]:
        """Plan for a batch ``(B, SCENE_DIM)`` -> one :class:`Plan` per scene, the noise drawn from ``seed``."""
        seed = check_seed(seed)
        arr, _ = check_scenes(scenes)
        dev = self.model.anchors.device
        t0 = time.perf_counter()
        g = torch.Generator().manual_seed(seed)
        pred, logits = SAMPLERS[self.kind](self.model, torch.from_numpy(arr).to(dev), steps=self.steps, generator=g)
        traj = self.model.denormalise(pred).cpu().numpy()
        conf = logits.sigmoid().cpu().numpy()
        seconds = time.perf_counter() - t0
        return [Plan(traj[i], conf[i], int(conf[i].argmax()), seconds) for i in range(len(arr))]

    def as_policy(self, env: Any = None, *, controller: TrackingController | None = None, seed: int = 0) -> DrivingPolicy:
        """A callable ``policy(obs) -> action`` for ``env`` (highway-env with ``ContinuousAction``)."""
        return DrivingPolicy(self, env, controller or TrackingController(), check_seed(seed))


@dataclass
class DrivingPolicy:
    """Plans at every env step and tracks the chosen trajectory.

    ``policy(obs)`` takes a diffdrive scene vector (an env from :func:`make_env`)
    or, with any other observation, reads the scene from ``env`` itself.
    ``last_plan`` holds the most recent plan (for drawing).
    """

    planner: Planner
    env: Any
    controller: TrackingController
    seed: int = 0
    calls: int = 0
    last_plan: Plan | None = field(default=None, repr=False)

    def __call__(self, obs: Any = None) -> np.ndarray:
        arr = np.asarray(obs, dtype=np.float32) if obs is not None else None
        if arr is None or arr.shape != (SCENE_DIM,):
            if self.env is None:
                raise InvalidInputError(
                    f"observation of shape {None if arr is None else arr.shape} is not a scene ({SCENE_DIM},) "
                    "and the policy has no env to read the scene from: pass as_policy(env)"
                )
            arr = observe(self.env)
        plan = self.planner.plan(arr, seed=(self.seed + self.calls) % SEED_LIMIT)
        self.calls += 1
        self.last_plan = plan
        return self.controller.action(plan.trajectory, speed=float(Scene.split(arr).ego[0]))
