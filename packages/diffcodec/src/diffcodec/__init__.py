"""diffcodec: a diffusion image codec on diffcore's tinysd prior.

OSCAR (one step, one model for all bit-rates) and RDEIC (relay residual
diffusion), with real rANS-coded bitstreams::

    from diffcodec import Codec
    codec = Codec.load("oscar")
    blob = codec.compress(image, rate=0)
    image = codec.decompress(blob)

Importing this package loads no model and does not import gradio.
"""

from diffcore.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "diffcodec.bitstream": ["Header", "read_header"],
        "diffcodec.codec": ["Codec", "RateInfo"],
        "diffcodec.errors": [
            "BadMagicError",
            "BitstreamError",
            "ChecksumError",
            "CodecError",
            "HostileBitstreamError",
            "TruncatedError",
            "UnsupportedImageError",
            "UnsupportedVersionError",
        ],
    },
)
