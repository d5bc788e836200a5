"""diffcore.train's stage runner and training card: one argument set, reproducible commands, checked cards."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from diffcore.errors import CheckpointError, InvalidInputError
from diffcore.train import Run, TrainingCard, detect_machine, logged_seconds, run_stages


@dataclass(frozen=True)
class ToyRecipe:
    """Train a toy."""

    seed: int = 0
    steps: int = 100
    lr: float = 1e-3
    name: str = "toy"
    sizes: tuple[int, ...] = (1, 2)  # not a command-line flag: not a scalar

    def smoke(self) -> ToyRecipe:
        return dataclasses.replace(self, steps=2)


def _stages(calls: list):
    def first(recipe: ToyRecipe, run: Run) -> Path:
        calls.append(("first", recipe, run))
        return run.weights / "first"

    def second(recipe: ToyRecipe, run: Run) -> Path:
        calls.append(("second", recipe, run))
        return run.weights / "second"

    return {"first": first, "second": second}


def _run(argv, calls, tmp_path):
    return run_stages(
        [*argv, "--out", str(tmp_path / "runs")] if "--out" not in argv else argv,
        "toy",
        ToyRecipe(),
        _stages(calls),
        tmp_path / "shipped",
    )


def test_all_stages_run_in_order_with_the_shipped_recipe(tmp_path):
    calls: list = []
    done = _run([], calls, tmp_path)
    assert [c[0] for c in calls] == ["first", "second"] == list(done)
    _, recipe, run = calls[0]
    assert recipe == ToyRecipe() and run.weights == tmp_path / "shipped" and run.out == tmp_path / "runs"
    assert run.command("first") == "diffcore train toy --stage first --seed 0"
    assert done["second"] == tmp_path / "shipped" / "second"


def test_recipe_fields_become_flags_and_enter_the_command(tmp_path):
    calls: list = []
    _run(["--stage", "second", "--steps", "7", "--lr", "0.5", "--seed", "3", "--data", "my photos"], calls, tmp_path)
    [(stage, recipe, run)] = calls
    assert stage == "second" and recipe == ToyRecipe(seed=3, steps=7, lr=0.5)
    assert run.data == "my photos"
    assert run.command("second") == "diffcore train toy --stage second --seed 3 --steps 7 --lr 0.5 --data 'my photos'"


def test_smoke_uses_the_recipe_smoke_and_never_the_shipped_folder(tmp_path):
    calls: list = []
    _run(["--smoke"], calls, tmp_path)
    _, recipe, run = calls[0]
    assert recipe.steps == 2 and run.smoke and run.weights == tmp_path / "runs" / "weights"
    assert run.command("first").endswith("--smoke")
    calls.clear()
    _run(["--smoke", "--weights", str(tmp_path / "w")], calls, tmp_path)
    assert calls[0][2].weights == tmp_path / "w"


@pytest.mark.parametrize(
    "argv", [["--seed", "-1"], ["--seed", str(2**32)], ["--seed", "1.5"], ["--stage", "third"], ["--steps", "x"]]
)
def test_bad_arguments_exit_2(tmp_path, argv, capsys):
    with pytest.raises(SystemExit) as e:
        _run(argv, [], tmp_path)
    assert e.value.code == 2
    assert "diffcore train toy: error:" in capsys.readouterr().err


def test_a_recipe_must_be_a_dataclass(tmp_path):
    class NotARecipe:
        seed = 0

        def smoke(self):
            return self

    with pytest.raises(InvalidInputError, match="dataclass"):
        run_stages([], "p", NotARecipe(), _stages([]), tmp_path)


CARD = dict(
    model="m", data="d", steps=1, batch=2, seed=0, parameters=3, seconds=4.0, machine="x", command="c", metrics={"a": 1.0}
)


def test_run_cards_take_the_config_the_log_and_the_command(tmp_path):
    from diffcore.train import TrainConfig

    (tmp_path / "first").mkdir()
    (tmp_path / "first" / "log.jsonl").write_text('{"step": 5, "time_s": 12.34}\n')
    run = Run(out=tmp_path, weights=tmp_path / "w", data=None, smoke=False, prog="diffcore train toy", args="--seed 3")
    cfg = TrainConfig(steps=5, batch_size=4, seed=3)
    card = run.card("first", model="m", data="d", config=cfg, parameters=torch.nn.Linear(2, 3), metrics={"a": 1.0}, note="n")
    assert (card.steps, card.batch, card.seed, card.parameters, card.seconds) == (5, 4, 3, 9, 12.3)
    assert card.command == "diffcore train toy --stage first --seed 3" and card.machine == detect_machine()
    assert card.details["note"] == "n" and card.details["config"]["batch_size"] == 4


def test_card_round_trip_and_markdown(tmp_path):
    card = TrainingCard(**CARD, details={"recipe": {"steps": 1}, "note": "n"})
    card.write(tmp_path)
    assert TrainingCard.read(tmp_path) == card
    assert json.loads((tmp_path / "training_card.json").read_text())["details"]["note"] == "n"
    md = (tmp_path / "training_card.md").read_text()
    assert md.startswith("# Training card: m\n") and "- **seconds**: 4.0\n" in md and '  - recipe: {"steps": 1}\n' in md


@pytest.mark.parametrize(
    "change", [{"steps": -1}, {"steps": 1.5}, {"seed": True}, {"seconds": float("nan")}, {"machine": ""}, {"metrics": [1]}]
)
def test_bad_cards_are_refused(change):
    with pytest.raises(InvalidInputError):
        TrainingCard(**{**CARD, **change})


def test_reading_a_card_with_other_keys_is_a_checkpoint_error(tmp_path):
    (tmp_path / "training_card.json").write_text(json.dumps({**CARD, "wall_time_s": 3}))
    with pytest.raises(CheckpointError, match="unknown keys"):
        TrainingCard.read(tmp_path)
    (tmp_path / "training_card.json").write_text(json.dumps({k: v for k, v in CARD.items() if k != "machine"}))
    with pytest.raises(CheckpointError, match="lacks"):
        TrainingCard.read(tmp_path)


def test_logged_seconds_and_machine(tmp_path):
    assert logged_seconds(tmp_path) == 0.0
    (tmp_path / "log.jsonl").write_text('{"step": 1, "time_s": 2.5}\n{"step": 2, "eval": {}}\n{"step": 3, "time_s": 7.0}\n')
    assert logged_seconds(tmp_path) == 7.0
    if not torch.cuda.is_available():
        assert detect_machine().endswith(f", {os.cpu_count()} cores") and len(detect_machine()) > len(" cores, 2")
