"""The most work one diffcodec call may ask for (light: the CLI checks it before it loads a model).

The bounds of the format itself (sides, pixels, payloads of a blob) are in
:mod:`diffcodec.bitstream`.
"""

#: UNet passes of one decode (OSCAR uses 1, RDEIC 2; more only run DDIM from the same start, for comparison)
MAX_STEPS = 50
#: the most blobs, minutes and decoding subprocesses one fuzz campaign (``diffcodec fuzz``) may ask for
MAX_BLOBS = 10**9
MAX_MINUTES = 7 * 24 * 60
MAX_WORKERS = 64
