"""Training cards: one set of keys for every shipped model, one writer.

Every shipped checkpoint folder holds ``training_card.json`` and a readable
``training_card.md`` rendered from it. The keys are those of
:class:`TrainingCard`; anything recipe-specific (the recipe's fields, the
optimizer config, a tokenizer's size) goes under ``details``.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from diffcore.errors import CheckpointError, InvalidInputError
from diffcore.jsonfile import read_object
from diffcore.machine import machine_name

CARD_JSON, CARD_MD = "training_card.json", "training_card.md"


def detect_machine() -> str:
    """What trains here: the GPU's name when CUDA is available, else "CPU model, N cores"."""
    return machine_name()


def logged_seconds(run_dir: str | Path) -> float:
    """Wall seconds a (possibly resumed) training run logged, from its ``log.jsonl``.

    A resumed run's log keeps the records up to the checkpoint it resumed
    from, so the largest ``time_s`` is the time of the run that finished; 0.0
    when nothing was logged.
    """
    log = Path(run_dir) / "log.jsonl"
    if not log.is_file():
        return 0.0
    times = [json.loads(line).get("time_s", 0.0) for line in log.read_text().splitlines() if line.strip()]
    return float(max(times, default=0.0))


def count_parameters(model: torch.nn.Module) -> int:
    """Number of parameters (tied ones counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


@dataclass(frozen=True)
class TrainingCard:
    """What a shipped model is and how to get it again.

    Attributes:
        model: what was trained (role and class).
        data: the data and its split.
        steps: optimizer steps.
        batch: global batch size (items per step).
        seed: the recipe's seed.
        parameters: number of parameters of the shipped model.
        seconds: wall seconds of the training run(s).
        machine: where it trained (:func:`detect_machine`).
        command: the command that reproduces it.
        metrics: final metrics (held-out unless the name says otherwise).
        details: anything else (recipe fields, optimizer config, notes).
    """

    model: str
    data: str
    steps: int
    batch: int
    seed: int
    parameters: int
    seconds: float
    machine: str
    command: str
    metrics: dict[str, float]
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("model", "data", "machine", "command"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name).strip():
                raise InvalidInputError(f"training card needs a non-empty {name}")
        for name in ("steps", "batch", "seed", "parameters"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise InvalidInputError(f"training card {name} must be an int >= 0, got {v!r}")
        if not isinstance(self.seconds, int | float) or not math.isfinite(self.seconds) or self.seconds < 0:
            raise InvalidInputError(f"training card seconds must be a finite number >= 0, got {self.seconds!r}")
        if not isinstance(self.metrics, dict) or not all(isinstance(k, str) for k in self.metrics):
            raise InvalidInputError("training card metrics must be a dict keyed by name")
        json.dumps(self.to_dict())  # everything must be JSON-serialisable

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainingCard:
        names = {f.name for f in fields(cls)}
        missing = sorted(names - {"details"} - d.keys())
        if missing:
            raise CheckpointError(f"training card lacks {missing}")
        unknown = sorted(d.keys() - names)
        if unknown:
            raise CheckpointError(f"training card has unknown keys {unknown}; put extras under 'details'")
        try:
            return cls(**d)
        except InvalidInputError as e:
            raise CheckpointError(f"invalid training card: {e}") from e

    def markdown(self) -> str:
        """The card as a readable Markdown page."""
        lines = [f"# Training card: {self.model}", ""]
        for key, value in self.to_dict().items():
            if key == "model":
                continue
            if isinstance(value, dict):
                lines.append(f"- **{key}**:" if value else f"- **{key}**: none")
                lines.extend(f"  - {k}: {json.dumps(v) if isinstance(v, dict | list) else v}" for k, v in value.items())
            else:
                lines.append(f"- **{key}**: {value}")
        return "\n".join(lines) + "\n"

    def write(self, folder: str | Path) -> Path:
        """Write ``training_card.json`` and ``training_card.md`` into ``folder`` (atomically each)."""
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        for name, text in ((CARD_JSON, json.dumps(self.to_dict(), indent=2) + "\n"), (CARD_MD, self.markdown())):
            tmp = out / (name + ".tmp")
            tmp.write_text(text)
            os.replace(tmp, out / name)
        return out

    @classmethod
    def read(cls, folder: str | Path) -> TrainingCard:
        return cls.from_dict(read_object(Path(folder) / CARD_JSON, "training card"))
