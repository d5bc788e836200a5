"""diffcodec's ``Codec`` against diffsuite's API contract (:mod:`diffcore.testing`), on OSCAR and tiny images."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from diffcodec import Codec
from diffcodec.cli import main
from diffcodec.codec import WEIGHTS
from diffcodec.errors import TruncatedError
from diffcodec.limits import MAX_STEPS
from diffcore.errors import InvalidInputError, UnknownNameError
from diffcore.testing import APIContract


class TestCodecContract(APIContract):
    weights = WEIGHTS
    copy = ("oscar",)
    takes_seed = False  # decoding is deterministic; the seed draws the input image
    model_loaders = ("diffcodec.codec.Codec.load", "diffcodec.codec.Codec.for_blob")

    def load(self, path: Path | None = None) -> Codec:
        return Codec.load("oscar", path=path)

    def call(self, model: Codec, seed: int) -> tuple[bytes, np.ndarray]:
        image = np.random.default_rng(seed).integers(0, 256, (16, 24, 3), dtype=np.uint8)
        blob = model.compress(image, rate=0)
        return blob, np.asarray(model.decompress(blob))

    def assert_same(self, a: tuple[bytes, np.ndarray], b: tuple[bytes, np.ndarray]) -> None:
        assert a[0] == b[0]
        np.testing.assert_array_equal(a[1], b[1])

    def bad_inputs(self, model: Codec) -> list:
        image = np.zeros((16, 24, 3), dtype=np.uint8)
        blob = model.compress(image)
        return [
            (lambda: Codec.load("jpeg2000"), UnknownNameError),
            (lambda: model.compress(image, rate=len(model.rates)), InvalidInputError),
            (lambda: model.compress(image, rate=True), InvalidInputError),
            (lambda: model.compress(np.zeros((16, 24, 3), dtype=np.float64)), InvalidInputError),
            (lambda: model.compress(np.zeros((0, 24, 3), dtype=np.uint8)), InvalidInputError),
            (lambda: model.decompress(blob, steps=-1), InvalidInputError),
            (lambda: model.decompress(blob, steps=MAX_STEPS + 1), InvalidInputError),
            (lambda: model.decompress(blob, steps=100_000), InvalidInputError),
            (lambda: model.decompress(blob, steps=1.0), InvalidInputError),
            (lambda: model.decompress(blob[:-1]), TruncatedError),
        ]

    def cli_main(self, argv: list[str]) -> int:
        return main(argv)

    def cli_bad_argvs(self) -> list[list[str]]:
        return [
            ["decode", "in.dfc", "out.png", "--steps", "100000"],
            ["decode", "in.dfc", "out.png", "--steps", "-1"],
            ["decode", "no-such-blob.dfc", "out.png"],
            ["encode", "no-such-image.png", "out.dfc"],
            ["encode", "in.png", "out.dfc", "--method", "jpeg2000"],
            ["fuzz", "--minutes", "0"],
            ["fuzz", "--minutes", "1e9"],
            ["fuzz", "--blobs", "0"],
            ["fuzz", "--workers", "1000"],
            ["fuzz", "--limit-s", "nan"],
            ["fuzz", "--seed", "-1"],
        ]
