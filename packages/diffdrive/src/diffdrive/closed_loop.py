"""Closed-loop evaluation: a driver in a highway-env episode, and what it achieved.

Drivers (:class:`Driver`): a :class:`~diffdrive.planner.Planner` tracked by the
controller, the IDM/MOBIL expert (:func:`~diffdrive.expert.install_expert`),
and constant velocity (keep speed and heading). Every driver sees the same
episodes: the traffic comes from the seed.

Per episode: collision, route progress (m along the lane, summed per step),
time on road (fraction of steps), mean speed, comfort as the mean absolute
longitudinal jerk (m/s³, from the speed sampled every 0.5 s), the simulated
duration and the wall time of each planning call (all durations in seconds).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from tqdm.auto import tqdm

from diffdrive.controller import DT, TrackingController
from diffdrive.data import HORIZON
from diffdrive.planner import Plan, Planner
from diffdrive.scenarios import get_scenario, make_env
from diffdrive.scene import Scene


class Driver(Protocol):
    name: str

    def reset(self, env: Any, seed: int) -> None: ...

    def act(self, obs: np.ndarray) -> tuple[np.ndarray, Plan | None]: ...


class PlannerDriver:
    """A planner tracked by the :class:`TrackingController`."""

    def __init__(self, planner: Planner, name: str | None = None) -> None:
        self.planner, self.name = planner, name or planner.label
        self.controller = TrackingController()
        self.seed = self.calls = 0

    def reset(self, env: Any, seed: int) -> None:
        self.seed, self.calls = seed, 0

    def act(self, obs: np.ndarray) -> tuple[np.ndarray, Plan | None]:
        plan = self.planner.plan(obs, seed=self.seed * 1000 + self.calls)
        self.calls += 1
        return self.controller.action(plan.trajectory, float(Scene.split(obs).ego[0])), plan


class ExpertDriver:
    """highway-env's IDM/MOBIL driver in the ego's seat (ignores actions)."""

    name = "IDM/MOBIL expert"

    def reset(self, env: Any, seed: int) -> None:
        from diffdrive.expert import install_expert

        install_expert(env, np.random.default_rng(seed))

    def act(self, obs: np.ndarray) -> tuple[np.ndarray, Plan | None]:
        return np.zeros(2, dtype=np.float32), None


class ConstantVelocityDriver:
    """Keeps its speed and heading: plans the straight line at the current speed, no control input."""

    name = "constant velocity"

    def reset(self, env: Any, seed: int) -> None:
        pass

    def act(self, obs: np.ndarray) -> tuple[np.ndarray, Plan | None]:
        v = float(Scene.split(obs).ego[0])
        ts = DT * np.arange(1, HORIZON + 1)
        traj = np.stack([v * ts, np.zeros_like(ts), np.zeros_like(ts)], 1)[None]
        return np.zeros(2, dtype=np.float32), Plan(traj, np.ones(1), 0)


@dataclass(frozen=True)
class Episode:
    """One closed-loop episode.

    Attributes:
        seconds: simulated duration of the episode (0.5 s per step).
        plan_seconds: wall time of each planning call, one per step.
        frames, plans: the rendered frames (with ``render=True``) and each step's plan (None: no planner).
    """

    scenario: str
    seed: int
    driver: str
    collided: bool
    progress_m: float
    on_road: float
    mean_speed: float
    jerk: float
    seconds: float
    plan_seconds: list[float] = field(default_factory=list)
    frames: list[np.ndarray] = field(default_factory=list, repr=False)
    plans: list[Plan | None] = field(default_factory=list, repr=False)

    def metrics(self) -> dict[str, float]:
        return {
            "collided": float(self.collided),
            "progress_m": self.progress_m,
            "on_road": self.on_road,
            "mean_speed": self.mean_speed,
            "jerk": self.jerk,
            "seconds": self.seconds,
        }


def run_episode(scenario: str, driver: Driver, seed: int, *, render: bool = False, max_steps: int = 200) -> Episode:
    """Drive one episode of ``scenario`` (traffic from ``seed``); frames with plans drawn if ``render``."""
    from diffdrive.render import draw_plan

    get_scenario(scenario)
    env = make_env(scenario, render=render)
    obs, _ = env.reset(seed=seed)
    driver.reset(env, seed)
    obs = env.observation(None)  # the scene after the driver's reset (the expert swaps the ego vehicle)
    u = env.unwrapped
    speeds, on_road, lat, frames, plans = [u.vehicle.speed], [], [], [], []
    progress = 0.0
    done, steps = False, 0
    while not done and steps < max_steps:
        t0 = time.perf_counter()
        action, plan = driver.act(obs)
        lat.append(time.perf_counter() - t0)
        plans.append(plan)
        if render:
            frames.append(draw_plan(env, plan))
        v = u.vehicle
        lane = u.road.network.get_lane(v.lane_index)
        s0 = lane.local_coordinates(v.position)[0]
        obs, _, term, trunc, _ = env.step(action)
        v = u.vehicle
        progress += float(lane.local_coordinates(v.position)[0] - s0)
        speeds.append(v.speed)
        on_road.append(bool(v.on_road))
        done = term or trunc
        steps += 1
    if render:
        frames.append(draw_plan(env, None))
    collided = bool(u.vehicle.crashed)
    env.close()
    sp = np.asarray(speeds)
    acc = np.diff(sp) / DT
    jerk = float(np.abs(np.diff(acc) / DT).mean()) if len(acc) > 1 else 0.0
    return Episode(
        scenario,
        seed,
        driver.name,
        collided,
        progress,
        float(np.mean(on_road)),
        float(sp[1:].mean()),
        jerk,
        steps * DT,
        lat,
        frames,
        plans,
    )


def evaluate(driver: Driver, scenario: str, seeds: list[int], *, progress: bool = True) -> tuple[dict[str, float], list[Episode]]:
    """Run ``driver`` on every seed; mean metrics (collision rate, …) and the episodes."""
    eps = [run_episode(scenario, driver, s) for s in tqdm(seeds, desc=f"{driver.name} / {scenario}", disable=not progress)]
    keys = eps[0].metrics()
    agg = {k: float(np.mean([e.metrics()[k] for e in eps])) for k in keys}
    agg["collision_rate"] = agg.pop("collided")
    lat = [x for e in eps for x in e.plan_seconds]
    agg["plan_seconds_median"] = float(np.median(lat)) if lat else 0.0
    return agg, eps
