"""difftext's argument checks, free of torch: the API, the CLI (before it loads a model) and the UI share them.

Every bad value is a typed error (:class:`~diffcore.errors.InvalidInputError`
or a subclass) naming the value and the allowed range. Token counts are
bounded by the model's context (checked once the prompt is tokenized).
"""

from __future__ import annotations

import math
from typing import Any

from diffcore.errors import InvalidInputError
from diffcore.validate import check_count
from difftext.errors import EmptyPromptError

#: the block sizes SDAR is trained for (``difftext.sdar``)
BLOCK_SIZES = (4, 8, 16)
#: the most tokens one generation may ask for (the shipped models' context; the prompt's tokens count too)
MAX_NEW_TOKENS = 256
#: the most held-out prompts one ``difftext eval`` scores
MAX_PROMPTS = 1000


def check_prompt(prompt: Any) -> str:
    """A non-empty string that is valid Unicode (no lone surrogates)."""
    if not isinstance(prompt, str):
        raise InvalidInputError(f"the prompt must be a string, got {type(prompt).__name__}")
    if not prompt.strip():
        raise EmptyPromptError("the prompt is empty; give at least one word")
    try:
        prompt.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InvalidInputError(f"the prompt is not valid Unicode (character {e.start} is a lone surrogate)") from e
    return prompt


def _real(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInputError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def check_params(threshold: float, temperature: float, max_new_tokens: int) -> None:
    """``threshold`` in (0, 1], ``temperature`` finite and >= 0, ``max_new_tokens`` an integer in [1, MAX_NEW_TOKENS]."""
    if not 0 < _real("threshold", threshold) <= 1:
        raise InvalidInputError(f"threshold must be in (0, 1], got {threshold}")
    if _real("temperature", temperature) < 0:
        raise InvalidInputError(f"temperature must be >= 0, got {temperature}")
    check_count(max_new_tokens, "max_new_tokens", high=MAX_NEW_TOKENS)


def check_steps(block: int, steps: int | None) -> int:
    """Denoising steps per block: ``None`` means ``block``; otherwise an integer in [1, block]."""
    if steps is None:
        return block
    return check_count(steps, "steps per block", high=block)


def check_refresh(refresh: int) -> int:
    """dKV-Cache's refresh interval: an integer >= 0 (0: never recompute the block)."""
    return check_count(refresh, "refresh", low=0, high=MAX_NEW_TOKENS)
