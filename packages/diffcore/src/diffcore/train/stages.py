"""The stage runner every training recipe uses: ``diffcore train DOMAIN [--stage S] …``.

A recipe is a frozen dataclass of hyperparameters with a ``smoke()`` method
returning a tiny version of itself (a few steps, tiny models), and a set of
named stages, each a function ``stage(recipe, run) -> Path`` that trains one
model, writes it under ``run.weights`` and returns where. The runner parses
the arguments every recipe shares once:

- ``--stage NAME|all`` (default ``all``: every stage in order),
- ``--out DIR``: checkpoints and logs, one folder per stage; a rerun resumes,
- ``--weights ROOT``: where the weights go, laid out like the shipped folder
  (default: the shipped folder; with ``--smoke``: ``OUT/weights``, so a smoke
  run never overwrites shipped weights),
- ``--seed N``, ``--data FOLDER`` (the user's own data), ``--smoke``,
- and one ``--field-name VALUE`` per int / float / str field of the recipe.

Each stage gets :attr:`Run.command`, the exact command that reproduces it,
for its training card.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import torch

from diffcore.errors import InvalidInputError
from diffcore.train.card import TrainingCard, count_parameters, detect_machine, logged_seconds
from diffcore.train.loop import TrainConfig
from diffcore.validate import seed_arg


class Recipe(Protocol):
    """A recipe: a frozen dataclass with a ``seed`` field and a tiny ``smoke()`` version of itself."""

    seed: int

    def smoke(self) -> Any: ...


R = TypeVar("R", bound=Recipe)


@dataclass(frozen=True)
class Run:
    """Where one invocation of a recipe reads and writes, and how to reproduce a stage.

    Attributes:
        out: checkpoints and logs; stage ``S`` trains in ``out / S``.
        weights: the weights root the stages write into.
        data: the user's data folder, or ``None`` for the offline default.
        smoke: whether this is a smoke run (tiny recipe).
        prog: the command's name, e.g. ``"diffcore train prior"``.
        args: the recipe arguments that differ from the defaults, as a command-line tail.
    """

    out: Path
    weights: Path
    data: str | None
    smoke: bool
    prog: str
    args: str = ""

    def command(self, stage: str) -> str:
        """The command that reproduces ``stage`` of this run."""
        return " ".join(p for p in (self.prog, "--stage", stage, self.args) if p)

    def card(
        self,
        stage: str,
        *,
        model: str,
        data: str,
        config: TrainConfig,
        parameters: int | torch.nn.Module,
        metrics: dict[str, Any],
        **details: Any,
    ) -> TrainingCard:
        """The :class:`TrainingCard` of what ``stage`` trained under ``config`` in this run.

        Steps, batch and seed come from ``config``; the wall seconds from the
        stage's log (``out / stage``); the machine is detected; the command
        reproduces the stage. ``parameters`` is a count or the model to count;
        ``details`` (and the loop's config) go under the card's ``details``.
        """
        return TrainingCard(
            model=model,
            data=data,
            steps=config.steps,
            batch=config.batch_size,
            seed=config.seed,
            parameters=parameters if isinstance(parameters, int) else count_parameters(parameters),
            seconds=round(logged_seconds(self.out / stage), 1),
            machine=detect_machine(),
            command=self.command(stage),
            metrics=metrics,
            details={**details, "config": dataclasses.asdict(config)},
        )


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _recipe_fields(recipe: Recipe) -> list[dataclasses.Field]:
    if not dataclasses.is_dataclass(recipe):
        raise InvalidInputError(f"a recipe must be a dataclass, got {type(recipe).__name__}")
    return [f for f in dataclasses.fields(recipe) if type(getattr(recipe, f.name)) in (int, float, str)]


def run_stages(
    argv: Sequence[str] | None,
    domain: str,
    recipe: R,
    stages: Mapping[str, Callable[[R, Run], Path | None]],
    weights: Path,
) -> dict[str, Path | None]:
    """Parse ``argv`` as ``diffcore train DOMAIN`` and run the chosen stages of ``recipe``; returns stage -> what it wrote.

    Args:
        argv: the recipe's arguments (``None``: ``sys.argv[1:]``).
        domain: the domain's name: the command is ``diffcore train DOMAIN`` and ``--out`` defaults to ``runs/DOMAIN``.
        recipe: the default recipe (the shipped run); the first line of its class docstring is the command's help.
        stages: stage name -> stage function, in the order ``all`` runs them.
        weights: the shipped weights root (the default ``--weights``).
    """
    if not stages:
        raise InvalidInputError("a recipe needs at least one stage")
    prog, out = f"diffcore train {domain}", Path("runs") / domain
    description = (type(recipe).__doc__ or prog).strip().split("\n")[0]
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--stage", choices=[*stages, "all"], default="all", help="one stage, or all of them in order")
    p.add_argument("--out", type=Path, default=out, help=f"checkpoints and logs, resumable (default: {out})")
    p.add_argument("--weights", type=Path, default=None, help="where the weights go (default: the shipped folder)")
    p.add_argument("--data", default=None, help="a folder of your own data instead of the offline default")
    p.add_argument("--smoke", action="store_true", help="a tiny recipe: checks every stage end to end in seconds")
    fields = _recipe_fields(recipe)
    group = p.add_argument_group("recipe", "hyperparameters (defaults: the shipped run)")
    for f in fields:
        default = getattr(recipe, f.name)
        kind = seed_arg if f.name == "seed" else type(default)
        group.add_argument(_flag(f.name), dest=f.name, type=kind, default=None, help=f"default {default}")
    a = p.parse_args(argv)
    overrides = {f.name: getattr(a, f.name) for f in fields if getattr(a, f.name) is not None}
    base = recipe.smoke() if a.smoke else recipe
    chosen = dataclasses.replace(base, **overrides)
    tail = [_flag(k) + " " + shlex.quote(str(v)) for k, v in overrides.items() if v != getattr(recipe, k)]
    if "seed" in {f.name for f in fields} and "seed" not in overrides:
        tail.insert(0, f"--seed {chosen.seed}")
    if a.data is not None:
        tail.append("--data " + shlex.quote(str(a.data)))
    if a.smoke:
        tail.append("--smoke")
    run = Run(
        out=a.out,
        weights=a.weights if a.weights is not None else (a.out / "weights" if a.smoke else weights),
        data=a.data,
        smoke=a.smoke,
        prog=prog,
        args=" ".join(tail),
    )
    done: dict[str, Path | None] = {}
    for name in stages if a.stage == "all" else (a.stage,):
        t0 = time.perf_counter()
        done[name] = stages[name](chosen, run)
        print(f"{prog}: stage {name} done in {time.perf_counter() - t0:.0f} s -> {done[name] or run.weights}")
    return done
