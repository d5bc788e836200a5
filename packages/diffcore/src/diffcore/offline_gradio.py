"""Gradio for an offline product: import ``gr`` from here, not from ``gradio``.

Gradio's usage analytics phone home (api.gradio.app, huggingface.co) when a
Blocks is built; diffsuite makes no network connection, so they are off unless
the user turns them on explicitly with GRADIO_ANALYTICS_ENABLED=True. Only the
``app`` extra's modules (``ui.py``, the hub) import this.

:func:`page` is the one frame every domain's demo is built in; :func:`work_dir`
the one place an app writes its files (examples, blobs, videos), removed when
the server stops.
"""

import atexit
import functools
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr

__all__ = ["gr", "page", "work_dir"]


@contextmanager
def page(title: str, intro: str) -> Iterator[gr.Blocks]:
    """A domain's demo: a ``gr.Blocks`` titled ``title`` that opens with ``intro`` (Markdown, heading first).

    Use it as ``with page("Image codec", INTRO) as demo:`` and build the
    components inside; the hub mounts the result as one of its tabs.
    """
    with gr.Blocks(title=title) as demo:
        gr.Markdown(intro)
        yield demo


@functools.cache
def work_dir(app: str) -> Path:
    """The app's folder for files it serves (one per process and app), deleted at exit.

    ``diffcore.hub.launch`` turns SIGTERM into a normal exit, so stopping the server
    (Ctrl-C or ``kill``) removes it too; gradio serves its own copies from its cache.
    """
    path = Path(tempfile.mkdtemp(prefix=f"diffsuite-{app}-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path
