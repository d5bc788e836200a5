"""A byte-level BPE tokenizer trained on the corpus with Hugging Face ``tokenizers``, with a mask token.

Byte-level: every string is representable (no unknown characters, any
Unicode). Special tokens: ``<|pad|>``, ``<|bos|>``, ``<|eos|>`` and
``<|mask|>`` (the block-diffusion mask). Wrapped as a transformers
``PreTrainedTokenizerFast`` and saved next to the model weights.
"""

from __future__ import annotations

from pathlib import Path

from difftext.corpus import Document

PAD, BOS, EOS, MASK = "<|pad|>", "<|bos|>", "<|eos|>", "<|mask|>"
SPECIALS = [PAD, BOS, EOS, MASK]


def train_tokenizer(docs: list[Document], vocab_size: int = 2048):
    """Train byte-level BPE on ``docs`` (the training split only); returns a ``PreTrainedTokenizerFast``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator((d.text for d in docs), trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD, bos_token=BOS, eos_token=EOS, mask_token=MASK)


def load_tokenizer(path: str | Path):
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast.from_pretrained(str(path))
