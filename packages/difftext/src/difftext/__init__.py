"""difftext: SDAR block diffusion converted from an autoregressive transformers model, with dKV-Cache.

``BlockDiffusionLM.load()`` / ``ARLM.load()`` give the shipped models.
Importing this package loads no model and imports neither transformers nor gradio.
"""

from difftext.errors import BlockSizeError, EmptyPromptError, PromptTooLongError
from difftext.lm import ARLM, BlockDiffusionLM, Partial, TextResult

__all__ = ["ARLM", "BlockDiffusionLM", "BlockSizeError", "EmptyPromptError", "Partial", "PromptTooLongError", "TextResult"]
