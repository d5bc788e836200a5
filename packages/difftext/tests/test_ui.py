import pytest

from diffcore.errors import InvalidInputError
from difftext.errors import BlockSizeError, EmptyPromptError


def test_ui_streams_sdar_then_ar():
    from difftext.ui import HEADERS, MASK, example_prompt, generate

    prompt = example_prompt()
    updates = list(generate(prompt, 8, 4, 0.9, 0.0, 0, False))
    masked = [sdar for sdar, ar, rows, _ in updates if MASK in sdar]
    assert masked and all(prompt in sdar for sdar in masked)  # blocks animate, still-masked positions shown
    sdar, ar, rows, note = updates[-1]
    assert MASK not in sdar and MASK not in ar
    assert len(sdar) > len(prompt) and len(ar) > len(prompt)
    assert [r[0] for r in rows] == ["SDAR (block 4, threshold 0.9)", "AR (one token per forward pass)"]
    assert all(len(r) == len(HEADERS) and r[1] >= 1 and r[2] >= 1 for r in rows)
    assert "forward passes per token" in note
    # then AR streams token by token, SDAR's text finished beside it
    ar_updates = [u for u in updates if u[1]]
    assert len({u[1] for u in ar_updates}) > 1 and all(u[0] == sdar for u in ar_updates)


@pytest.mark.parametrize(
    "prompt, block, seed, error, msg",
    [
        ("  ", 4, 0, EmptyPromptError, "the prompt is empty"),
        ("The import statement", 32, 0, BlockSizeError, "trained for block sizes"),
        ("The import statement", 4, 1.5, InvalidInputError, "seed must be an integer in \\[0, 2\\*\\*32\\), got 1.5"),
    ],
)
def test_ui_bad_input_is_a_clear_error_before_any_output(prompt, block, seed, error, msg):
    from difftext.ui import generate

    with pytest.raises(error, match=msg):
        next(generate(prompt, 8, block, 0.9, 0.0, seed, False))


def test_demo_builds():
    import gradio as gr

    from difftext.ui import build_demo

    assert isinstance(build_demo(), gr.Blocks)
