"""Typed errors of the driving planner; each says what is wrong and what to do."""

from __future__ import annotations

from diffcore.errors import CheckpointError, InvalidInputError, UnknownNameError


class ObservationError(InvalidInputError):
    """A scene observation has the wrong shape, dtype or non-finite values."""


class UnknownScenarioError(UnknownNameError):
    """A scenario name that diffdrive does not know."""


class AnchorMismatchError(CheckpointError):
    """A checkpoint's stored anchors do not match its config (count, horizon or pose size)."""
