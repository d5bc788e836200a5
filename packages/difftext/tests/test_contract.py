"""difftext's ``ARLM`` and ``BlockDiffusionLM`` against diffsuite's API contract (:mod:`diffcore.testing`).

Tiny calls: 4 new tokens, sampled at temperature 0.8 so the seed matters.
"""

from __future__ import annotations

from pathlib import Path

from diffcore.errors import InvalidInputError, UnknownNameError
from diffcore.testing import APIContract
from difftext import ARLM, BlockDiffusionLM, BlockSizeError, EmptyPromptError, PromptTooLongError, TextResult
from difftext.cli import main
from difftext.lm import WEIGHTS

PROMPT = "The import statement"


class _TextContract(APIContract):
    weights = WEIGHTS
    seed_changes_output = True
    model_loaders = ("difftext.lm._load",)

    def assert_same(self, a: TextResult, b: TextResult) -> None:
        assert (a.text, a.tokens, a.forwards, a.steps_per_block) == (b.text, b.tokens, b.forwards, b.steps_per_block)

    def cli_main(self, argv: list[str]) -> int:
        return main(argv)


class TestBlockDiffusionContract(_TextContract):
    copy = ("sdar",)

    def load(self, path: Path | None = None) -> BlockDiffusionLM:
        return BlockDiffusionLM.load(path=path)

    def call(self, model: BlockDiffusionLM, seed: int) -> TextResult:
        return model.generate(PROMPT, max_new_tokens=4, temperature=0.8, seed=seed)

    def bad_inputs(self, model: BlockDiffusionLM) -> list:
        return [
            (lambda: BlockDiffusionLM.load("ar"), UnknownNameError),
            (lambda: model.generate("", max_new_tokens=4), EmptyPromptError),
            (lambda: model.generate(PROMPT, max_new_tokens=model.context), PromptTooLongError),
            (lambda: model.generate(PROMPT, max_new_tokens=4, block_size=3), BlockSizeError),
            (lambda: model.generate(PROMPT, max_new_tokens=4, threshold=2.0), InvalidInputError),
            (lambda: model.generate(PROMPT, max_new_tokens=4, threshold=float("nan")), InvalidInputError),
            (lambda: model.generate(PROMPT, max_new_tokens=4, steps=0), InvalidInputError),
            (lambda: model.generate(PROMPT, max_new_tokens=4, dkv=True, refresh=-1), InvalidInputError),
            (lambda: model.generate(PROMPT, max_new_tokens=4, refresh=2), InvalidInputError),
        ]

    def cli_seed_argv(self, seed: str) -> list[str]:
        return ["generate", PROMPT, "--max-new-tokens", "4", "--seed", seed]

    def cli_bad_argvs(self) -> list[list[str]]:
        return [
            ["generate", ""],
            ["generate", "   "],
            ["generate", PROMPT, "--temperature", "inf"],
            ["generate", PROMPT, "--threshold", "nan"],
            ["generate", PROMPT, "--max-new-tokens", "8.5"],
            ["generate", PROMPT, "--block-size", "5"],
            ["generate", PROMPT, "--steps", "9"],
            ["generate", PROMPT, "--refresh", "2"],
            ["generate", PROMPT, "--dkv", "--refresh", "-1"],
            ["eval", "--prompts", "0"],
            ["eval", "--temperature", "-1"],
        ]


class TestARContract(_TextContract):
    copy = ("ar",)

    def load(self, path: Path | None = None) -> ARLM:
        return ARLM.load(path=path)

    def call(self, model: ARLM, seed: int) -> TextResult:
        return model.generate(PROMPT, max_new_tokens=4, temperature=0.8, seed=seed)

    def bad_inputs(self, model: ARLM) -> list:
        return [
            (lambda: ARLM.load("sdar"), UnknownNameError),
            (lambda: model.generate(123, max_new_tokens=4), InvalidInputError),
            (lambda: model.generate(PROMPT, max_new_tokens=0), InvalidInputError),
            (lambda: model.generate(PROMPT, max_new_tokens=4, temperature=-1.0), InvalidInputError),
            (lambda: model.generate(PROMPT, max_new_tokens=4, temperature=float("inf")), InvalidInputError),
            (lambda: model.generate(PROMPT, max_new_tokens=8.5), InvalidInputError),
            (lambda: model.generate(PROMPT, max_new_tokens=True), InvalidInputError),
            (lambda: model.generate("\ud800 lone surrogate", max_new_tokens=4), InvalidInputError),
            (lambda: model.generate(PROMPT, max_new_tokens=4, seed=2**64), InvalidInputError),
        ]
