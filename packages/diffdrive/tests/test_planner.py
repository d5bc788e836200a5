import json
import shutil

import numpy as np
import pytest

from diffcore.errors import CheckpointError, InvalidInputError, UnknownNameError
from diffdrive import SCENE_DIM, AnchorMismatchError, ObservationError, Plan, Planner, make_env
from diffdrive.planner import WEIGHTS


def test_plan_is_twenty_candidates_in_metres(planner, highway_scene):
    plan = planner.plan(highway_scene)
    assert isinstance(plan, Plan)
    assert plan.trajectories.shape == (20, 8, 3) and plan.confidences.shape == (20,)
    assert plan.chosen == int(np.argmax(plan.confidences))
    t = plan.trajectory
    speed = highway_scene[0]
    # 4 s ahead at roughly the current speed, along the lane
    assert 0.6 * speed * 4 < t[-1, 0] < 1.4 * speed * 4 and abs(t[-1, 1]) < 5.0
    assert np.all(np.diff(t[:, 0]) > 0)


def test_plans_are_deterministic_per_seed_and_batched(planner, highway_scene):
    a = planner.plan(highway_scene, seed=1)
    b = planner.plan(highway_scene, seed=1)
    assert np.array_equal(a.trajectories, b.trajectories)
    batch = planner.plan(np.stack([highway_scene, highway_scene]), seed=1)
    assert isinstance(batch, list) and len(batch) == 2
    assert np.allclose(batch[0].trajectories, a.trajectories, atol=1e-4)


def test_anchored_modes_are_diverse_and_refined_for_the_scene(planner, highway_scene):
    """20 distinct modes where regression gives one, and each is the network's refinement, not its anchor:
    a planner returning its anchors unchanged (diverse, but blind to the scene) fails here."""
    reg = Planner.load("regression").plan(highway_scene)
    assert reg.trajectories.shape == (1, 8, 3)
    plan = planner.plan(highway_scene)
    ends = plan.trajectories[:, -1, :2]
    spread = np.linalg.norm(ends[:, None] - ends[None], axis=-1).mean()
    assert spread > 2.0
    anchors = planner.model.anchors.cpu().numpy()
    moved = np.linalg.norm(plan.trajectories[..., :2] - anchors[..., :2], axis=-1).mean()
    assert moved > 1.0  # metres, mean over modes and poses (the shipped planner: about 4)
    env = make_env("merge")
    other, _ = env.reset(seed=300_001)
    env.close()
    assert np.abs(planner.plan(other).trajectories - plan.trajectories)[..., :2].mean() > 0.5  # about 2 m


@pytest.mark.parametrize("bad", [np.zeros(7), np.full(SCENE_DIM, np.inf), [[1, 2], [3]]])
def test_bad_observations(planner, bad):
    with pytest.raises(ObservationError):
        planner.plan(bad)


def test_unknown_planner_and_missing_checkpoint(tmp_path):
    with pytest.raises(UnknownNameError, match="diffusiondrive"):
        Planner.load("transfuser")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        Planner.load("diffusiondrive", path=tmp_path / "nothing")


def test_anchors_that_do_not_match_the_config_are_refused(tmp_path):
    bad = tmp_path / "diffusiondrive"
    shutil.copytree(WEIGHTS / "diffusiondrive", bad)
    cfg = json.loads((bad / "config.json").read_text())
    cfg["num_modes"] = 12
    (bad / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(AnchorMismatchError, match=r"anchors of shape \(20, 8, 3\) but its config says \(12, 8, 3\)"):
        Planner.load("diffusiondrive", path=tmp_path)


def test_policy_drives_any_highway_env(planner):
    """``as_policy(env)`` reads the scene from the simulator when the observation is not a scene vector."""
    env = make_env("highway", scene_obs=False)
    obs, _ = env.reset(seed=300_002)
    policy = planner.as_policy(env)
    for _ in range(3):
        action = policy(obs)
        assert action.shape == (2,) and np.all(np.abs(action) <= 1)
        obs, *_ = env.step(action)
    assert policy.calls == 3 and policy.last_plan is not None
    assert not env.unwrapped.vehicle.crashed
    env.close()


def test_policy_without_env_needs_a_scene(planner):
    with pytest.raises(InvalidInputError, match="pass as_policy"):
        planner.as_policy()(np.zeros(5))


def test_corrupt_checkpoints_are_checkpoint_errors(tmp_path, highway_scene):
    """Fuzz: random byte edits of the weights file or the config either load a working planner or raise CheckpointError."""
    import random

    from diffdrive.planner import _load

    rng = random.Random(0)
    src = WEIGHTS / "diffusiondrive"
    files = ["diffusion_pytorch_model.safetensors", "config.json"]
    outcomes = {"refused": 0, "loaded": 0}
    for i in range(60):
        d = tmp_path / f"c{i}" / "diffusiondrive"
        shutil.copytree(src, d)
        f = d / files[i % 2]
        data = bytearray(f.read_bytes())
        if i % 5 == 4:
            data = data[: rng.randrange(len(data))]  # truncated
        else:
            for _ in range(rng.randint(1, 8)):  # mostly inside the header / JSON, where parsing happens
                data[rng.randrange(min(len(data), 600))] = rng.randrange(256)
        f.write_bytes(bytes(data))
        try:
            p = Planner.load("diffusiondrive", path=d.parent)
        except CheckpointError:
            outcomes["refused"] += 1
            continue
        plan = p.plan(highway_scene)
        assert np.isfinite(plan.trajectories).all()
        outcomes["loaded"] += 1
    _load.cache_clear()
    assert outcomes["refused"] >= 20, outcomes
