"""difftext: SDAR block diffusion converted from an autoregressive transformers model, with dKV-Cache.

``BlockDiffusionLM.load()`` / ``ARLM.load()`` give the shipped models.
Importing this package loads no model and imports neither transformers nor gradio.
"""

from diffcore.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "difftext.errors": ["BlockSizeError", "EmptyPromptError", "PromptTooLongError"],
        "difftext.lm": ["ARLM", "BlockDiffusionLM", "Partial", "TextResult"],
    },
)
