"""The container format: round trips, every typed error, and a fuzz test of mutated blobs.

No model is loaded here: these tests exercise :mod:`diffcodec.bitstream` alone
and run in well under a second each.
"""

from __future__ import annotations

import random
import struct
import time
import tracemalloc

import pytest

from diffcodec import errors
from diffcodec.bitstream import (
    MAGIC,
    MAX_FF_RUN,
    MAX_PAYLOADS,
    MAX_PIXELS,
    MAX_PIXELS_PER_BYTE,
    MAX_SIDE,
    METHODS,
    VERSION,
    Header,
    pack,
    pack_unchecked,
    rans_guard,
    read_header,
    unpack,
)
from diffcodec.fuzz import reseal
from diffcore.errors import DiffcoreError

# header field offsets (see the layout in bitstream.py)
VERSION_AT, METHOD_AT, RATE_AT, COUNT_AT, HEIGHT_AT, WIDTH_AT, LENGTHS_AT = 4, 5, 6, 7, 8, 12, 16


def blob_of(method="rdeic", rate=1, height=48, width=64, payloads=(b"\x01" * 8, b"payload two")) -> bytes:
    return pack(Header(method, rate, height, width), list(payloads))


def rewrite(blob: bytes, offset: int, fmt: str, value: int, *, crc: bool = True) -> bytes:
    """Overwrite one header field (and recompute the CRC unless ``crc=False``)."""
    b = bytearray(blob)
    struct.pack_into(fmt, b, offset, value)
    return reseal(bytes(b)) if crc else bytes(b)


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("method", sorted(METHODS))
@pytest.mark.parametrize(
    "payloads",
    [[b""], [b"x"], [b"\x00" * 8, b"\xff" * 300], [bytes(range(256))] * MAX_PAYLOADS, [b"", b"a", b""]],
    ids=["one-empty", "one-byte", "two", "eight", "with-empties"],
)
def test_pack_unpack_round_trip(method, payloads):
    header = Header(method, 3, 17, 1001)
    blob = pack(header, payloads)
    assert len(blob) == 16 + 4 * len(payloads) + sum(map(len, payloads)) + 4
    assert blob[:4] == MAGIC and blob[VERSION_AT] == VERSION and blob[METHOD_AT] == METHODS[method]
    assert unpack(blob) == (header, payloads)
    assert read_header(blob) == header
    assert unpack(bytearray(blob)) == unpack(memoryview(blob)) == (header, payloads)
    assert header.pixels == 17 * 1001


@pytest.mark.parametrize(
    "size", [(1, 1), (1, MAX_SIDE), (MAX_SIDE, 1), (2048, 2048), (MAX_PIXELS // MAX_SIDE, MAX_SIDE)], ids=str
)
def test_extreme_but_legal_sizes_round_trip(size):
    header = Header("oscar", 0, *size)
    payload = bytes(size[0] * size[1] // MAX_PIXELS_PER_BYTE)  # the fewest bytes that may announce this size
    assert unpack(pack(header, [payload]))[0] == header


def test_an_announced_size_must_be_backed_by_the_blob_length():
    """A forged 60-byte RDEIC blob once announced 2048×512 pixels and bought two minutes of decoding."""
    forged = pack_unchecked(Header("rdeic", 0, 2048, 512), [bytes(range(16)), bytes(range(16, 32))])
    assert len(forged) == 60
    with pytest.raises(errors.HostileBitstreamError, match="60 bytes announces 2048x512 pixels"):
        unpack(forged)
    with pytest.raises(errors.HostileBitstreamError, match="per byte"):
        pack(Header("rdeic", 0, 2048, 512), [bytes(range(16)), bytes(range(16, 32))])


@pytest.mark.parametrize(
    "header, payloads",
    [
        (Header("jpeg", 0, 8, 8), [b""]),
        (Header("oscar", 256, 8, 8), [b""]),
        (Header("oscar", -1, 8, 8), [b""]),
        (Header("oscar", 0, 8, 8), []),
        (Header("oscar", 0, 8, 8), [b""] * (MAX_PAYLOADS + 1)),
        (Header("oscar", 0, 0, 8), [b""]),
        (Header("oscar", 0, 8, 0), [b""]),
        (Header("oscar", 0, MAX_SIDE + 1, 1), [b""]),
        (Header("oscar", 0, 2049, 2048), [b""]),
        (Header("oscar", 0, 10**9, 10**9), [b""]),
    ],
    ids=["method", "rate-256", "rate-neg", "no-payload", "9-payloads", "h0", "w0", "side", "pixels", "1e9"],
)
def test_pack_refuses_what_unpack_would(header, payloads):
    with pytest.raises(errors.HostileBitstreamError):
        pack(header, payloads)


# --------------------------------------------------------------------------- every error class


@pytest.mark.parametrize(
    "cls",
    [
        errors.CodecError,
        errors.BitstreamError,
        errors.TruncatedError,
        errors.BadMagicError,
        errors.UnsupportedVersionError,
        errors.ChecksumError,
        errors.HostileBitstreamError,
        errors.UnsupportedImageError,
    ],
)
def test_every_error_is_a_value_error_and_a_codec_error(cls):
    assert issubclass(cls, ValueError) and issubclass(cls, errors.CodecError) and issubclass(cls, DiffcoreError)
    if cls not in (errors.CodecError, errors.UnsupportedImageError):
        assert issubclass(cls, errors.BitstreamError)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_truncated_at_every_length(method):
    blob = blob_of(method, payloads=[b"\x07" * 12, b"\x09" * 5])
    for n in range(len(blob)):
        with pytest.raises(errors.TruncatedError):
            unpack(blob[:n])


def test_wrong_magic():
    blob = blob_of()
    for bad in [b"XFCX" + blob[4:], b"dfcx" + blob[4:], b"\x89PNG\r\n\x1a\n" + bytes(40), b"GIF89a", b"\x00", b"D\x00"]:
        with pytest.raises(errors.BadMagicError):
            unpack(bad)
    with pytest.raises(errors.BadMagicError):
        unpack("DFCX not bytes")  # type: ignore[arg-type]


@pytest.mark.parametrize("version", [0, 1, 3, 255])
@pytest.mark.parametrize("crc", [True, False], ids=["resealed", "stale-crc"])
def test_wrong_version(version, crc):
    with pytest.raises(errors.UnsupportedVersionError, match=f"version {version}"):
        unpack(rewrite(blob_of(), VERSION_AT, "<B", version, crc=crc))


def test_a_format_v1_blob_is_refused_naming_its_version():
    """Blobs of the codec on tinysd v1 (format 1) cannot be decoded: their models are gone; the message says so."""
    with pytest.raises(errors.UnsupportedVersionError, match=r"version 1 \(diffcodec on tinysd v1.*reads version 2"):
        unpack(rewrite(blob_of(), VERSION_AT, "<B", 1))


def test_checksum():
    blob = blob_of(payloads=[b"\x01" * 8, b"\x02" * 8])
    for pos in [RATE_AT, len(blob) - 10, len(blob) - 5, len(blob) - 1]:
        bad = bytearray(blob)
        bad[pos] ^= 0x10
        with pytest.raises(errors.ChecksumError):
            unpack(bytes(bad))


def test_trailing_bytes():
    blob = blob_of()
    for extra in [b"\x00", b"junk", blob]:
        with pytest.raises(errors.HostileBitstreamError, match="trailing"):
            unpack(blob + extra)


@pytest.mark.parametrize(
    "height, width",
    [
        (10**9, 10**9),
        (2**32 - 1, 2**32 - 1),
        (0, 64),
        (48, 0),
        (0, 0),
        (MAX_SIDE + 1, 1),
        (1, MAX_SIDE + 1),
        (2049, 2048),
        (4096, 4096),
    ],
    ids=str,
)
def test_absurd_dimensions_are_refused_cheaply(height, width):
    blob = rewrite(rewrite(blob_of(), HEIGHT_AT, "<I", height), WIDTH_AT, "<I", width)
    tracemalloc.start()
    t = time.perf_counter()
    try:
        with pytest.raises(errors.HostileBitstreamError, match="image size"):
            unpack(blob)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - t < 0.5 and peak < 1 << 20


@pytest.mark.parametrize("method_id", [0, 4, 255])
def test_unknown_method(method_id):
    with pytest.raises(errors.HostileBitstreamError, match="method"):
        unpack(rewrite(blob_of(), METHOD_AT, "<B", method_id))


@pytest.mark.parametrize("count", [0, MAX_PAYLOADS + 1, 255])
def test_wrong_payload_counts(count):
    with pytest.raises(errors.HostileBitstreamError, match="payloads"):
        unpack(rewrite(blob_of(), COUNT_AT, "<B", count))


def test_a_payload_count_the_lengths_do_not_match():
    blob = blob_of(payloads=[b"\x01" * 8, b"\x02" * 8])  # table: 2 lengths
    with pytest.raises(errors.BitstreamError):  # 3 announced: the payload bytes are read as a length
        unpack(rewrite(blob, COUNT_AT, "<B", 3))
    with pytest.raises(errors.BitstreamError):  # 1 announced: the second length becomes payload
        unpack(rewrite(blob, COUNT_AT, "<B", 1))


@pytest.mark.parametrize("which", [0, 1])
@pytest.mark.parametrize("length", [9, 100, 2**31, 2**32 - 1])
def test_payload_lengths_summing_past_the_end(which, length):
    blob = blob_of(payloads=[b"\x01" * 8, b"\x02" * 8])
    t = time.perf_counter()
    with pytest.raises(errors.TruncatedError, match="announces"):
        unpack(rewrite(blob, LENGTHS_AT + 4 * which, "<I", length))
    assert time.perf_counter() - t < 0.1


def test_payload_lengths_summing_short_of_the_end():
    blob = blob_of(payloads=[b"\x01" * 8, b"\x02" * 8])
    with pytest.raises(errors.HostileBitstreamError, match="trailing"):
        unpack(rewrite(blob, LENGTHS_AT, "<I", 7))


def test_eight_huge_lengths():
    blob = blob_of(payloads=[b"ab"] * MAX_PAYLOADS)
    for i in range(MAX_PAYLOADS):
        blob = rewrite(blob, LENGTHS_AT + 4 * i, "<I", 2**32 - 1)
    with pytest.raises(errors.TruncatedError):
        unpack(blob)


def test_rate_index_is_not_the_containers_business():
    """Any rate byte parses; each codec checks it against its own rates (see test_codec_robust)."""
    assert unpack(rewrite(blob_of(), RATE_AT, "<B", 255))[0].rate == 255


# --------------------------------------------------------------------------- rans_guard


def test_rans_guard_pads_with_zeros():
    s = bytes(range(1, 41))
    out = rans_guard(s, 100)
    assert out[: len(s)] == s and set(out[len(s) :]) == {0} and len(out) == len(s) + 12 * 100 + 1024
    assert len(rans_guard(b"\xff" * 8 + s, 100)) == len(s) + 8 + 12 * 100 + 16 * 8 + 1024


@pytest.mark.parametrize(
    "stream, symbols",
    [(b"", 10), (b"\x01", 10), (b"\x01" * 7, 10), (b"\x01" * 9, 10), (b"\x01" * 49, 10), (b"\x01" * 92, 10)],
    ids=["empty", "1", "7", "9", "unaligned", "too-long"],
)
def test_rans_guard_refuses_what_compressai_never_writes(stream, symbols):
    with pytest.raises(errors.HostileBitstreamError):
        rans_guard(stream, symbols)


def test_rans_guard_takes_up_to_two_words_per_symbol():
    assert rans_guard(b"\x01" * 88, 10)[:88] == b"\x01" * 88


def test_rans_guard_refuses_long_runs_of_ff():
    rans_guard(b"\x01" * 4 + b"\xff" * MAX_FF_RUN + b"\x01" * 4, 1000)
    with pytest.raises(errors.HostileBitstreamError, match="0xFF"):
        rans_guard(b"\x01" * 4 + b"\xff" * (MAX_FF_RUN + 4), 1000)


# --------------------------------------------------------------------------- fuzz

_INTERESTING = [0, 1, 2, 3, 4, 7, 8, 9, 15, 16, 255, 256, 2**16 - 1, 2**16, 2**22, 2**31 - 1, 2**31, 2**32 - 1]
_FIELDS = [(VERSION_AT, "<B"), (METHOD_AT, "<B"), (RATE_AT, "<B"), (COUNT_AT, "<B"), (HEIGHT_AT, "<I"), (WIDTH_AT, "<I")]


def _mutate(rng: random.Random, blob: bytes, others: list[bytes]) -> bytes:
    b = bytearray(blob)
    kind = rng.randrange(10)
    if kind == 0:  # bit flips
        for _ in range(rng.randint(1, 3)):
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
    elif kind == 1:  # byte overwrites
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(len(b))] = rng.randrange(256)
    elif kind == 2:  # truncation
        del b[rng.randrange(len(b)) :]
    elif kind == 3:  # insertion
        pos = rng.randrange(len(b) + 1)
        b[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    elif kind == 4:  # deletion
        pos = rng.randrange(len(b))
        del b[pos : pos + rng.randint(1, 8)]
    elif kind == 5:  # splice with another blob
        o = rng.choice(others)
        b = b[: rng.randrange(len(b) + 1)] + o[rng.randrange(len(o) + 1) :]
    elif kind in (6, 7):  # a header field rewritten, CRC recomputed: exercises the checks after the CRC's
        off, fmt = rng.choice(_FIELDS)
        struct.pack_into(fmt, b, off, rng.choice(_INTERESTING) % (256 if fmt == "<B" else 2**32))
        return reseal(bytes(b))
    elif kind == 8:  # a payload length rewritten, CRC recomputed
        n = b[COUNT_AT]
        i = rng.randrange(n)
        (old,) = struct.unpack_from("<I", b, LENGTHS_AT + 4 * i)
        new = rng.choice([old - 1, old + 1, old + rng.randint(2, 64), 0, rng.choice(_INTERESTING)]) % 2**32
        struct.pack_into("<I", b, LENGTHS_AT + 4 * i, new)
        return reseal(bytes(b))
    else:  # payload bytes changed, CRC recomputed: a valid container
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(LENGTHS_AT, len(b) - 4)] = rng.randrange(256)
        return reseal(bytes(b))
    if rng.random() < 0.3 and len(b) >= 4:
        return reseal(bytes(b))
    return bytes(b)


def test_fuzz_mutated_blobs_decode_or_raise_a_bitstream_error():
    rng = random.Random(20240401)
    bases = [
        blob_of("oscar", 0, 48, 64, [b"\x3c\x00" * 4, bytes(range(12))]),
        blob_of("rdeic", 2, 1, 1, [b"\x01\x02\x03\x04" * 4, b"\xff" * 8]),
        blob_of("hyperprior", 1, 333, 517, [b"\x00" * 8, b"w" * 96]),  # sizes backed by the blob's length
        blob_of("oscar", 3, 2048, 2048, [bytes(range(256))] * 8),
        blob_of("rdeic", 0, 7, 9, [b""] * MAX_PAYLOADS),
    ]
    outcomes: dict[str, int] = {}
    t = time.perf_counter()
    n = 3000
    for i in range(n):
        base = bases[i % len(bases)]
        blob = _mutate(rng, base, bases)
        try:
            header, payloads = unpack(blob)
        except errors.BitstreamError as e:
            name = type(e).__name__
        else:  # whatever parses is canonical: it packs back to the same bytes
            assert pack(header, payloads) == blob
            assert 1 <= header.height <= MAX_SIDE and 1 <= header.width <= MAX_SIDE and header.pixels <= MAX_PIXELS
            assert header.pixels <= MAX_PIXELS_PER_BYTE * len(blob)
            name = "parsed"
        outcomes[name] = outcomes.get(name, 0) + 1
    elapsed = time.perf_counter() - t
    assert sum(outcomes.values()) == n
    # every check was reached, including those after the CRC is known to be right
    for name in [
        "parsed",
        "TruncatedError",
        "BadMagicError",
        "UnsupportedVersionError",
        "ChecksumError",
        "HostileBitstreamError",
    ]:
        assert outcomes.get(name, 0) >= 20, outcomes
    assert elapsed < 10, f"{n} blobs took {elapsed:.1f}s"
