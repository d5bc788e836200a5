import numpy as np
import pytest

from diffdrive import SCENE_DIM, ObservationError, Scene, UnknownScenarioError, make_env, observe
from diffdrive.scene import MAX_AGENTS, check_scenes, to_ego


def test_scene_vector_is_in_the_ego_frame(highway_scene):
    s = Scene.split(highway_scene)
    assert highway_scene.shape == (SCENE_DIM,) and highway_scene.dtype == np.float32
    assert 15 < s.ego[0] < 35  # speed, m/s
    present = s.agents[s.agents[:, 0] > 0.5]
    assert 1 <= len(present) <= MAX_AGENTS
    d = np.hypot(present[:, 1], present[:, 2])
    assert np.all(np.diff(d) >= -1e-4), "agents are sorted by distance"
    # the current lane's centre line starts beside the ego and runs straight ahead
    cur = s.lanes[1]
    assert cur[:, 0].all() and np.allclose(cur[:, 1], 10.0 * np.arange(len(cur)) + cur[0, 1], atol=0.5)
    assert abs(cur[0, 2] + s.ego[2]) < 0.2, "lateral offset and lane centre agree"


def test_to_ego_rotates_and_translates():
    p = to_ego(np.array([[1.0, 1.0]]), np.array([1.0, 0.0]), np.pi / 2)
    assert np.allclose(p, [[1.0, 0.0]])  # straight ahead of an ego heading +y


def test_wrapped_and_raw_envs_give_the_same_scene():
    wrapped = make_env("merge")
    raw = make_env("merge", scene_obs=False)
    a, _ = wrapped.reset(seed=3)
    raw.reset(seed=3)
    assert np.array_equal(a, observe(raw, "merge"))
    assert Scene.split(a).ego[-1] == 1.0  # one-hot: merge


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.zeros(SCENE_DIM - 1), "expected a scene of shape"),
        (np.zeros((2, 3, SCENE_DIM)), "expected a scene of shape"),
        (np.zeros((0, SCENE_DIM)), "empty"),
        (np.full(SCENE_DIM, np.nan), "NaN or inf"),
        ("not a scene", "numeric array"),
    ],
)
def test_bad_scenes_are_typed_errors(bad, match):
    with pytest.raises(ObservationError, match=match):
        check_scenes(bad)


def test_unknown_scenario():
    with pytest.raises(UnknownScenarioError, match="choose one of"):
        make_env("racetrack")


def test_rendering_is_headless_and_not_blank():
    env = make_env("highway", render=True)
    env.reset(seed=0)
    frame = env.render()
    env.close()
    assert frame.shape == (224, 896, 3)
    assert frame.std() > 10  # road, lane marks and vehicles are drawn (SDL's "dummy" driver would give black)
