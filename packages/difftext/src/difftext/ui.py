"""The hub's "Text diffusion (SDAR)" tab: continue a prompt with SDAR, block by block, next to AR decoding.

*Generate* streams the SDAR model's decoding after every forward pass: the
finished text, then the current block with its still-masked positions shown as
``▒`` (filled in parallel, most confident first, as their confidence passes the
threshold). The autoregressive model it was converted from then continues the
same prompt with the same token budget, temperature and seed, one token per
forward pass; a table compares both (tokens, forward passes, seconds).

Weights: the shipped ones, or — when the environment variable
``DIFFTEXT_WEIGHTS`` is set — a folder with the sub-folders ``ar`` and
``sdar`` (each a saved model: config, safetensors weights and tokenizer).

Gradio is imported here only (the ``app`` extra).
"""

from __future__ import annotations

import html
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from diffcore.offline_gradio import gr, integer_choices, on, page
from diffcore.validate import check_seed
from difftext.corpus import load_documents, split_documents
from difftext.limits import BLOCK_SIZES, check_params, check_prompt
from difftext.lm import ARLM, BlockDiffusionLM, Partial, TextResult

MASK = "▒"
PROMPT_WORDS = 8
HEADERS = ["model", "tokens", "forward passes", "forward passes / token", "seconds", "tokens/s"]


def _weights() -> Path | None:
    root = os.environ.get("DIFFTEXT_WEIGHTS")
    return Path(root) if root else None


def example_prompt() -> str:
    """The first words of the first held-out test document, below its title."""
    doc = split_documents(load_documents())["test"][0]
    body = doc.text.split("\n\n", 1)[-1]
    return " ".join(body.split()[:PROMPT_WORDS])


def render(prompt: str, text: str, block: tuple[str | None, ...] = ()) -> str:
    """HTML: the prompt (dimmed), the finished text, and the current block with its masked positions as ``MASK``."""
    current = "".join(MASK if t is None else html.escape(t) for t in block)
    return (
        '<div style="white-space: pre-wrap; font-family: monospace; line-height: 1.5">'
        f'<span style="opacity: 0.55">{html.escape(prompt)}</span>'
        f'<span class="difftext-generated">{html.escape(text)}'
        + (f'<span style="background: rgba(250, 204, 21, 0.35)">{current}</span>' if block else "")
        + "</span></div>"
    )


def _row(model: str, r: TextResult) -> list[Any]:
    return [
        model,
        len(r.tokens),
        r.forwards,
        round(r.forwards_per_token, 2),
        round(r.seconds, 2),
        round(r.tokens_per_second, 1),
    ]


def _note(sdar: TextResult, ar: TextResult) -> str:
    ratio = sdar.forwards_per_token / ar.forwards_per_token
    return (
        f"SDAR: {sdar.forwards_per_token:.2f} forward passes per token, AR: {ar.forwards_per_token:.2f} "
        f"(SDAR / AR: {ratio:.2f}×). Seconds are wall clock on this machine, streaming to this page included."
    )


def generate(
    prompt: str,
    max_new_tokens: int,
    block_size: int,
    threshold: float,
    temperature: float,
    seed: int,
    dkv: bool,
) -> Iterator[tuple[str, str, list[list[Any]], str]]:
    """Stream SDAR, then AR, on the prompt; yields (SDAR HTML, AR HTML, metrics rows, note) after every forward pass.

    Bad input raises before anything is yielded (a :class:`DiffcoreError`).
    """
    s = check_seed(seed)  # checked before a model loads
    check_prompt(prompt)
    check_params(threshold, temperature, max_new_tokens)
    sdar_stream = BlockDiffusionLM.load(path=_weights()).stream(
        prompt, max_new_tokens, block_size=block_size, threshold=threshold, temperature=temperature, seed=s, dkv=dkv
    )
    ar_stream = ARLM.load(path=_weights()).stream(prompt, max_new_tokens, temperature=temperature, seed=s)
    label = f"SDAR (block {block_size}, threshold {threshold:g}" + (", dKV-Cache)" if dkv else ")")
    rows: list[list[Any]] = []
    results: list[TextResult] = []
    outs = ["", ""]  # SDAR, AR
    for i, (model, stream) in enumerate(((label, sdar_stream), ("AR (one token per forward pass)", ar_stream))):
        for item in stream:
            if isinstance(item, Partial):
                outs[i] = render(prompt, item.text, item.block)
                note = f"{model}: forward pass {item.forwards}, {item.seconds:.1f} s"
            else:
                outs[i] = render(prompt, item.text)
                results.append(item)
                rows.append(_row(model, item))
                note = _note(*results) if len(results) == 2 else f"{model}: done; AR next"
            yield outs[0], outs[1], rows, note


#: the demo's opening text (Markdown)
INTRO = """\
### Text diffusion — SDAR block diffusion against autoregressive decoding
A small autoregressive Llama was trained on Python's reference documentation and then converted into an
**SDAR** block-diffusion model: text is written in blocks, left to right with a KV cache, and inside a block
all masked positions (▒) are predicted at once; those whose confidence passes the **threshold** are committed,
so a block can take fewer forward passes than it has tokens. **dKV-Cache** also caches the keys and values of
tokens decoded inside the current block (an approximation). The prompt is the start of a held-out test
document.
"""


def build_demo() -> gr.Blocks:
    """The Text diffusion (SDAR) demo."""
    with page("Text diffusion (SDAR)", INTRO) as demo:
        prompt = gr.Textbox(value=example_prompt(), lines=2, label="Prompt", elem_id="text-prompt")
        with gr.Row():
            tokens = gr.Slider(8, 128, value=48, step=1, precision=0, label="Max new tokens", elem_id="text-tokens")
            block = integer_choices(gr.Radio(list(BLOCK_SIZES), value=BLOCK_SIZES[0], label="Block size", elem_id="text-block"))
            threshold = gr.Slider(0.05, 1.0, value=0.9, step=0.05, label="Confidence threshold", elem_id="text-threshold")
        with gr.Row():
            temperature = gr.Slider(0.0, 1.5, value=0.0, step=0.05, label="Temperature (0: greedy)", elem_id="text-temperature")
            seed = gr.Number(value=0, precision=0, label="Seed", elem_id="text-seed")
            dkv = gr.Checkbox(value=False, label="dKV-Cache", elem_id="text-dkv")
        run = gr.Button("Generate", variant="primary", elem_id="text-run")
        note = gr.Markdown(elem_id="text-note")
        with gr.Row():
            with gr.Column():
                gr.Markdown(f"**SDAR** — block by block ({MASK}: still masked)")
                sdar = gr.HTML(elem_id="text-sdar")
            with gr.Column():
                gr.Markdown("**AR** — one token per forward pass")
                ar = gr.HTML(elem_id="text-ar")
        table = gr.Dataframe(headers=HEADERS, label="Generation metrics", interactive=False, elem_id="text-metrics")
        on(
            run.click,
            generate,
            [prompt, tokens, block, threshold, temperature, seed, dkv],
            [sdar, ar, table, note],
            api_name="text_generate",
        )
    return demo
