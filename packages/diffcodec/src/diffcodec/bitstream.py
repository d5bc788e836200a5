"""diffcodec's container format (version 1), parsed without trusting a byte.

Layout, all integers little-endian::

    offset size field
    0      4    magic b"DFCX"
    4      1    format version (1)
    5      1    method id (1 = oscar, 2 = rdeic, 3 = hyperprior)
    6      1    rate index
    7      1    number of payloads n (1 … 8)
    8      4    image height (1 … 16384)
    12     4    image width  (1 … 16384); height·width at most 2²² (4.2 MP)
    16     4·n  payload lengths
    …      Σ    payloads, in order
    end-4  4    CRC-32 of every byte before it

The total length must equal ``16 + 4n + Σ lengths + 4`` exactly, so a length
field can never make the parser read (or allocate) past the blob. What the
payloads hold is the method's business (:mod:`diffcodec.codec`).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from diffcodec.errors import BadMagicError, ChecksumError, HostileBitstreamError, TruncatedError, UnsupportedVersionError

MAGIC = b"DFCX"
VERSION = 1
METHODS: dict[str, int] = {"oscar": 1, "rdeic": 2, "hyperprior": 3}
MAX_SIDE = 16384
#: the most pixels one blob may hold: decoding runs the UNet on the whole latent
MAX_PIXELS = 1 << 22
MAX_PAYLOADS = 8
_FIXED = struct.Struct("<4sBBBBII")


@dataclass(frozen=True)
class Header:
    method: str
    rate: int
    height: int
    width: int

    @property
    def pixels(self) -> int:
        return self.height * self.width


def _check_size(height: int, width: int) -> None:
    if not (1 <= height <= MAX_SIDE and 1 <= width <= MAX_SIDE):
        raise HostileBitstreamError(f"image size {height}x{width} is outside 1…{MAX_SIDE} per side")
    if height * width > MAX_PIXELS:
        raise HostileBitstreamError(f"image size {height}x{width} exceeds diffcodec's {MAX_PIXELS} pixels")


def pack(header: Header, payloads: list[bytes]) -> bytes:
    """Header + payloads -> a blob (with its CRC-32)."""
    if header.method not in METHODS:
        raise HostileBitstreamError(f"unknown method {header.method!r}; known: {sorted(METHODS)}")
    if not 0 <= header.rate < 256:
        raise HostileBitstreamError(f"rate index {header.rate} does not fit a byte")
    if not 1 <= len(payloads) <= MAX_PAYLOADS:
        raise HostileBitstreamError(f"{len(payloads)} payloads; 1…{MAX_PAYLOADS} allowed")
    _check_size(header.height, header.width)
    head = _FIXED.pack(MAGIC, VERSION, METHODS[header.method], header.rate, len(payloads), header.height, header.width)
    body = head + struct.pack(f"<{len(payloads)}I", *map(len, payloads)) + b"".join(payloads)
    return body + struct.pack("<I", zlib.crc32(body))


def read_header(blob: bytes) -> Header:
    """The header of ``blob``, checked (magic, version, sizes, CRC); raises a :class:`BitstreamError` subclass."""
    return unpack(blob)[0]


def unpack(blob: bytes) -> tuple[Header, list[bytes]]:
    """A blob -> (header, payloads). Checks everything before slicing anything."""
    if not isinstance(blob, (bytes, bytearray, memoryview)):
        raise BadMagicError(f"a diffcodec blob is bytes, got {type(blob).__name__}")
    blob = bytes(blob)
    if len(blob) < 4 or blob[:4] != MAGIC[: len(blob[:4])]:
        raise BadMagicError("not a diffcodec bitstream (the magic bytes 'DFCX' are missing)")
    if len(blob) < _FIXED.size + 4:
        raise TruncatedError(f"blob of {len(blob)} bytes is shorter than a diffcodec header")
    magic, version, method_id, rate, n, height, width = _FIXED.unpack_from(blob)
    if version != VERSION:
        raise UnsupportedVersionError(f"bitstream format version {version}; this diffcodec reads version {VERSION}")
    methods = {v: k for k, v in METHODS.items()}
    if method_id not in methods:
        raise HostileBitstreamError(f"unknown method id {method_id}")
    if not 1 <= n <= MAX_PAYLOADS:
        raise HostileBitstreamError(f"{n} payloads; 1…{MAX_PAYLOADS} allowed")
    _check_size(height, width)
    table_end = _FIXED.size + 4 * n
    if len(blob) < table_end + 4:
        raise TruncatedError(f"blob of {len(blob)} bytes ends inside its payload table")
    lengths = struct.unpack_from(f"<{n}I", blob, _FIXED.size)
    expected = table_end + sum(lengths) + 4
    if len(blob) < expected:
        raise TruncatedError(f"blob is {len(blob)} bytes but its header announces {expected}")
    if len(blob) > expected:
        raise HostileBitstreamError(f"blob is {len(blob)} bytes but its header announces {expected}: trailing data")
    (crc,) = struct.unpack_from("<I", blob, expected - 4)
    if zlib.crc32(blob[: expected - 4]) != crc:
        raise ChecksumError("CRC-32 mismatch: the blob was corrupted or truncated")
    payloads, pos = [], table_end
    for length in lengths:
        payloads.append(blob[pos : pos + length])
        pos += length
    return Header(methods[method_id], rate, height, width), payloads
