"""Expert demonstrations: scenes and the expert's next 4 s, collected offline from highway-env.

Every episode is fully determined by its seed (traffic from ``env.reset(seed)``,
the expert's desired speed from ``numpy.random.default_rng(seed)``). Splits use
disjoint seed ranges, so the validation and test scenes, and the closed-loop
evaluation episodes, are never trained on.

A sample is the scene at step ``t`` and the expert's poses at ``t+1 … t+8``
(every 0.5 s) in the ego frame at ``t``: (x, y, heading) in metres and radians.
Windows that contain a collision are dropped.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from diffcore.errors import DataError, InvalidInputError
from diffdrive.scenarios import get_scenario

HORIZON = 8  # planned poses, one per 0.5 s
POSE_DIM = 3  # x, y, heading
SPLIT_SEEDS = {"train": 0, "val": 100_000, "test": 200_000, "eval": 300_000}
#: episodes per scenario and split of the shipped recipe
EPISODES = {
    "highway": {"train": 160, "val": 12, "test": 24},
    "merge": {"train": 240, "val": 18, "test": 36},
}


def split_seeds(split: str, n: int, start: int = 0) -> list[int]:
    if split not in SPLIT_SEEDS:
        raise InvalidInputError(f"unknown split {split!r}; choose one of {list(SPLIT_SEEDS)}")
    return [SPLIT_SEEDS[split] + start + i for i in range(n)]


@dataclass(frozen=True)
class Perturbation:
    """Perturbed branches of the expert's episodes, for training data only (after DART, Laskey et al. 2017,
    and ChauffeurNet's trajectory perturbations, Bansal et al. 2019).

    Expert demonstrations sit on lane centres at the expert's speed, so a
    planner trained on them alone never sees how to come back from a small
    drift, and in closed loop small drifts accumulate. At a ``rate`` of the
    steps, a copy of the simulator is made, its ego is displaced sideways,
    turned and sped up or slowed (uniform within the bounds), and the expert
    drives the copy for the planning horizon: that scene and the expert's
    recovery are an extra sample. The episode itself goes on unperturbed, so
    every label is a continuous expert trajectory.
    """

    rate: float = 0.4
    lateral_m: float = 1.5
    heading_rad: float = 0.08
    speed_mps: float = 3.0

    def displace(self, vehicle, rng: np.random.Generator) -> None:
        lane = vehicle.road.network.get_lane(vehicle.lane_index)
        h = lane.heading_at(lane.local_coordinates(vehicle.position)[0])
        normal = np.array([-np.sin(h), np.cos(h)])
        vehicle.position = vehicle.position + normal * rng.uniform(-self.lateral_m, self.lateral_m)
        vehicle.heading = vehicle.heading + rng.uniform(-self.heading_rad, self.heading_rad)
        vehicle.speed = max(0.0, vehicle.speed + rng.uniform(-self.speed_mps, self.speed_mps))
        vehicle.on_state_update()

    def branch(self, env, scenario: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray] | None:
        """(scene, expert future) of a perturbed copy of ``env``, or None if the copy crashes or ends early."""
        import copy

        from diffdrive.scene import observe

        sim = copy.deepcopy(env.unwrapped)  # highway-env copies everything but the viewer
        self.displace(sim.vehicle, rng)
        scene = observe(sim, scenario)
        poses = [_pose(sim.vehicle)]
        for _ in range(HORIZON):
            _, _, term, trunc, _ = sim.step(np.zeros(2, dtype=np.float32))
            if sim.vehicle.crashed or ((term or trunc) and len(poses) < HORIZON):
                return None
            poses.append(_pose(sim.vehicle))
        return scene, future_in_ego_frame(np.asarray(poses), 0)


#: training episodes get perturbed branches; validation, test and evaluation ones do not
PERTURB = {"train": Perturbation()}


def _pose(v) -> list[float]:
    return [float(v.position[0]), float(v.position[1]), float(v.heading)]


def run_expert_episode(scenario: str, seed: int, perturb: Perturbation | None = None) -> dict[str, np.ndarray]:
    """One expert episode: per step the scene, the world pose and whether the ego has crashed; with ``perturb``,
    also the perturbed branches' scenes and futures."""
    from diffdrive.expert import install_expert
    from diffdrive.scenarios import make_env

    env = make_env(scenario)
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    install_expert(env, rng)
    branch_rng = np.random.default_rng([seed, 1])
    scenes, poses, crashed, b_scenes, b_futures = [], [], [], [], []
    done = False
    while True:
        v = env.unwrapped.vehicle
        scenes.append(env.observation(None))
        poses.append(_pose(v))
        crashed.append(v.crashed)
        if done:
            break
        if perturb is not None and branch_rng.random() < perturb.rate:
            got = perturb.branch(env, scenario, branch_rng)
            if got is not None:
                b_scenes.append(got[0])
                b_futures.append(got[1])
        _, _, term, trunc, _ = env.step(np.zeros(2, dtype=np.float32))
        done = term or trunc
    env.close()
    dim = scenes[0].shape[0]
    return {
        "scenes": np.stack(scenes),
        "poses": np.asarray(poses),
        "crashed": np.asarray(crashed),
        "branch_scenes": np.asarray(b_scenes, dtype=np.float32).reshape(-1, dim),
        "branch_futures": np.asarray(b_futures, dtype=np.float32).reshape(-1, HORIZON, POSE_DIM),
    }


def future_in_ego_frame(poses: np.ndarray, t: int) -> np.ndarray:
    """Poses ``t+1 … t+HORIZON`` of a (T, 3) world track, in the ego frame of pose ``t``: (HORIZON, 3)."""
    from diffdrive.scene import to_ego

    x, y, h = poses[t]
    fut = poses[t + 1 : t + 1 + HORIZON]
    xy = to_ego(fut[:, :2], np.array([x, y]), h)
    dh = (fut[:, 2] - h + np.pi) % (2 * np.pi) - np.pi
    return np.concatenate([xy, dh[:, None]], axis=1)


def episode_samples(ep: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    scenes, futures = [], []
    T = len(ep["poses"])
    for t in range(T - HORIZON):
        if ep["crashed"][: t + HORIZON + 1].any():
            break
        scenes.append(ep["scenes"][t])
        futures.append(future_in_ego_frame(ep["poses"], t))
    dim = ep["scenes"].shape[1]
    s = np.asarray(scenes, dtype=np.float32).reshape(-1, dim)
    f = np.asarray(futures, dtype=np.float32).reshape(-1, HORIZON, POSE_DIM)
    if "branch_scenes" in ep:
        s, f = np.concatenate([s, ep["branch_scenes"]]), np.concatenate([f, ep["branch_futures"]])
    return s, f


def _episode_job(args: tuple[str, int, Perturbation | None]) -> tuple[np.ndarray, np.ndarray]:
    return episode_samples(run_expert_episode(*args))


@dataclass(frozen=True)
class DriveData:
    """Scenes ``(N, SCENE_DIM)``, expert futures ``(N, 8, 3)`` and the episode (seed) of each sample."""

    scenes: np.ndarray
    futures: np.ndarray
    episodes: np.ndarray

    def __len__(self) -> int:
        return len(self.scenes)

    @staticmethod
    def concat(parts: list[DriveData]) -> DriveData:
        return DriveData(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("scenes", "futures", "episodes")))


def collect(scenario: str, split: str, episodes: int, *, workers: int | None = None, progress: bool = True) -> DriveData:
    """Run ``episodes`` expert episodes of ``split``'s seeds (in ``workers`` processes) into samples
    (with perturbed branches for the training split)."""
    get_scenario(scenario)
    seeds = split_seeds(split, episodes)
    workers = workers or min(2, os.cpu_count() or 1)
    jobs = [(scenario, s, PERTURB.get(split)) for s in seeds]
    bar = tqdm(total=len(jobs), desc=f"collect {scenario}/{split}", disable=not progress, unit="ep")
    out: list[tuple[np.ndarray, np.ndarray]] = []
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            for r in pool.map(_episode_job, jobs):
                out.append(r)
                bar.update(1)
    else:
        for j in jobs:
            out.append(_episode_job(j))
            bar.update(1)
    bar.close()
    eps = np.concatenate([np.full(len(s), seed, dtype=np.int64) for (s, _), seed in zip(out, seeds)])
    return DriveData(np.concatenate([s for s, _ in out]), np.concatenate([f for _, f in out]), eps)


def load_or_collect(
    data_dir: str | Path, scenario: str, split: str, episodes: int | None = None, *, progress: bool = True
) -> DriveData:
    """The cached samples of ``scenario``/``split`` in ``data_dir``, collected first if missing."""
    n = episodes if episodes is not None else EPISODES[get_scenario(scenario).name][split]
    path = Path(data_dir) / f"{scenario}_{split}_{n}{'_perturbed' if split in PERTURB else ''}.npz"
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as z:
                return DriveData(z["scenes"], z["futures"], z["episodes"])
        except (OSError, KeyError, ValueError) as e:
            raise DataError(f"cached data {path} is unreadable ({e}); delete it to collect again") from e
    data = collect(scenario, split, n, progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, scenes=data.scenes, futures=data.futures, episodes=data.episodes)
    os.replace(tmp, path)
    return data


def load_split(data_dir: str | Path, split: str, *, episodes_table: dict | None = None, progress: bool = True) -> DriveData:
    """All scenarios' samples of one split, concatenated (episode counts from ``episodes_table`` or :data:`EPISODES`)."""
    table = episodes_table or EPISODES
    return DriveData.concat([load_or_collect(data_dir, s, split, table[s][split], progress=progress) for s in table])
