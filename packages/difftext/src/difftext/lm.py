"""The user-facing models: ``ARLM`` (autoregressive) and ``BlockDiffusionLM`` (SDAR, optionally with dKV-Cache).

>>> from difftext import BlockDiffusionLM
>>> lm = BlockDiffusionLM.load()
>>> out = lm.generate("The import statement", max_new_tokens=48, block_size=4, threshold=0.9, seed=0)
>>> out.text, out.forwards, out.seconds

``stream(...)`` takes the same arguments and yields a :class:`Partial` after
every forward pass (the text so far, and the current block with its still
masked positions) and finally the :class:`TextResult`. Generation is
deterministic for a seed. Text is tokenized byte-level, so any Unicode string
is accepted; prompts that do not fit the context are refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

from diffcore.errors import CheckpointError, InvalidInputError, UnknownNameError
from diffcore.validate import check_seed
from difftext import decode
from difftext.errors import BlockSizeError, PromptTooLongError
from difftext.limits import BLOCK_SIZES, check_params, check_prompt, check_steps

WEIGHTS = Path(__file__).resolve().parent / "weights"


@dataclass(frozen=True)
class TextResult:
    """One generation; ``seconds`` is its wall time (the prompt's forward pass included)."""

    text: str  # the generated continuation (the prompt excluded)
    tokens: list[int]
    prompt_tokens: int
    forwards: int  # model forward passes, the prompt's included
    seconds: float
    steps_per_block: tuple[int, ...] = ()

    @property
    def forwards_per_token(self) -> float:
        return self.forwards / max(len(self.tokens), 1)

    @property
    def tokens_per_second(self) -> float:
        return len(self.tokens) / self.seconds if self.seconds > 0 else float("inf")


@dataclass(frozen=True)
class Partial:
    """Progress after one forward pass: finished text, and the current block (None = still masked)."""

    text: str
    block: tuple[str | None, ...]
    forwards: int
    seconds: float


@lru_cache(maxsize=4)
def _load(path: str, device: str):
    from huggingface_hub.errors import StrictDataclassError
    from safetensors import SafetensorError
    from transformers import LlamaForCausalLM

    from difftext.tokenizer import load_tokenizer

    p = Path(path)
    if not (p / "config.json").is_file() or not (p / "model.safetensors").is_file():
        raise CheckpointError(
            f"{p} holds no difftext model (config.json and model.safetensors); train one with `difftext train --weights ROOT`"
        )
    try:
        tok = load_tokenizer(p)
        model = LlamaForCausalLM.from_pretrained(p, use_safetensors=True, dtype=torch.float32)
    except (OSError, ValueError, KeyError, RuntimeError, TypeError, SafetensorError, StrictDataclassError) as e:
        raise CheckpointError(f"{p}: the model or tokenizer could not be loaded ({e})") from e
    if tok.mask_token_id is None or tok.eos_token_id is None:
        raise CheckpointError(f"{p}: the tokenizer has no mask or EOS token")
    if model.config.vocab_size < len(tok):
        raise CheckpointError(f"{p}: the model's vocabulary ({model.config.vocab_size}) is smaller than the tokenizer's")
    if not all(torch.isfinite(t).all() for t in model.state_dict().values()):
        raise CheckpointError(f"{p}: the weights hold NaN or inf")
    return model.to(device).eval(), tok


class _LM:
    default = ""  # the model's folder under a weights root, and the one name ``load`` takes

    def __init__(self, model, tokenizer) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.context = int(model.config.max_position_embeddings)

    @classmethod
    def load(cls, name: str | None = None, *, path: str | Path | None = None, device: str = "cpu"):
        """Load the model ``name`` (``"ar"`` for :class:`ARLM`, ``"sdar"`` for :class:`BlockDiffusionLM`; None: that one).

        Args:
            name: the model's folder under the weights root.
            path: a weights root laid out like the shipped ``weights/`` folder (``ar/`` and ``sdar/``, each with
                config, safetensors weights and tokenizer), as ``difftext train --weights PATH`` writes it;
                None: the shipped weights.
            device: ``"cpu"`` or ``"cuda"``.
        """
        name = cls.default if name is None else name
        if name != cls.default:
            raise UnknownNameError(f"{cls.__name__} loads {cls.default!r}, not {name!r}")
        root = Path(path) if path is not None else WEIGHTS
        model, tok = _load(str(root / name), device)
        return cls(model, tok)

    def encode(self, prompt: str, max_new_tokens: int) -> list[int]:
        check_prompt(prompt)
        ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        if len(ids) + max_new_tokens > self.context:
            raise PromptTooLongError(
                f"the prompt is {len(ids)} tokens and {max_new_tokens} new ones were asked for: more than the "
                f"context of {self.context}; shorten the prompt or ask for fewer tokens"
            )
        return ids

    def _result(self, prompt_ids: list[int], g: decode.Generation, row: int = 0) -> TextResult:
        toks = g.tokens[row]
        return TextResult(self.tokenizer.decode(toks), toks, len(prompt_ids), g.forwards, g.seconds, tuple(g.steps_per_block))

    def _partial(self, s: decode.Step) -> Partial:
        block = tuple(None if t is None else self.tokenizer.decode([t]) for t in s.block)
        return Partial(self.tokenizer.decode(s.done), block, s.forwards, s.seconds)

    def _run(self, prompt_ids: list[int], dec: decode.Decoder) -> TextResult:
        return self._result(prompt_ids, decode.run(dec))

    def _stream(self, prompt_ids: list[int], dec: decode.Decoder) -> Iterator[Partial | TextResult]:
        for item in decode.iter_steps(dec):
            yield self._partial(item) if isinstance(item, decode.Step) else self._result(prompt_ids, item)

    @staticmethod
    def _generator(seed: int, temperature: float) -> torch.Generator | None:
        seed = check_seed(seed)  # checked even when greedy decoding does not draw from it
        return torch.Generator().manual_seed(seed) if temperature > 0 else None


class ARLM(_LM):
    """The autoregressive model: one forward pass per token, with a KV cache."""

    default = "ar"

    def _decoder(self, prompt: str, max_new_tokens: int, temperature: float, seed: int) -> tuple[list[int], decode.Decoder]:
        ids = self.encode(prompt, max_new_tokens)
        gen = self._generator(seed, temperature)
        return ids, decode.ar(
            self.model,
            [ids],
            max_new_tokens=max_new_tokens,
            eos_id=self.tokenizer.eos_token_id,
            temperature=temperature,
            generator=gen,
        )

    def generate(self, prompt: str, max_new_tokens: int = 64, temperature: float = 0.0, seed: int = 0) -> TextResult:
        return self._run(*self._decoder(prompt, max_new_tokens, temperature, seed))

    def stream(
        self, prompt: str, max_new_tokens: int = 64, temperature: float = 0.0, seed: int = 0
    ) -> Iterator[Partial | TextResult]:
        return self._stream(*self._decoder(prompt, max_new_tokens, temperature, seed))


class BlockDiffusionLM(_LM):
    """SDAR: blocks left to right with a KV cache, tokens inside a block filled in parallel by confidence."""

    default = "sdar"

    def check_block(self, block_size: int) -> None:
        if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
            raise BlockSizeError(f"block_size must be a positive integer, got {block_size!r}")
        if self.context % block_size:
            raise BlockSizeError(f"block_size {block_size} does not divide the context of {self.context}")
        if block_size not in BLOCK_SIZES:
            raise BlockSizeError(f"the model was trained for block sizes {BLOCK_SIZES}, not {block_size}")

    def _decoder(
        self,
        prompt: str,
        max_new_tokens: int,
        block_size: int,
        threshold: float,
        temperature: float,
        seed: int,
        dkv: bool,
        refresh: int,
        steps: int | None,
    ) -> tuple[list[int], decode.Decoder]:
        self.check_block(block_size)
        check_params(threshold, temperature, max_new_tokens)
        check_steps(block_size, steps)
        ids = self.encode(prompt, max_new_tokens + block_size)  # the last block may run past max_new_tokens
        gen = self._generator(seed, temperature)
        kw = dict(
            max_new_tokens=max_new_tokens,
            block=block_size,
            mask_id=self.tokenizer.mask_token_id,
            eos_id=self.tokenizer.eos_token_id,
            threshold=threshold,
            temperature=temperature,
            steps=steps,
            generator=gen,
        )
        if dkv:
            return ids, decode.blocks_dkv(self.model, ids, refresh=refresh, **kw)
        if refresh:
            raise InvalidInputError("refresh applies to dKV-Cache decoding only (dkv=True)")
        return ids, decode.blocks(self.model, [ids], **kw)

    def generate(
        self,
        prompt: str,
        max_new_tokens: int = 64,
        block_size: int = 4,
        threshold: float = 0.9,
        temperature: float = 0.0,
        seed: int = 0,
        dkv: bool = False,
        refresh: int = 0,
        steps: int | None = None,
    ) -> TextResult:
        """Continue ``prompt``. ``steps``: denoising steps per block (default ``block_size``): fewer force at least
        ``block_size / steps`` tokens per step (static top-k) whatever their confidence."""
        args = (prompt, max_new_tokens, block_size, threshold, temperature, seed, dkv, refresh, steps)
        return self._run(*self._decoder(*args))

    def stream(
        self,
        prompt: str,
        max_new_tokens: int = 64,
        block_size: int = 4,
        threshold: float = 0.9,
        temperature: float = 0.0,
        seed: int = 0,
        dkv: bool = False,
        refresh: int = 0,
        steps: int | None = None,
    ) -> Iterator[Partial | TextResult]:
        args = (prompt, max_new_tokens, block_size, threshold, temperature, seed, dkv, refresh, steps)
        return self._stream(*self._decoder(*args))
