"""Gradio for an offline product: import ``gr`` from here, not from ``gradio``.

Gradio's usage analytics phone home (api.gradio.app, huggingface.co) when a
Blocks is built; diffsuite makes no network connection, so they are off unless
the user turns them on explicitly with GRADIO_ANALYTICS_ENABLED=True. Only the
``app`` extra's modules (``ui.py``, the hub) import this.

:func:`page` is the one frame every domain's demo is built in.
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr

__all__ = ["gr", "page"]


@contextmanager
def page(title: str, intro: str) -> Iterator[gr.Blocks]:
    """A domain's demo: a ``gr.Blocks`` titled ``title`` that opens with ``intro`` (Markdown, heading first).

    Use it as ``with page("Image codec", INTRO) as demo:`` and build the
    components inside; the hub mounts the result as one of its tabs.
    """
    with gr.Blocks(title=title) as demo:
        gr.Markdown(intro)
        yield demo
