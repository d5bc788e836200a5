"""Typed errors of difftext; each says what is wrong and what to do."""

from __future__ import annotations

from diffcore.errors import InvalidInputError


class EmptyPromptError(InvalidInputError):
    """The prompt is empty (or whitespace only) after tokenization."""


class PromptTooLongError(InvalidInputError):
    """The prompt, plus the tokens asked for, does not fit the model's context."""


class BlockSizeError(InvalidInputError):
    """A block size that does not divide the context, or that the model was not trained for."""
