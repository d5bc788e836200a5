"""The highway-env scenarios we plan in, always headless.

``highway`` is highway-env's ``highway-fast-v0`` (3 lanes, dense IDM traffic,
30 s); ``merge`` is ``merge-v0`` (vehicles enter from an on-ramp; the episode
ends once the ego passes x = 370 m). Both run at 10 Hz simulation with a
2 Hz policy, so one ``env.step`` is 0.5 s, the spacing of the planned poses.

highway-env draws with pygame. The SDL video driver defaults to ``offscreen``
(set before pygame is imported) and envs use ``offscreen_rendering``, so no
window is ever opened and no display is needed (CI has none). Not ``dummy``:
highway-env's viewer draws nothing at all under SDL's dummy driver.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from diffdrive.errors import UnknownScenarioError

os.environ.setdefault("SDL_VIDEODRIVER", "offscreen")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

POLICY_HZ = 2  # one env step = one planned pose spacing (0.5 s)
SIM_HZ = 10


@dataclass(frozen=True)
class Scenario:
    name: str
    env_id: str
    description: str


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("highway", "highway-fast-v0", "3-lane highway, 20 IDM/MOBIL vehicles, 30 s"),
        Scenario("merge", "merge-v0", "2-lane highway with vehicles merging from an on-ramp, until x = 370 m"),
    )
}


def get_scenario(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except (KeyError, TypeError):
        raise UnknownScenarioError(f"unknown scenario {name!r}; choose one of {sorted(SCENARIOS)}") from None


def env_config() -> dict[str, Any]:
    """The config overrides every diffdrive env uses (a user's own env should use the same rates)."""
    return {
        "simulation_frequency": SIM_HZ,
        "policy_frequency": POLICY_HZ,
        "action": {"type": "ContinuousAction"},
        "offscreen_rendering": True,
        "screen_width": 896,
        "screen_height": 224,
        "scaling": 4.5,
        "centering_position": [0.25, 0.5],
        "real_time_rendering": False,
        "show_trajectories": False,
    }


def _register() -> None:
    import gymnasium as gym
    from highway_env.envs.merge_env import MergeEnv

    if "diffdrive/merge" in gym.registry:
        return

    class ContinuousMergeEnv(MergeEnv):
        """``merge-v0`` whose reward does not assume discrete actions.

        MergeEnv's reward tests ``action in [0, 2]`` (a lane-change meta-action),
        which fails for a continuous action array. The reward is not used by
        diffdrive (we measure collisions, progress and comfort), but gymnasium
        computes it every step; here a lane change is a change of lane index.
        """

        def _rewards(self, action: Any) -> dict[str, float]:
            lane = self.vehicle.lane_index
            changed = getattr(self, "_last_lane", lane)[2] != lane[2]
            self._last_lane = lane
            return super()._rewards(0 if changed else 1)

    gym.register("diffdrive/merge", entry_point=lambda **kw: ContinuousMergeEnv(**kw))


def make_env(scenario: str, *, render: bool = False, scene_obs: bool = True):
    """A headless gymnasium env of ``scenario``, stepping at the planner's 2 Hz.

    Args:
        scenario: ``"highway"`` or ``"merge"``.
        render: ``render_mode="rgb_array"`` (frames for videos); never a window.
        scene_obs: wrap it so observations are diffdrive scene vectors
            (:func:`diffdrive.scene.observe`), what :meth:`Planner.plan` takes.
    """
    import gymnasium as gym
    import highway_env  # noqa: F401  (registers the envs)

    sc = get_scenario(scenario)
    _register()
    env_id = "diffdrive/merge" if sc.name == "merge" else sc.env_id
    env = gym.make(env_id, config=env_config(), render_mode="rgb_array" if render else None)
    if scene_obs:
        from diffdrive.scene import SceneObservation

        env = SceneObservation(env, sc.name)
    return env
