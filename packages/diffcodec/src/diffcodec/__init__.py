"""diffcodec: a diffusion image codec on diffcore's tinysd prior.

OSCAR (one step, one model for all bit-rates) and RDEIC (relay residual
diffusion), with real rANS / fixed-length bitstreams::

    from diffcodec import Codec
    codec = Codec.load("oscar")
    blob = codec.compress(image, rate=0)
    image = codec.decompress(blob)

Importing this package loads no model and does not import gradio.
"""

from diffcodec.bitstream import Header, read_header
from diffcodec.codec import Codec, RateInfo
from diffcodec.errors import (
    BadMagicError,
    BitstreamError,
    ChecksumError,
    CodecError,
    HostileBitstreamError,
    TruncatedError,
    UnsupportedImageError,
    UnsupportedVersionError,
)

__all__ = [
    "BadMagicError",
    "BitstreamError",
    "ChecksumError",
    "Codec",
    "CodecError",
    "Header",
    "HostileBitstreamError",
    "RateInfo",
    "TruncatedError",
    "UnsupportedImageError",
    "UnsupportedVersionError",
    "read_header",
]
