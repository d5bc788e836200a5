import numpy as np
import pytest

from diffcore.errors import DataError, InvalidInputError
from diffdrive.data import (
    HORIZON,
    PERTURB,
    SPLIT_SEEDS,
    episode_samples,
    future_in_ego_frame,
    load_or_collect,
    run_expert_episode,
    split_seeds,
)


def test_future_in_ego_frame():
    t = np.arange(12) * 0.5
    poses = np.stack([10.0 * t, np.full_like(t, 4.0), np.zeros_like(t)], 1)  # 20 m/s along x, in lane y = 4
    fut = future_in_ego_frame(poses, 2)
    assert fut.shape == (HORIZON, 3)
    assert np.allclose(fut[:, 0], 10.0 * 0.5 * np.arange(1, HORIZON + 1)) and np.allclose(fut[:, 1:], 0)
    turned = poses.copy()
    turned[:, 2] = np.pi / 2  # heading +y: the motion along +x is to the ego's left (-y)
    assert np.allclose(future_in_ego_frame(turned, 0)[:, 1], -10.0 * 0.5 * np.arange(1, HORIZON + 1))


def test_crash_windows_are_dropped():
    T = 20
    ep = {
        "scenes": np.zeros((T, 4), np.float32),
        "poses": np.stack([np.arange(T, dtype=float), np.zeros(T), np.zeros(T)], 1),
        "crashed": np.arange(T) >= 12,
    }
    s, f = episode_samples(ep)
    assert len(s) == 12 - HORIZON  # windows ending before the crash step
    assert f.shape == (len(s), HORIZON, 3)


def test_splits_are_disjoint():
    ranges = {k: set(split_seeds(k, 1000)) for k in SPLIT_SEEDS}
    names = list(ranges)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not ranges[a] & ranges[b]
    with pytest.raises(InvalidInputError):
        split_seeds("holdout", 3)


def test_perturbed_branches_are_continuous_expert_recoveries():
    ep = run_expert_episode("merge", 7, PERTURB["train"])
    assert len(ep["branch_scenes"]) > 3
    fut = ep["branch_futures"]
    steps = np.linalg.norm(np.diff(fut[..., :2], axis=1), axis=-1)
    assert steps.max() < 25.0  # no teleport inside a label: at most 50 m/s
    lateral = ep["branch_scenes"][:, 2]  # displaced off the lane centre
    assert np.abs(lateral).max() > 0.3


def test_corrupt_cache_is_a_data_error(tmp_path):
    (tmp_path / "merge_val_1.npz").write_bytes(b"not an npz")
    with pytest.raises(DataError, match="delete it"):
        load_or_collect(tmp_path, "merge", "val", 1)


def test_collect_is_cached_and_deterministic(tmp_path):
    a = load_or_collect(tmp_path, "merge", "val", 1, progress=False)
    assert (tmp_path / "merge_val_1.npz").exists()
    b = load_or_collect(tmp_path, "merge", "val", 1, progress=False)
    assert np.array_equal(a.futures, b.futures) and len(a) > 10
    assert set(a.episodes) == {SPLIT_SEEDS["val"]}
