"""Argument validation shared by every domain API and CLI.

One rule per argument kind, so ``seed=-1`` gets the same answer from
``Planner.plan``, ``BlockDiffusionLM.generate`` and ``diffdrive eval --seed``,
and every count of work (steps, tokens, episodes) has a documented maximum:
:func:`check_count` in the API, :func:`count_arg` in the CLI.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import numpy as np

from diffcore.errors import InvalidInputError

#: seeds are in ``[0, SEED_LIMIT)``: what ``numpy.random.default_rng`` and ``torch.Generator.manual_seed`` both take
SEED_LIMIT = 2**32


def check_seed(seed: Any, name: str = "seed") -> int:
    """``seed`` as a plain ``int`` in ``[0, 2**32)``, or :class:`InvalidInputError` naming the value.

    Python and numpy integers are accepted; ``bool`` (an ``int`` subclass that is never meant as a seed),
    ``float``, ``str`` and ``None`` are refused.
    """
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise InvalidInputError(f"{name} must be an integer in [0, 2**32), got {seed!r} ({type(seed).__name__})")
    if not 0 <= int(seed) < SEED_LIMIT:
        raise InvalidInputError(f"{name} must be an integer in [0, 2**32), got {seed!r}")
    return int(seed)


def check_count(value: Any, name: str, *, low: int = 1, high: int) -> int:
    """``value`` as a plain ``int`` in ``[low, high]`` (a step, token or episode count), or :class:`InvalidInputError`.

    ``bool``, ``float`` (even ``8.0``), ``str`` and ``None`` are refused, like seeds.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise InvalidInputError(f"{name} must be an integer in [{low}, {high}], got {value!r} ({type(value).__name__})")
    if not low <= int(value) <= high:
        raise InvalidInputError(f"{name} must be an integer in [{low}, {high}], got {value!r}")
    return int(value)


def _int_arg(check: Callable[[int], int], usage: str) -> Callable[[str], int]:
    """An ``argparse`` ``type=``: the text as an int checked by ``check``; argparse reports a refusal (status 2)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(f"must be {usage}, got {text!r}") from e
        try:
            return check(value)
        except InvalidInputError as e:
            raise argparse.ArgumentTypeError(str(e)) from e

    return parse


#: ``type=seed_arg`` for ``--seed``: :func:`check_seed`'s rule (``<prog>: error: argument --seed: …``)
seed_arg = _int_arg(check_seed, "an integer in [0, 2**32)")


def count_arg(name: str, *, low: int = 1, high: int) -> Callable[[str], int]:
    """``type=`` for a count option (``--steps``, ``--episodes``): :func:`check_count`'s rule, reported by argparse."""
    return _int_arg(lambda v: check_count(v, name, low=low, high=high), f"an integer in [{low}, {high}]")
