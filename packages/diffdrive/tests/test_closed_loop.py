import pytest

from diffdrive.closed_loop import ConstantVelocityDriver, ExpertDriver, PlannerDriver, evaluate, run_episode


def test_expert_and_constant_velocity_on_the_same_traffic():
    expert = run_episode("merge", ExpertDriver(), 300_000)
    assert not expert.collided and expert.progress_m > 300 and expert.on_road == 1.0
    cv = run_episode("merge", ConstantVelocityDriver(), 300_000)
    # holding speed and heading into the merge ends in a crash after 10 steps (147.7 m), the expert merges cleanly
    assert cv.collided and len(cv.plan_seconds) == 10 and cv.progress_m == pytest.approx(147.69, abs=0.1)
    assert cv.progress_m < 0.5 * expert.progress_m and 25 < cv.mean_speed < 35
    assert run_episode("merge", ConstantVelocityDriver(), 300_000).metrics() == cv.metrics()  # the traffic is the seed's
    assert set(expert.metrics()) == {"collided", "progress_m", "on_road", "mean_speed", "jerk", "seconds"}
    assert expert.seconds == pytest.approx(0.5 * len(expert.plan_seconds))


def test_episode_frames_show_the_plans(planner):
    ep = run_episode("highway", PlannerDriver(planner), 300_001, render=True, max_steps=3)
    assert len(ep.frames) == 4 and len(ep.plans) == 3
    red = (ep.frames[0][..., 0] > 200) & (ep.frames[0][..., 1] < 60)
    assert red.sum() > 50  # the chosen trajectory is drawn
    assert not (ep.frames[-1][..., 0] > 200).sum() > red.sum() * 10


@pytest.mark.slow
def test_diffusiondrive_drives_held_out_episodes(planner):
    """Quality floor in closed loop: on 3 held-out highway episodes, no collision and >= 85% of the expert's progress."""
    seeds = [300_000, 300_001, 300_002]
    ours, _ = evaluate(PlannerDriver(planner), "highway", seeds, progress=False)
    expert, _ = evaluate(ExpertDriver(), "highway", seeds, progress=False)
    assert ours["collision_rate"] == 0.0
    assert ours["progress_m"] >= 0.85 * expert["progress_m"]
    assert ours["on_road"] >= 0.9
    assert 0 < ours["plan_seconds_median"] < 60
