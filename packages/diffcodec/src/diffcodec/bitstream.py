"""diffcodec's container format (version 2), parsed without trusting a byte.

Layout, all integers little-endian::

    offset size field
    0      4    magic b"DFCX"
    4      1    format version (2; version 1 blobs came from the codec on tinysd v1, whose models are gone)
    5      1    method id (1 = oscar, 2 = rdeic, 3 = hyperprior)
    6      1    rate index
    7      1    number of payloads n (1 … 8)
    8      4    image height (1 … 16384)
    12     4    image width  (1 … 16384); height·width at most 2²² (4.2 MP)
                and at most MAX_PIXELS_PER_BYTE times the blob's length
    16     4·n  payload lengths
    …      Σ    payloads, in order
    end-4  4    CRC-32 of every byte before it

The total length must equal ``16 + 4n + Σ lengths + 4`` exactly, so a length
field can never make the parser read (or allocate) past the blob. The size a
blob announces must be backed by its length (:data:`MAX_PIXELS_PER_BYTE`):
decoding costs UNet passes over the whole latent, so a forged 60-byte blob
that announced 2048×512 pixels bought about two minutes of CPU; now a blob buys
at most what a real one of its length could. What the
payloads hold is the method's business (:mod:`diffcodec.codec`); the rANS
payloads go through :func:`rans_guard` before compressai's decoder sees them.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np

from diffcodec.errors import BadMagicError, ChecksumError, HostileBitstreamError, TruncatedError, UnsupportedVersionError

MAGIC = b"DFCX"
VERSION = 2
#: what each older format version was, for the refusal message
RETIRED_VERSIONS = {1: "diffcodec on tinysd v1 (OSCAR indices at fixed width); its models were retired with tinysd v1"}
METHODS: dict[str, int] = {"oscar": 1, "rdeic": 2, "hyperprior": 3}
MAX_SIDE = 16384
#: the most pixels one blob may hold: decoding runs the UNet on the whole latent
MAX_PIXELS = 1 << 22
MAX_PAYLOADS = 8
#: the most pixels per byte of blob: the most compressible images there are (flat, one colour) stay under a
#: quarter of it with every method at its lowest rate (tests/test_codec_robust.py checks 256² flat images), so a
#: real blob is never refused while the decoder's work stays bounded by the blob's length. 4096 since format 2:
#: entropy-coded OSCAR indices made a flat 256² image at the lowest rate a ~96-byte blob (680 pixels per byte)
MAX_PIXELS_PER_BYTE = 4096
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


def _check_size(height: int, width: int, length: int) -> None:
    """The announced size, for a blob of ``length`` bytes."""
    if not (1 <= height <= MAX_SIDE and 1 <= width <= MAX_SIDE):
        raise HostileBitstreamError(f"image size {height}x{width} is outside 1…{MAX_SIDE} per side")
    if height * width > MAX_PIXELS:
        raise HostileBitstreamError(f"image size {height}x{width} exceeds diffcodec's {MAX_PIXELS} pixels")
    if height * width > MAX_PIXELS_PER_BYTE * length:
        raise HostileBitstreamError(
            f"a blob of {length} bytes announces {height}x{width} pixels: more than {MAX_PIXELS_PER_BYTE} per byte, "
            "which no image compresses to; the header was forged"
        )


def pack(header: Header, payloads: list[bytes]) -> bytes:
    """Header + payloads -> a blob (with its CRC-32)."""
    if header.method not in METHODS:
        raise HostileBitstreamError(f"unknown method {header.method!r}; known: {sorted(METHODS)}")
    if not 0 <= header.rate < 256:
        raise HostileBitstreamError(f"rate index {header.rate} does not fit a byte")
    if not 1 <= len(payloads) <= MAX_PAYLOADS:
        raise HostileBitstreamError(f"{len(payloads)} payloads; 1…{MAX_PAYLOADS} allowed")
    blob = pack_unchecked(header, payloads)
    _check_size(header.height, header.width, len(blob))
    return blob


def pack_unchecked(header: Header, payloads: list[bytes]) -> bytes:
    """The container for any size and payloads, with a valid CRC: what a forger writes (fuzzing uses it).

    Only what the fixed-width fields cannot hold is refused (by ``struct``);
    :func:`unpack` is the gate every blob passes.
    """
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
    if blob[:4] != MAGIC[: len(blob[:4])]:
        raise BadMagicError("not a diffcodec bitstream (the magic bytes 'DFCX' are missing)")
    if len(blob) < _FIXED.size + 4:
        raise TruncatedError(f"blob of {len(blob)} bytes is shorter than a diffcodec header")
    _magic, version, method_id, rate, n, height, width = _FIXED.unpack_from(blob)
    if version != VERSION:
        was = f" ({RETIRED_VERSIONS[version]})" if version in RETIRED_VERSIONS else ""
        raise UnsupportedVersionError(f"bitstream format version {version}{was}; this diffcodec reads version {VERSION}")
    methods = {v: k for k, v in METHODS.items()}
    if method_id not in methods:
        raise HostileBitstreamError(f"unknown method id {method_id}")
    if not 1 <= n <= MAX_PAYLOADS:
        raise HostileBitstreamError(f"{n} payloads; 1…{MAX_PAYLOADS} allowed")
    _check_size(height, width, len(blob))
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


#: the longest run of 0xFF bytes :func:`rans_guard` lets through (compressai's encoder never writes one near it)
MAX_FF_RUN = 64


def _longest_ff_run(data: bytes) -> int:
    ff = np.frombuffer(data, dtype=np.uint8) == 0xFF
    if not ff.any():
        return 0
    edges = np.flatnonzero(np.diff(np.concatenate(([0], ff.view(np.int8), [0]))))
    return int((edges[1::2] - edges[::2]).max())


def rans_guard(stream: bytes, symbols: int, what: str = "rANS payload") -> bytes:
    """Check one compressai rANS string that should decode to ``symbols`` symbols and return it
    zero-padded so that compressai's decoder cannot read past its buffer.

    compressai's ``RansDecoder.decode_with_indexes`` (C++) trusts its input: it
    reads 8 bytes to start and then a 32-bit word whenever its state runs low,
    without ever comparing its pointer with the string's end. A short or forged
    string therefore makes it read past the buffer: a 1-byte payload under a
    2048×2048 header crashed the interpreter (SIGSEGV) in our tests, and longer
    forged strings decoded heap garbage (non-deterministic output).

    What compressai writes is whole 32-bit words, at least the 2 of the final
    state and at most 2 per symbol (a symbol costs at most 16 bits plus 4-bit
    escape groups, under 64 bits in all), and near-random bits, so a string of
    another length or with a run of more than
    :data:`MAX_FF_RUN` 0xFF bytes is refused. A string that passes is followed by
    ``12·symbols + 16·R + 1024`` zero bytes (R: its longest 0xFF run), which
    bounds every read of the decoder, whatever the bytes: per symbol it reads at
    most one word to decode it, plus, for an escape ("bypass") value, words for
    4-bit groups whose count is itself sent in 4-bit groups. Past the real data
    only zero words come in; a count can then run on for at most the 16
    nibbles the 64-bit state held, and a symbol that pops all 64 of them leaves
    the state at 0, where every later symbol reads exactly one zero word. So past
    the end a symbol reads at most 3 words, the one that empties the state 38,
    the one during which the data ends ``54 + 4R`` (a count run can also draw on
    the data's 0xFF bytes), plus 2 for the start and 1 for a partial word:
    ``4·(3·symbols + 4R + 95)`` bytes in all, under the padding. (Checked against
    a Python port of the decoder that counts its reads, on ~10⁴ forged strings.)
    """
    n = len(stream)
    if n < 8 or n % 4 or n > 8 * symbols + 8:
        raise HostileBitstreamError(
            f"{what} of {n} bytes cannot be a rANS string for {symbols} symbols (whole 32-bit words, 8…{8 * symbols + 8} bytes)"
        )
    run = _longest_ff_run(stream)
    if run > MAX_FF_RUN:
        raise HostileBitstreamError(f"{what} holds a run of {run} 0xFF bytes, which no rANS encoder writes")
    return bytes(stream) + bytes(12 * symbols + 16 * run + 1024)
