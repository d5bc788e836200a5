"""The ``diffcodec`` command: ``encode | decode | eval | rates | train``.

::

    diffcodec encode photo.jpg photo.dfc --method oscar --rate 0   # prints the real bpp
    diffcodec decode photo.dfc photo.png                           # method read from the blob
    diffcodec eval ~/kodak --out kodak.md                          # RD table of a folder
    diffcodec rates                                                # operating points, nominal bpp
    diffcodec fuzz --minutes 60 --workers 2                        # mutated real blobs vs the decoder
    diffcodec train [ARGS...]                                      # = diffcore train codec ARGS

``--weights ROOT`` takes a folder laid out like the shipped weights (``oscar/``,
``rdeic/``, ``baseline/``), as ``diffcodec train --weights ROOT`` writes it.
Bad input (a missing or unreadable file, a corrupt blob, a transparent image …)
prints ``diffcodec: error: …`` on stderr and exits with status 2.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

from diffcodec.bitstream import METHODS
from diffcodec.limits import MAX_BLOBS, MAX_MINUTES, MAX_STEPS, MAX_WORKERS
from diffcore.cli_errors import run_command
from diffcore.validate import count_arg, seed_arg

#: Pillow options for the lossless / near-lossless writing of decoded images
_SAVE_OPTIONS = {"JPEG": {"quality": 95}, "WEBP": {"lossless": True}}


class _FileError(Exception):
    """A file could not be read or written: reported like a typed error, without a traceback."""


def _read_image(path: Path):
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            # what every viewer shows: a phone photo's EXIF rotation applied
            return ImageOps.exif_transpose(im)
    except FileNotFoundError as e:
        raise _FileError(f"{path}: no such file") from e
    except UnidentifiedImageError as e:
        raise _FileError(f"{path}: not an image Pillow can read (PNG, JPEG, WebP, TIFF, BMP …)") from e
    except Image.DecompressionBombError as e:
        raise _FileError(f"{path}: {e}") from e
    except OSError as e:
        raise _FileError(f"{path}: cannot read the image: {e}") from e


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as e:
        raise _FileError(f"{path}: no such file") from e
    except OSError as e:
        raise _FileError(f"{path}: cannot read: {e}") from e


def _write(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as e:
        raise _FileError(f"{path}: cannot write: {e}") from e


def _save_image(image, path: Path) -> None:
    """Write ``image`` in the format its extension names; PNG when it has none."""
    from PIL import Image

    fmt = Image.registered_extensions().get(path.suffix.lower()) if path.suffix else "PNG"
    if fmt is None or fmt not in Image.SAVE:
        raise _FileError(f"{path}: Pillow cannot write {path.suffix!r} files; use .png, .webp, .jpg, .tif or .bmp")
    try:
        image.save(path, format=fmt, **_SAVE_OPTIONS.get(fmt, {}))
    except OSError as e:
        raise _FileError(f"{path}: cannot write: {e}") from e


def _encode(a: argparse.Namespace) -> int:
    from diffcodec.codec import Codec
    from diffcodec.images import to_rgb

    rgb = to_rgb(_read_image(a.input))  # refuses a transparent / unusable image before any model loads
    codec = Codec.load(a.method, path=a.weights)
    t0 = time.perf_counter()
    blob = codec.compress(rgb, rate=a.rate)
    seconds = time.perf_counter() - t0
    _write(a.output, blob)
    h, w = rgb.shape[:2]
    bpp = 8 * len(blob) / (w * h)
    print(f"{a.output}: {len(blob)} bytes, {bpp:.4f} bpp ({a.method} rate {a.rate}, {w}×{h} px, encoded in {seconds:.2f} s)")
    return 0


def _decode(a: argparse.Namespace) -> int:
    from diffcodec.bitstream import read_header
    from diffcodec.codec import Codec

    blob = _read_bytes(a.input)
    header = read_header(blob)
    codec = Codec.for_blob(blob, path=a.weights)
    t0 = time.perf_counter()
    image = codec.decompress(blob, steps=a.steps)
    seconds = time.perf_counter() - t0
    _save_image(image, a.output)
    steps = codec.default_steps if a.steps is None else a.steps
    passes = "no diffusion" if steps == 0 else f"{steps} UNet pass{'es' if steps != 1 else ''}"
    print(
        f"{a.output}: {header.width}×{header.height} px from {header.method} rate {header.rate} "
        f"({8 * len(blob) / header.pixels:.4f} bpp), {passes}, decoded in {seconds:.2f} s"
    )
    return 0


def _eval(a: argparse.Namespace) -> int:
    from diffcodec.evaluate import evaluate_folder, format_table

    rows = evaluate_folder(a.folder, methods=a.methods, path=a.weights)
    table = format_table(rows)
    print(table)
    if a.out is not None:
        _write(a.out, (table.rstrip("\n") + "\n").encode())
        print(f"wrote {a.out}", file=sys.stderr)
    return 0


def _rates(a: argparse.Namespace) -> int:
    from diffcodec.codec import Codec

    for method in [a.method] if a.method else list(METHODS):
        codec = Codec.load(method, path=a.weights)
        print(method)
        for r in codec.rates:
            bpp = "n/a" if r.bpp != r.bpp else f"{r.bpp:.4f}"
            print(f"  --rate {r.index}  {r.label:<24} {bpp:>8} bpp (nominal)")
    return 0


def _fuzz(a: argparse.Namespace) -> int:
    from diffcodec.fuzz import campaign, write_findings
    from diffcore.machine import machine_name

    def progress(r) -> None:
        o = r.outcomes
        print(
            f"{r.tried:,} blobs in {r.seconds:.0f} s: {o['typed']:,} typed, {o['clean']:,} clean, "
            f"{o['crash']:,} crashes, {o['hang']:,} hangs",
            file=sys.stderr,
        )

    report = campaign(
        blobs=a.blobs,
        minutes=a.minutes if a.minutes is not None or a.blobs is not None else 1.0,
        seed=a.seed,
        workers=a.workers,
        limit_s=a.limit_s,
        weights=a.weights,
        progress=progress,
    )
    text = report.markdown(machine_name())
    print(text)
    if a.out is not None:
        _write(a.out, text.encode())
    if report.findings:
        paths = write_findings(report, a.findings)
        print(f"{len(paths)} crashing or hanging blobs written to {a.findings}", file=sys.stderr)
        return 1
    return 0


def _positive(name: str, high: float):
    """``type=`` for a positive number option of at most ``high``."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not 0 < value <= high:  # NaN fails too
            raise argparse.ArgumentTypeError(f"{name} must be a number in (0, {high:g}], got {text!r}")
        return value

    return parse


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="diffcodec", description="Diffusion image codec: OSCAR (one step) and RDEIC (relay residual)."
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    weights = argparse.ArgumentParser(add_help=False)
    weights.add_argument(
        "--weights",
        type=Path,
        default=None,
        metavar="ROOT",
        help="a weights root written by `diffcodec train --weights ROOT` (default: shipped)",
    )
    methods = sorted(METHODS, key=METHODS.get)

    e = sub.add_parser("encode", parents=[weights], help="compress an image to a .dfc blob; prints the real bpp")
    e.add_argument("input", type=Path, help="any image Pillow reads")
    e.add_argument("output", type=Path, help="the blob to write (e.g. photo.dfc)")
    e.add_argument("--method", choices=methods, default="oscar")
    e.add_argument("--rate", type=int, default=0, help="rate index (see `diffcodec rates`); default 0, the lowest")
    e.set_defaults(fn=_encode)

    d = sub.add_parser("decode", parents=[weights], help="decompress a blob; the method is read from its header")
    d.add_argument("input", type=Path, help="a .dfc blob")
    d.add_argument("output", type=Path, help="the image to write, in the format its extension names (PNG if none)")
    d.add_argument(
        "--steps",
        type=count_arg("--steps", low=0, high=MAX_STEPS),
        default=None,
        help=f"UNet passes, at most {MAX_STEPS} (default: the method's own: OSCAR 1, RDEIC 2; the hyperprior 0)",
    )
    d.set_defaults(fn=_decode)

    v = sub.add_parser("eval", parents=[weights], help="rate-distortion table of a folder of images")
    v.add_argument("folder", type=Path)
    v.add_argument(
        "--methods",
        nargs="+",
        default=None,
        metavar="M",
        help="any of oscar rdeic hyperprior jpeg webp autoencoder (default: all but autoencoder, the upper bound)",
    )
    v.add_argument("--out", type=Path, default=None, metavar="FILE.md", help="also write the table here")
    v.set_defaults(fn=_eval)

    r = sub.add_parser("rates", parents=[weights], help="list each method's rates with their nominal bpp")
    r.add_argument("--method", choices=methods, default=None)
    r.set_defaults(fn=_rates)

    f = sub.add_parser("fuzz", parents=[weights], help="fuzz the decoder with mutated real blobs, each decoded in a subprocess")
    f.add_argument("--minutes", type=_positive("--minutes", MAX_MINUTES), default=None, help="stop after this long (default 1)")
    f.add_argument("--blobs", type=count_arg("--blobs", high=MAX_BLOBS), default=None, help="stop after this many")
    f.add_argument("--seed", type=seed_arg, default=0, help="mutation seed (the same seed: the same mutants)")
    f.add_argument(
        "--workers", type=count_arg("--workers", high=MAX_WORKERS), default=1, help="decoding subprocesses (one per core)"
    )
    f.add_argument(
        "--limit-s", type=_positive("--limit-s", 600), default=10.0, help="seconds a decode may take before it is a hang"
    )
    f.add_argument("--out", type=Path, default=None, metavar="FILE.md", help="also write the report here")
    f.add_argument(
        "--findings",
        type=Path,
        default=Path("fuzz-findings"),
        metavar="DIR",
        help="where crashing or hanging blobs are written (only if there are any)",
    )
    f.set_defaults(fn=_fuzz)

    # handled before parsing (its arguments go to diffcodec.train:main); listed here for --help
    sub.add_parser("train", help="retrain the shipped weights: ARGS go to diffcodec.train (= `diffcore train codec ARGS`)")
    return p


def _train(args: list[str]) -> int:
    from diffcodec.train import main as train_main

    train_main(args)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # compressai's import-time deprecation notice is not the user's business: stderr is kept for our one-line errors
    warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)
    if argv[:1] == ["train"]:
        return run_command("diffcodec", lambda: _train(argv[1:]))
    a = _parser().parse_args(argv)
    return run_command("diffcodec", lambda: a.fn(a), catch=(_FileError,))


if __name__ == "__main__":
    raise SystemExit(main())
