"""Gradio for an offline product: import ``gr`` from here, not from ``gradio``.

Gradio's usage analytics phone home (api.gradio.app, huggingface.co) when a
Blocks is built; diffsuite makes no network connection, so they are off unless
the user turns them on explicitly with GRADIO_ANALYTICS_ENABLED=True. Only the
``app`` extra's modules (``ui.py``, the hub) import this.

What every demo shares, so that each behaves the same:

* :func:`page`, the frame a domain's demo is built in;
* :func:`on`, the one way an event is wired: the outputs are cleared first (a
  stale result never stays under an error), the endpoint is named for
  ``gradio_client`` users, and :func:`handler` turns errors into messages —
  a diffcore error (the user's input) is shown as it is and logged as one
  line; anything else is a fault, logged with its traceback and shown without
  server details;
* :func:`image_upload`, a ``gr.Image`` whose uploads that are not images get a
  message naming the user's file (not a server path), and
  :func:`integer_choices`, which makes integer choices integers in the API
  (Gradio lists them as strings);
* :func:`work_dir`, the one place an app writes files (examples, blobs,
  videos), removed when the server stops; :func:`result_path` names a result
  file there and removes results older than :data:`RESULT_TTL_S`. Gradio's
  own cache (uploads and the copies it serves) is swept on the same clock
  (:data:`DELETE_CACHE`) and emptied at shutdown.
"""

import atexit
import functools
import inspect
import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr
from PIL import Image as _PIL

from diffcore.errors import DiffcoreError

__all__ = [
    "DELETE_CACHE",
    "RESULT_TTL_S",
    "gr",
    "handler",
    "image_upload",
    "integer_choices",
    "on",
    "page",
    "result_path",
    "work_dir",
]

#: seconds a result file (and a Gradio upload or served copy) is kept: long enough to download it
RESULT_TTL_S = 600
#: Gradio's ``delete_cache``: every minute, remove this app's cached files older than RESULT_TTL_S
DELETE_CACHE = (60, RESULT_TTL_S)
#: where user errors (one line) and faults (with a traceback) are logged
log = logging.getLogger("diffsuite.app")


@contextmanager
def page(title: str, intro: str) -> Iterator[gr.Blocks]:
    """A domain's demo: a ``gr.Blocks`` titled ``title`` that opens with ``intro`` (Markdown, heading first).

    Use it as ``with page("Image codec", INTRO) as demo:`` and build the
    components inside; the hub mounts the result as one of its tabs.
    """
    with gr.Blocks(title=title, delete_cache=DELETE_CACHE) as demo:
        gr.Markdown(intro)
        yield demo


def _user_error(name: str, message: str) -> gr.Error:
    log.warning("%s: %s", name, message)
    return gr.Error(message, print_exception=False)


def _fault(name: str, e: Exception) -> gr.Error:
    log.error("%s failed", name, exc_info=e)
    return gr.Error(f"Internal error ({type(e).__name__}); the server's log has the details.", print_exception=False)


def handler(fn: Callable, name: str | None = None) -> Callable:
    """``fn`` as an event handler: errors become messages (see the module docstring); generators stream.

    ``gr.Error`` raised by ``fn`` itself ("Upload an image first") counts as a user error.
    """
    name = name or fn.__name__

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Iterator[Any]:
            try:
                yield from fn(*args, **kwargs)
            except (DiffcoreError, gr.Error) as e:
                raise _user_error(name, str(e.message if isinstance(e, gr.Error) else e)) from None
            except Exception as e:
                raise _fault(name, e) from None

        return wrapper

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (DiffcoreError, gr.Error) as e:
            raise _user_error(name, str(e.message if isinstance(e, gr.Error) else e)) from None
        except Exception as e:
            raise _fault(name, e) from None

    return wrapper


def on(trigger: Callable, fn: Callable, inputs: Sequence, outputs: Sequence, *, api_name: str, **kwargs: Any) -> Any:
    """Wire ``trigger`` (e.g. ``button.click``) to ``fn`` as endpoint ``/api_name``, the outputs cleared first.

    ``kwargs`` go to the event (``concurrency_limit`` …). Returns the event, for more ``.then``.
    """
    empty = [None] * len(outputs)
    clear = trigger(lambda: empty if len(empty) != 1 else None, None, list(outputs), queue=False, api_visibility="private")
    return clear.then(handler(fn, api_name), list(inputs), list(outputs), api_name=api_name, **kwargs)


def image_upload(**kwargs: Any) -> gr.Image:
    """``gr.Image(**kwargs)`` whose uploads that are not images are refused with a message naming the user's file.

    (A factory, not a subclass: Gradio writes a ``.pyi`` stub beside the module of every component subclass.)
    """
    box = gr.Image(**kwargs)
    preprocess = box.preprocess

    def checked(payload: Any) -> Any:
        try:
            return preprocess(payload)
        except (_PIL.UnidentifiedImageError, _PIL.DecompressionBombError, OSError, ValueError, SyntaxError) as e:
            name = Path(getattr(payload, "orig_name", None) or "the upload").name
            reason = str(e) if isinstance(e, _PIL.DecompressionBombError) else "Pillow cannot read it"
            raise _user_error("upload", f"{name} is not an image this app can read ({reason}); use PNG, JPEG or WebP") from None

    box.preprocess = checked
    return box


def integer_choices(component: gr.Radio | gr.Dropdown) -> gr.Radio | gr.Dropdown:
    """``component`` (a single-choice Radio or Dropdown) with integer choices typed as integers in the API.

    gradio_client shows any ``enum`` as strings (``Literal['4', '8']``), so the schema says integer instead.
    """
    values = [value for _, value in component.choices]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise TypeError(f"integer_choices needs integer choices, got {values!r}")
    schema = {"type": "integer", "description": f"one of {', '.join(map(str, values))}" if values else "an integer"}
    component.api_info = lambda: schema
    return component


@functools.cache
def work_dir(app: str) -> Path:
    """The app's folder for files it serves (one per process and app), deleted at exit.

    ``diffcore.hub.launch`` turns SIGTERM into a normal exit, so stopping the server
    (Ctrl-C or ``kill``) removes it too; gradio serves its own copies from its cache.
    """
    path = Path(tempfile.mkdtemp(prefix=f"diffsuite-{app}-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def result_path(app: str, name: str) -> Path:
    """A new file ``name`` in a fresh folder of the app's ``results/``; results older than RESULT_TTL_S go first."""
    results = work_dir(app) / "results"
    results.mkdir(exist_ok=True)
    old = time.time() - RESULT_TTL_S
    for folder in results.iterdir():
        if folder.stat().st_mtime < old:
            shutil.rmtree(folder, ignore_errors=True)
    folder = results / uuid.uuid4().hex
    folder.mkdir()
    return folder / name
