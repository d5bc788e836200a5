"""What every demo shares (diffcore.offline_gradio): error handling, wiring, typed choices, bad uploads, result files."""

from __future__ import annotations

import logging
import os
import time

import pytest

from diffcore.errors import InvalidInputError
from diffcore.offline_gradio import RESULT_TTL_S, gr, handler, image_upload, integer_choices, on, result_path

SECRET = "/srv/secret/tmp/gradio/abc123/upload.bin"


def _typed(x: int) -> int:
    raise InvalidInputError(f"x must be small, got {x}")


def _fault(x: int) -> int:
    raise RuntimeError(f"cannot open {SECRET}")


def _stream(x: int):
    yield x
    raise InvalidInputError("ran out of budget")


@pytest.mark.parametrize("fn", [_typed, _fault])
def test_handler_keeps_the_signature_gradio_reads(fn):
    import inspect

    assert list(inspect.signature(handler(fn)).parameters) == ["x"]


def test_a_user_error_is_shown_as_it_is_and_logged_as_one_line(caplog):
    with caplog.at_level(logging.INFO, logger="diffsuite.app"), pytest.raises(gr.Error) as e:
        handler(_typed, "demo_run")(5)
    assert e.value.message == "x must be small, got 5" and not e.value.print_exception
    (record,) = caplog.records
    assert record.levelno == logging.WARNING and record.exc_info is None
    assert record.getMessage() == "demo_run: x must be small, got 5"


def test_a_gradio_error_raised_by_the_handler_counts_as_a_user_error(caplog):
    def needs_upload(image):
        raise gr.Error("Upload an image first.")

    with caplog.at_level(logging.INFO, logger="diffsuite.app"), pytest.raises(gr.Error) as e:
        handler(needs_upload)(None)
    assert e.value.message == "Upload an image first." and caplog.records[0].exc_info is None


def test_a_fault_is_logged_with_its_traceback_and_shown_without_server_details(caplog):
    with caplog.at_level(logging.INFO, logger="diffsuite.app"), pytest.raises(gr.Error) as e:
        handler(_fault, "demo_run")(1)
    assert SECRET not in e.value.message and "RuntimeError" in e.value.message
    (record,) = caplog.records
    assert record.levelno == logging.ERROR and record.exc_info is not None and SECRET in str(record.exc_info[1])


def test_a_streaming_handler_streams_then_reports_its_error():
    gen = handler(_stream)(3)
    assert next(gen) == 3
    with pytest.raises(gr.Error, match="ran out of budget"):
        next(gen)


def test_on_clears_the_outputs_before_it_runs_the_named_endpoint():
    with gr.Blocks() as demo:
        x = gr.Number(precision=0)
        out, note = gr.Number(), gr.Markdown()
        button = gr.Button()
        on(button.click, lambda v: (v, "ok"), [x], [out, note], api_name="demo_double")
    clear, run = demo.fns.values()
    assert clear.api_visibility == "private" and not clear.queue and [o._id for o in clear.outputs] == [out._id, note._id]
    assert clear.fn() == [None, None]
    assert run.api_name == "demo_double" and [o._id for o in run.outputs] == [out._id, note._id]
    assert run.fn(2) == (2, "ok")


def test_integer_choices_are_integers_in_the_api():
    with gr.Blocks():
        radio = integer_choices(gr.Radio([4, 8, 16], value=4))
        dropdown = integer_choices(gr.Dropdown([("low", 0), ("high", 1)], value=0))
        names = gr.Radio(["a", "b"], value="a")
    assert radio.api_info() == {"type": "integer", "description": "one of 4, 8, 16"}
    assert dropdown.api_info()["type"] == "integer"
    with pytest.raises(TypeError):
        integer_choices(names)


def test_an_upload_that_is_not_an_image_is_refused_naming_the_users_file(tmp_path):
    from gradio.data_classes import ImageData

    path = tmp_path / "gradio-cache" / "deadbeef" / "holiday.png"
    path.parent.mkdir(parents=True)
    path.write_text("not an image at all")
    with gr.Blocks():
        box = image_upload(type="pil")
    with pytest.raises(gr.Error) as e:
        box.preprocess(ImageData(path=str(path), orig_name="holiday.png"))
    assert "holiday.png is not an image" in e.value.message and str(tmp_path) not in e.value.message


def test_result_paths_are_fresh_and_old_results_are_removed():
    first = result_path("test-results", "a.dfc")
    first.write_bytes(b"x")
    second = result_path("test-results", "a.dfc")
    assert first != second and first.exists()
    old = time.time() - RESULT_TTL_S - 5
    os.utime(first.parent, (old, old))
    result_path("test-results", "b.dfc")
    assert not first.exists() and not first.parent.exists()
