"""The scene a planner sees, in the ego frame and in metres.

DiffusionDrive conditions on a BEV scene (agents, map) and on the ego status.
Here the scene is read from highway-env's simulator state, the way a perception
stack would report it, and flattened into one float32 vector of
:data:`SCENE_DIM` numbers so it can be batched, cached and validated:

- ``ego`` (:data:`EGO_DIM`): speed (m/s), heading relative to the lane (rad),
  lateral offset from the lane centre (m), free room to the left and right road
  edges (m), and a one-hot scenario id.
- ``agents`` (:data:`MAX_AGENTS` × 7): the nearest vehicles and obstacles within
  :data:`AGENT_RANGE` m: present flag, x, y (m, ego frame: x forward, y to the
  right, as highway-env's screen), vx, vy (m/s, ego frame), cos and sin of their
  heading relative to the ego. Absent rows are zero.
- ``lanes`` (3 × :data:`LANE_POINTS` × 3): the centre lines of the left
  neighbour, current and right neighbour lanes, sampled every
  :data:`LANE_SPACING` m ahead: present flag, x, y.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from diffdrive.errors import ObservationError
from diffdrive.scenarios import SCENARIOS

EGO_DIM = 5 + len(SCENARIOS)
MAX_AGENTS = 8
AGENT_DIM = 7
AGENT_RANGE = 100.0
LANES = 3
LANE_POINTS = 8
LANE_SPACING = 10.0
SCENE_DIM = EGO_DIM + MAX_AGENTS * AGENT_DIM + LANES * LANE_POINTS * 3
#: no observed value comes near this (m or m/s): agents are within AGENT_RANGE, speeds stay under 50 m/s, and the
#: largest value of a held-out merge episode (a lane sample) is 206; a scene beyond it is not one the encoder was
#: trained on (a unit or frame mistake, a forged input), and is refused
PHYSICAL_LIMIT = 1000.0


@dataclass(frozen=True)
class Scene:
    """A scene vector split into its parts (views, no copies)."""

    ego: np.ndarray  # (..., EGO_DIM)
    agents: np.ndarray  # (..., MAX_AGENTS, AGENT_DIM)
    lanes: np.ndarray  # (..., LANES, LANE_POINTS, 3)

    @classmethod
    def split(cls, x: np.ndarray) -> Scene:
        lead = x.shape[:-1]
        a = EGO_DIM + MAX_AGENTS * AGENT_DIM
        return cls(
            x[..., :EGO_DIM],
            x[..., EGO_DIM:a].reshape(*lead, MAX_AGENTS, AGENT_DIM),
            x[..., a:].reshape(*lead, LANES, LANE_POINTS, 3),
        )


def check_scenes(x: object) -> tuple[np.ndarray, bool]:
    """``x`` as a float32 ``(B, SCENE_DIM)`` array and whether it was a single scene; typed errors otherwise."""
    try:
        arr = np.asarray(x, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise ObservationError(f"a scene must be a numeric array of {SCENE_DIM} numbers: {e}") from None
    single = arr.ndim == 1
    if single:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != SCENE_DIM:
        raise ObservationError(
            f"expected a scene of shape ({SCENE_DIM},) or a batch (B, {SCENE_DIM}), got {np.shape(x)}; "
            "build it with diffdrive.observe(env) or an env from diffdrive.make_env"
        )
    if arr.shape[0] == 0:
        raise ObservationError("the batch of scenes is empty")
    bad = ~np.isfinite(arr)
    if bad.any():
        rows = sorted({int(i) for i in np.nonzero(bad)[0]})[:5]
        raise ObservationError(f"scene(s) {rows} contain NaN or inf values")
    far = np.abs(arr) > PHYSICAL_LIMIT
    if far.any():
        rows = sorted({int(i) for i in np.nonzero(far)[0]})[:5]
        raise ObservationError(
            f"scene(s) {rows} hold values beyond {PHYSICAL_LIMIT:g} (largest {float(np.abs(arr).max()):.3g}): "
            "positions are metres and speeds m/s in the ego frame; build scenes with diffdrive.observe(env)"
        )
    return arr, single


def _rot(heading: float) -> np.ndarray:
    """World -> ego rotation matrix for an ego heading (rad)."""
    c, s = np.cos(heading), np.sin(heading)
    return np.array([[c, s], [-s, c]])


def to_ego(points: np.ndarray, origin: np.ndarray, heading: float) -> np.ndarray:
    """World (..., 2) points into the ego frame at ``origin`` with ``heading``."""
    return (np.asarray(points, dtype=np.float64) - origin) @ _rot(heading).T


def observe(env, scenario: str | None = None) -> np.ndarray:
    """The scene vector of ``env``'s ego vehicle (any highway-env env, wrapped or not)."""
    u = env.unwrapped
    ego = u.vehicle
    if scenario is None:
        scenario = getattr(env, "scenario", None) or ("merge" if "Merge" in type(u).__name__ else "highway")
    out = np.zeros(SCENE_DIM, dtype=np.float32)
    sc = Scene.split(out)
    pos, hd = np.asarray(ego.position, dtype=np.float64), float(ego.heading)
    net = u.road.network
    lane_index = ego.lane_index
    lane = net.get_lane(lane_index)
    s, r = lane.local_coordinates(pos)
    lane_heading = lane.heading_at(s)
    siblings = net.graph[lane_index[0]][lane_index[1]]
    left = siblings[0].local_coordinates(pos)[1]
    right = siblings[-1].local_coordinates(pos)[1]
    half = lane.width_at(s) / 2
    sc.ego[:5] = [ego.speed, _wrap(hd - lane_heading), r, left + half, half - right]
    sc.ego[5 + list(SCENARIOS).index(scenario)] = 1.0

    others = [v for v in list(u.road.vehicles) + list(u.road.objects) if v is not ego]
    others.sort(key=lambda v: float(np.linalg.norm(np.asarray(v.position) - pos)))
    R = _rot(hd)
    for row, v in zip(sc.agents, (v for v in others if np.linalg.norm(np.asarray(v.position) - pos) < AGENT_RANGE)):
        rel = R @ (np.asarray(v.position) - pos)
        vel = R @ (np.asarray(getattr(v, "velocity", np.zeros(2)), dtype=np.float64))
        dh = float(v.heading) - hd
        row[:] = [1.0, rel[0], rel[1], vel[0], vel[1], np.cos(dh), np.sin(dh)]

    ids = [lane_index[2] - 1, lane_index[2], lane_index[2] + 1]
    ahead = s + LANE_SPACING * np.arange(LANE_POINTS)
    for slot, i in zip(sc.lanes, ids):
        if 0 <= i < len(siblings):
            pts = np.stack([siblings[i].position(float(a), 0.0) for a in ahead])
            slot[:, 0] = 1.0
            slot[:, 1:] = to_ego(pts, pos, hd)
    return out


def _wrap(a: float) -> float:
    return float((a + np.pi) % (2 * np.pi) - np.pi)


class SceneObservation(gym.ObservationWrapper):
    """Replaces the env's observation by :func:`observe`'s scene vector."""

    def __init__(self, env: gym.Env, scenario: str) -> None:
        super().__init__(env)
        self.scenario = scenario
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (SCENE_DIM,), np.float32)

    def observation(self, observation: object) -> np.ndarray:
        return observe(self.env, self.scenario)
