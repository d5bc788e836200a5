"""One training loop for every package: accelerate, EMA, clipping, LR schedule, resume."""

from diffcore.train.loop import TrainConfig, TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "train"]
