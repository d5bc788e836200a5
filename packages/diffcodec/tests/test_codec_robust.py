"""Hostile and corrupted blobs through the real codecs, the rANS guard, and determinism.

* a fuzz campaign (``diffcodec fuzz``'s engine) of mutated real blobs, most
  of them resealed with a valid CRC so that they reach the payload decoders:
  each decodes to an image of the header's size or raises a ``diffcodec``
  error, never anything else; and a check that the engine catches a decoder
  that crashes or hangs;
* targeted hostile payloads (method mismatch, rate out of range, wrong payload
  counts and sizes, short / forged rANS strings under a huge header, which
  crashed compressai's decoder before :func:`~diffcodec.bitstream.rans_guard`);
* a Python port of compressai's rANS decoder that counts its reads, checking on
  forged strings that the guard's zero padding bounds every read;
* compress → decompress is deterministic across calls and across 1 vs 2 torch threads.
"""

from __future__ import annotations

import json
import os
import random
import signal
import struct
import subprocess
import sys
import time
import zlib

import numpy as np
import pytest

from diffcodec import Codec, CodecError, HostileBitstreamError
from diffcodec.bitstream import MAX_PAYLOADS, Header, pack_unchecked, rans_guard, unpack
from diffcodec.fuzz import MUTATIONS, campaign, mutate, write_findings

METHODS = ("oscar", "rdeic", "hyperprior")
COUNT_AT, HEIGHT_AT, WIDTH_AT, LENGTHS_AT = 7, 8, 12, 16


@pytest.fixture(scope="module")
def codecs(codec_path) -> dict[str, Codec]:
    return {m: Codec.load(m, path=codec_path) for m in METHODS}


@pytest.fixture(scope="module")
def blobs(codecs, small_image) -> dict[str, list[bytes]]:
    """Per method: real blobs of the 48×64 photo at the lowest and the highest rate."""
    return {m: [c.compress(small_image, 0), c.compress(small_image, len(c.rates) - 1)] for m, c in codecs.items()}


def decode_or_codec_error(codec: Codec, blob: bytes) -> str:
    """Decode ``blob``: 'image' (of the header's size) or the name of the diffcodec error. Anything else propagates."""
    try:
        out = codec.decompress(blob)
    except CodecError as e:
        return type(e).__name__
    header = unpack(blob)[0]
    assert out.mode == "RGB" and out.size == (header.width, header.height)
    return "image"


# --------------------------------------------------------------------------- fuzz (diffcodec fuzz's engine)


def test_fuzz_campaign_of_6300_mutated_real_blobs(codec_path):
    """What ``diffcodec fuzz`` runs, for 6,300 blobs (at least 2,000 per method): each decoded in a worker
    subprocess under a time limit.

    Every mutant decodes to an image of its header's size or is refused with a typed error: no crash, no hang.
    """
    report = campaign(blobs=6300, workers=2, limit_s=30, weights=codec_path)
    o = report.outcomes
    print(report.markdown("this machine"))
    assert report.tried == 6300 and o["crash"] == 0 and o["hang"] == 0, report.findings[:3]
    assert o["typed"] + o["clean"] == 6300
    assert set(report.kinds) == set(MUTATIONS) and set(report.methods) == set(METHODS)
    assert all(sum(c.values()) >= 2000 for c in report.methods.values()), report.methods
    assert report.errors["HostileBitstreamError"] >= 300 and report.errors["ChecksumError"] >= 30, report.errors
    assert o["clean"] >= 100, o  # many mutants are still decodable, and decode to the right size
    assert report.kinds["huge"]["clean"] == 0  # a big image over tiny payloads is always refused
    assert max(report.slowest)[0] < 5.0


def test_mutants_are_a_function_of_the_seed(blobs, codecs):
    def mutants(seed: str) -> list[tuple[str, bytes]]:
        rng, others = random.Random(seed), [b for bs in blobs.values() for b in bs]
        return [mutate(rng, blobs[m][i % 2], len(codecs[m].rates), others) for i in range(60) for m in METHODS]

    first = mutants("a")
    assert first == mutants("a") and first != mutants("b")
    resealed = [blob for kind, blob in first if kind.startswith("p-") or kind in ("rate", "size", "huge", "method")]
    for blob in resealed:  # a forger's containers: a valid CRC, so they reach the method's own checks
        assert zlib.crc32(blob[:-4]) == struct.unpack("<I", blob[-4:])[0]


_FAKE_WORKER = """
import json, os, signal, sys, time
marks = sys.argv[1]
out = os.fdopen(os.dup(1), "wb", buffering=0)
out.write(b'{"ready": true}\\n')
seen = 0
while head := sys.stdin.buffer.read(5):
    sys.stdin.buffer.read(int.from_bytes(head[1:], "little"))
    seen += 1
    if seen == 2 and not os.path.exists(marks + ".crash"):
        open(marks + ".crash", "w").close()
        os.kill(os.getpid(), signal.SIGSEGV)
    if seen == 3 and not os.path.exists(marks + ".hang"):
        open(marks + ".hang", "w").close()
        time.sleep(600)
    out.write(json.dumps({"outcome": "typed", "error": "HostileBitstreamError", "s": 0.001}).encode() + b"\\n")
"""


def test_campaign_records_a_crashing_and_a_hanging_decoder(blobs, codec_path, tmp_path):
    """A worker that dies (SIGSEGV) on its 2nd blob and hangs on a later one, once each: both are caught, the
    worker is replaced and the campaign goes on; the two blobs are written as findings."""
    argv = [sys.executable, "-c", _FAKE_WORKER, str(tmp_path / "mark")]
    t = time.perf_counter()
    report = campaign(blobs=8, limit_s=2, weights=codec_path, seeds=blobs, argv=argv)
    assert time.perf_counter() - t < 30
    assert report.tried == 8 and report.outcomes == {"typed": 6, "crash": 1, "hang": 1}
    crash, hang = sorted(report.findings, key=lambda f: f.index)
    assert (crash.index, crash.outcome, hang.index, hang.outcome) == (1, "crash", 4, "hang")
    assert str(-signal.SIGSEGV) in crash.detail
    paths = write_findings(report, tmp_path / "findings")
    assert [p.name.split("-")[1] for p in paths] == ["crash", "hang"]
    assert paths[0].read_bytes() == crash.blob


# --------------------------------------------------------------------------- targeted


@pytest.mark.parametrize("blob_method", METHODS)
@pytest.mark.parametrize("codec_method", METHODS)
def test_method_mismatch(codecs, blobs, codec_path, codec_method, blob_method):
    blob = blobs[blob_method][0]
    if codec_method == blob_method:
        assert decode_or_codec_error(codecs[codec_method], blob) == "image"
    else:
        with pytest.raises(CodecError, match=f"made by '{blob_method}'"):
            codecs[codec_method].decompress(blob)
    assert Codec.for_blob(blob, path=codec_path) is codecs[blob_method]


@pytest.mark.parametrize("method", METHODS)
def test_rate_index_out_of_range_with_a_valid_crc(codecs, blobs, method):
    codec = codecs[method]
    header, payloads = unpack(blobs[method][0])
    for rate in (len(codec.rates), 17, 255):
        with pytest.raises(HostileBitstreamError, match="rate index"):
            codec.decompress(pack_unchecked(Header(method, rate, header.height, header.width), payloads))


@pytest.mark.parametrize("method", METHODS)
def test_wrong_payload_counts(codecs, blobs, method):
    header, payloads = unpack(blobs[method][0])
    for bad in ([payloads[0]], [payloads[1]], [*payloads, b""], payloads + payloads, [b""] * MAX_PAYLOADS):
        with pytest.raises(HostileBitstreamError):
            codecs[method].decompress(pack_unchecked(header, bad))


def test_wrong_oscar_payload_sizes(codecs, blobs):
    header, (rms, idx) = unpack(blobs["oscar"][0])
    for bad in ([rms[:-1], idx], [rms + b"\0", idx], [b"", b""], [b"", idx]):
        with pytest.raises(HostileBitstreamError, match="payload sizes"):
            codecs["oscar"].decompress(pack_unchecked(header, bad))
    # the index payload is a rANS string: the guard refuses what compressai's decoder must never see
    for bad_idx in (idx[:-1], idx + b"\0", b"", b"\x01" * 4, idx + b"\x01" * (4 << 20)):
        with pytest.raises(HostileBitstreamError, match="OSCAR index payload"):
            codecs["oscar"].decompress(pack_unchecked(header, [rms, bad_idx]))
    for value in (np.nan, np.inf, -1.0):
        bad_rms = np.frombuffer(rms, "<f2").copy()
        bad_rms[1] = value
        with pytest.raises(HostileBitstreamError, match="non-finite or negative"):
            codecs["oscar"].decompress(pack_unchecked(header, [bad_rms.tobytes(), idx]))


_SHORT = [b"", b"\x01", b"abc", b"\xff" * 7, b"\x00" * 9, b"\x01" * 10]


@pytest.mark.parametrize("method", ["rdeic", "hyperprior"])
@pytest.mark.parametrize("size", [(48, 64), (2048, 2048), (1, 16384)], ids=str)
def test_short_rans_strings_are_refused_before_compressai_sees_them(codecs, blobs, method, size):
    """Before the guard, a 1-byte payload under a 2048×2048 header crashed the interpreter (SIGSEGV):
    compressai's decoder reads its string without bounds checks."""
    header, (y, w) = unpack(blobs[method][0])
    codec = codecs[method]
    for s in _SHORT:
        for payloads in ([s, w], [y, s], [s, s]):
            t = time.perf_counter()
            with pytest.raises(HostileBitstreamError, match=r"rANS string|pixels: more than"):
                codec.decompress(pack_unchecked(Header(method, header.rate, *size), payloads))
            assert time.perf_counter() - t < 1.0


@pytest.mark.parametrize("method", ["rdeic", "hyperprior"])
def test_overlong_and_ff_run_rans_strings_are_refused(codecs, blobs, method):
    header, (y, w) = unpack(blobs[method][0])
    with pytest.raises(HostileBitstreamError, match="rANS string"):  # longer than two words per symbol
        codecs[method].decompress(pack_unchecked(header, [y, w + b"\x01" * (4 << 20)]))
    with pytest.raises(HostileBitstreamError, match="0xFF"):
        codecs[method].decompress(pack_unchecked(header, [y[:4] + b"\xff" * 128, w]))


def test_oscar_indices_are_entropy_coded_below_their_fixed_width(codecs, small_image):
    """The index payload is a rANS string under the rate's learned distribution: shorter than ⌈n·log2 K / 8⌉ bytes
    on a real photo at every rate, and it decodes back to exactly the encoder's indices."""
    from diffcodec.codec import _oscar_multiple, decode_indices, encode_indices

    codec = codecs["oscar"]
    hyper = codec._m["hyper"]
    for r in range(len(codec.rates)):
        header, (_, stream) = unpack(codec.compress(small_image, r))
        m = _oscar_multiple(hyper, r)
        gh, gw = hyper.grid(r, -(-header.height // (4 * m)) * m, -(-header.width // (4 * m)) * m)
        assert len(stream) < -(-gh * gw * hyper.bits_per_index(r) // 8) + 8, r
        idx = np.random.default_rng(r).integers(0, hyper.config.codebook_sizes[r], 500)
        assert np.array_equal(decode_indices(hyper, r, encode_indices(hyper, r, idx), 500), idx)


def test_forged_oscar_index_strings_decode_to_codebook_indices_or_are_refused(codecs, blobs):
    """A forged string can drive the decoder to its escape symbol (values past the codebook): those are refused."""
    header, (rms, idx) = unpack(blobs["oscar"][0])
    rng = random.Random(11)
    seen = set()
    for n_words in (2, 3, len(idx) // 4, len(idx) // 4 + 7):
        for _ in range(5):
            forged = bytes(rng.randrange(256) for _ in range(4 * n_words))
            seen.add(decode_or_codec_error(codecs["oscar"], pack_unchecked(header, [rms, forged])))
    assert seen <= {"image", "HostileBitstreamError"}, seen


@pytest.mark.parametrize("method", ["rdeic", "hyperprior"])
def test_forged_rans_strings_decode_deterministically_or_are_refused(codecs, blobs, method):
    """Forged strings of whole words pass the guard and decode to garbage, but the same garbage every time
    (without the padding the decoder read heap memory past the string) or to a clear error."""
    header, (_y, _w) = unpack(blobs[method][0])
    rng = random.Random(7)
    codec = codecs[method]
    for n_words in (2, 3, 16, 200):
        forged = [bytes(rng.randrange(256) for _ in range(4 * n_words)) for _ in range(2)]
        blob = pack_unchecked(header, forged)
        first = decode_or_codec_error(codec, blob)
        if first == "image":
            assert np.array_equal(np.asarray(codec.decompress(blob)), np.asarray(codec.decompress(blob)))
        else:
            assert first == "HostileBitstreamError"


# --------------------------------------------------------------------------- the guard's bound, on a port of the decoder


def _port_decode(data: bytes, indexes: list[int], cdfs: list[list[int]], sizes: list[int], offsets: list[int]):
    """compressai's rANSDecoderInterface::decode_with_indexes (cpp_exts/rans/rans_interface.cpp, Rans64 with
    32-bit words, 16-bit precision, 4-bit bypass) in Python -> (symbols, bytes read past the end of ``data``)."""
    lo, mask64 = 1 << 31, (1 << 64) - 1
    words = np.frombuffer(data + bytes(-len(data) % 4), "<u4").tolist()
    pos = 0

    def read() -> int:
        nonlocal pos
        pos += 1
        return words[pos - 1] if pos <= len(words) else 0

    x = read() | read() << 32
    out = []

    def get_bits() -> int:
        nonlocal x
        val, x = x & 15, x >> 4
        if x < lo:
            x = (x << 32 | read()) & mask64
        return val

    for ci in indexes:
        cdf, max_value = cdfs[ci], sizes[ci] - 2
        cum = x & 0xFFFF
        s = 0
        while cdf[s + 1] <= cum:
            s += 1
        x = (cdf[s + 1] - cdf[s]) * (x >> 16) + cum - cdf[s]
        if x < lo:
            x = (x << 32 | read()) & mask64
        value = s
        if value == max_value:
            val = n_bypass = get_bits()
            while val == 15:
                val = get_bits()
                n_bypass += val
            raw = 0
            for j in range(n_bypass):
                raw |= get_bits() << (j * 4 & 31)  # C++: a shift past 31 wraps on x86
            raw &= 0xFFFFFFFF
            raw = raw - (1 << 32) if raw >> 31 else raw
            value = -(raw >> 1) - 1 if raw & 1 else (raw >> 1) + max_value
        out.append(value + offsets[ci])
    return out, 4 * pos - len(data)


def test_rans_guard_padding_bounds_every_read_of_compressais_decoder():
    """On forged strings (random, 0xFF runs, zeros, mixtures) and real CDF tables (very peaked to flat), the port
    agrees with compressai's decoder symbol for symbol, and never reads as far as rans_guard's padding reaches."""
    from compressai import ans
    from compressai.entropy_models import EntropyBottleneck, GaussianConditional
    from compressai.models.base import get_scale_table

    gc = GaussianConditional(None)
    gc.update_scale_table(get_scale_table())
    eb = EntropyBottleneck(8)
    eb.update(force=True)
    decoder = ans.RansDecoder()
    rng = random.Random(3)
    worst, checked = 0.0, 0
    for em in (gc, eb):
        cdfs = em._quantized_cdf.tolist()
        sizes = em._cdf_length.reshape(-1).int().tolist()
        offsets = em._offset.reshape(-1).int().tolist()
        for _ in range(100):
            n = rng.choice([1, 16, 100, 300])
            indexes = [rng.randrange(len(cdfs)) for _ in range(n)]
            length = 4 * rng.choice([2, 3, max(2, n // 4), n + 2])
            style = rng.randrange(4)
            if style == 0:
                data = bytes(rng.randrange(256) for _ in range(length))
            elif style == 1:
                data = bytes(rng.choice([0, 0xFF, rng.randrange(256)]) for _ in range(length))
            elif style == 2:
                data = b"\xff" * min(length, 64) + bytes(max(0, length - 64))
            else:
                data = bytes(rng.choice([0xF0, 0x0F, 0xFF, 0xFE, 0x7F, 0x00]) for _ in range(length))
            try:
                padded = rans_guard(data, n)
            except HostileBitstreamError:
                continue
            expect, past_end = _port_decode(data, indexes, cdfs, sizes, offsets)
            assert decoder.decode_with_indexes(padded, indexes, cdfs, sizes, offsets) == expect
            assert past_end <= len(padded) - len(data) - 600, (past_end, len(padded) - len(data))
            worst = max(worst, past_end / (len(padded) - len(data)))
            checked += 1
    assert checked >= 100
    print(f"the furthest read past a forged string used {100 * worst:.0f}% of rans_guard's padding")


# --------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("method", METHODS)
def test_compress_and_decompress_are_repeatable(codecs, small_image, method):
    codec = codecs[method]
    for rate in (0, len(codec.rates) - 1):
        blob = codec.compress(small_image, rate)
        assert codec.compress(small_image.copy(), rate) == blob
        a, b = np.asarray(codec.decompress(blob)), np.asarray(codec.decompress(bytes(blob)))
        assert a.shape == small_image.shape and np.array_equal(a, b)


_THREADS_SCRIPT = r"""
import hashlib, json, sys
import numpy as np, skimage.data, torch
torch.set_num_threads(int(sys.argv[1]))
from diffcodec import Codec
images = [skimage.data.coffee()[100:148, 200:264], skimage.data.astronaut()[50:178, 100:292]]
out = {"threads": torch.get_num_threads()}
for m in ("oscar", "rdeic", "hyperprior"):
    c = Codec.load(m, path=sys.argv[2] or None)
    for i, img in enumerate(images):
        for r in range(len(c.rates)):
            blob = c.compress(np.ascontiguousarray(img), r)
            pixels = np.asarray(c.decompress(blob)).tobytes()
            out[f"{m}-rate{r}-image{i}"] = [hashlib.sha256(blob).hexdigest(), hashlib.sha256(pixels).hexdigest()]
print("RESULT " + json.dumps(out))
"""


@pytest.mark.slow
def test_compress_and_decompress_agree_across_1_and_2_threads(codec_path):
    """Every rate of every method on a 48×64 and a 128×192 photo, in two fresh processes with 1 and 2 torch threads:
    same blob bytes, same pixels.

    oneDNN's 1×1 convolutions (the UNet's and the VAE's ``conv_shortcut``, GDN's channel mixing) sum their
    input channels in an order that depends on the thread count: the same blob decoded 1 level apart in a
    few pixels. Every other layer (3×3 convolutions, linear, norms, attention) was bit-identical."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    results = []
    for threads in (1, 2):
        proc = subprocess.run(
            [sys.executable, "-c", _THREADS_SCRIPT, str(threads), str(codec_path or "")],
            capture_output=True,
            text=True,
            timeout=900,
            env=env,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
        results.append(json.loads(line[len("RESULT ") :]))
    one, two = results
    assert (one.pop("threads"), two.pop("threads")) == (1, 2)
    differ = {k: (one[k], two[k]) for k in one if one[k] != two[k]}
    assert not differ, f"differ between 1 and 2 threads (blob sha256, pixels sha256): {differ}"


@pytest.mark.parametrize("method", METHODS)
def test_the_most_compressible_images_stay_far_below_the_pixels_per_byte_limit(codecs, method):
    """Flat images at the lowest rate are the smallest real blobs per pixel: the limit must leave them room."""
    from diffcodec.bitstream import MAX_PIXELS_PER_BYTE

    for value in (0, 128, 255):
        blob = codecs[method].compress(np.full((256, 256, 3), value, np.uint8), rate=0)
        assert 256 * 256 / len(blob) < MAX_PIXELS_PER_BYTE / 4, (value, len(blob))


@pytest.mark.parametrize("method", ["oscar", "rdeic"])
def test_steps_0_decodes_without_any_unet_pass(codecs, small_image, method, monkeypatch):
    """The "no diffusion" ablation: the hyper-decoded / entropy-decoded latent straight into tinysd's decoder."""
    codec = codecs[method]
    blob = codec.compress(small_image, 0)
    with_unet = np.asarray(codec.decompress(blob))

    def no_unet(*args, **kwargs):
        raise AssertionError("the UNet ran")

    monkeypatch.setattr(codec._m["unet"], "forward", no_unet)
    plain = np.asarray(codec.decompress(blob, steps=0))
    assert plain.shape == with_unet.shape and not np.array_equal(plain, with_unet)
    with pytest.raises(AssertionError, match="the UNet ran"):
        codec.decompress(blob)
