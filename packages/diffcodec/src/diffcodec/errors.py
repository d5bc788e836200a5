"""diffcodec's typed errors. Every one is a ``ValueError`` (and a ``DiffcoreError``)."""

from __future__ import annotations

from diffcore.errors import InvalidInputError


class CodecError(InvalidInputError):
    """Base of diffcodec's errors."""


class BitstreamError(CodecError):
    """A blob is not a valid diffcodec bitstream (base of the specific cases below)."""


class TruncatedError(BitstreamError):
    """The blob ends before its header or payloads do."""


class BadMagicError(BitstreamError):
    """The blob does not start with diffcodec's magic bytes: it is not a diffcodec file."""


class UnsupportedVersionError(BitstreamError):
    """The blob's format version is not one this diffcodec reads."""


class ChecksumError(BitstreamError):
    """The blob's CRC-32 does not match its content: it was corrupted."""


class HostileBitstreamError(BitstreamError):
    """The header asks for something absurd (huge image, unknown method or rate, payload sizes that do not add up)."""


class UnsupportedImageError(CodecError):
    """An input image cannot be coded (transparent pixels, unknown mode, empty …)."""
