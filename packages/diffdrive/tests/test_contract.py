"""diffdrive's ``Planner`` against diffsuite's API contract (:mod:`diffcore.testing`), on one held-out scene."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np

from diffcore.errors import CheckpointError, InvalidInputError, UnknownNameError
from diffcore.testing import APIContract
from diffdrive import ObservationError, Plan, Planner, make_env
from diffdrive.cli import main
from diffdrive.limits import MAX_EPISODES, MAX_STEPS
from diffdrive.planner import WEIGHTS


@cache
def _scene() -> np.ndarray:
    env = make_env("highway")
    obs, _ = env.reset(seed=300_000)
    env.close()
    return obs


class TestPlannerContract(APIContract):
    weights = WEIGHTS
    copy = ("diffusiondrive",)
    seed_changes_output = True  # the anchors are noised from the seed
    model_loaders = ("diffdrive.planner._load",)

    def load(self, path: Path | None = None) -> Planner:
        return Planner.load("diffusiondrive", path=path)

    def call(self, model: Planner, seed: int) -> Plan:
        return model.plan(_scene(), seed=seed)

    def assert_same(self, a: Plan, b: Plan) -> None:
        np.testing.assert_array_equal(a.trajectories, b.trajectories)
        np.testing.assert_array_equal(a.confidences, b.confidences)
        assert a.chosen == b.chosen

    def bad_inputs(self, model: Planner) -> list:
        return [
            (lambda: Planner.load("transfuser"), UnknownNameError),
            (lambda: Planner.load("diffusiondrive", steps=0), InvalidInputError),
            (lambda: Planner.load("diffusiondrive", path=WEIGHTS / "diffusiondrive"), CheckpointError),  # not a root
            (lambda: model.plan(np.zeros(7)), ObservationError),
            (lambda: model.plan(np.full_like(_scene(), np.nan)), ObservationError),
            (lambda: model.plan(np.full_like(_scene(), 1e30)), ObservationError),  # finite, but no scene
            (lambda: model.plan(_scene(), seed=2**70), InvalidInputError),
            (lambda: Planner.load("diffusiondrive", steps=MAX_STEPS + 1), InvalidInputError),
            (lambda: Planner.load("diffusiondrive", steps=2.0), InvalidInputError),
            (lambda: model.as_policy(seed=-1), InvalidInputError),
            (lambda: model.as_policy()(np.zeros(5)), InvalidInputError),
        ]

    def cli_seed_argv(self, seed: str) -> list[str]:
        return ["eval", "--planner", "expert", "--episodes", "1", "--seed", seed]

    def cli_main(self, argv: list[str]) -> int:
        return main(argv)

    def cli_bad_argvs(self) -> list[list[str]]:
        return [
            ["eval", "--steps", "100000"],
            ["eval", "--steps", "0"],
            ["eval", "--episodes", "0"],
            ["eval", "--episodes", str(MAX_EPISODES + 1)],
            ["eval", "--scenario", "moon"],
            ["eval", "--seed", str(2**32 - 1), "--episodes", "2"],
            ["drive", "--render", "out.avi"],
            ["drive", "--scenario", "moon", "--render", "out.mp4"],
        ]
