"""One training loop, one stage runner and one training card for every package."""

from diffcore.train.card import TrainingCard, count_parameters, detect_machine, logged_seconds
from diffcore.train.loop import TrainConfig, TrainResult, train
from diffcore.train.stages import Recipe, Run, run_stages

__all__ = [
    "Recipe",
    "Run",
    "TrainConfig",
    "TrainResult",
    "TrainingCard",
    "count_parameters",
    "detect_machine",
    "logged_seconds",
    "run_stages",
    "train",
]
