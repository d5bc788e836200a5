"""Typed errors raised by diffcore and the domain packages.

Every error a user can cause (bad input, a missing file, an unknown name) is one
of these, and its message says what to do about it. All derive from
:class:`DiffcoreError`; the ones that describe a bad argument also derive from
``ValueError`` so generic callers can catch them the usual way.
"""

from __future__ import annotations


class DiffcoreError(Exception):
    """Base class of every error diffcore raises on purpose."""


class InvalidInputError(DiffcoreError, ValueError):
    """An argument has the wrong type, shape, mode, size or range."""


class UnknownNameError(DiffcoreError, ValueError):
    """A registry lookup (sampler, domain, variant …) found no such name."""


class CheckpointError(DiffcoreError):
    """A checkpoint is missing, incomplete or corrupt."""


class PickleRefusedError(CheckpointError):
    """A checkpoint is in a pickle-based format, which diffcore never loads."""


class ArtifactMismatchError(DiffcoreError, ValueError):
    """A fitted artifact (cache schedule, quantization state) does not fit this model or sampler.

    Raised when its model hash differs from the model's, or its sampler and
    step count differ from the run's: refit it on this model (the message
    names the command).
    """


class DataError(DiffcoreError):
    """A dataset could not be built: no readable images, images too small …"""


class PluginError(DiffcoreError):
    """An installed domain plugin is broken (import fails, contract not met)."""
