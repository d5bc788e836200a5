"""Gradio for an offline product: import ``gr`` from here, not from ``gradio``.

Gradio's usage analytics phone home (api.gradio.app, huggingface.co) when a
Blocks is built; diffsuite makes no network connection, so they are off unless
the user turns them on explicitly with GRADIO_ANALYTICS_ENABLED=True. Only the
``app`` extra's modules (``ui.py``, the hub) import this.
"""

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr

__all__ = ["gr"]
