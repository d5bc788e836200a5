"""Argument validation shared by every domain API and CLI.

One rule per argument kind, so ``seed=-1`` gets the same answer from
``Planner.plan``, ``BlockDiffusionLM.generate`` and ``diffdrive eval --seed``.
"""

from __future__ import annotations

import argparse
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


def seed_arg(text: str) -> int:
    """An ``argparse`` ``type=`` for ``--seed``: the text as an int checked by :func:`check_seed`.

    A bad value is reported by argparse itself (``<prog>: error: argument --seed: …``, exit status 2).
    """
    try:
        value = int(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"must be an integer in [0, 2**32), got {text!r}") from e
    try:
        return check_seed(value)
    except InvalidInputError as e:
        raise argparse.ArgumentTypeError(str(e)) from e
