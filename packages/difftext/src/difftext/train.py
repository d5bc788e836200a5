"""Training recipe of the shipped text models: ``diffcore train text [--stage ar|sdar]``.

Two stages on diffcore's stage runner (:func:`diffcore.train.run_stages`),
each shipped with its :class:`~diffcore.train.TrainingCard`:

1. ``ar`` — byte-level BPE on the training documents, then a small Llama
   pre-trained with next-token prediction (the AR model, shipped).
2. ``sdar`` — the conversion: the AR weights, continued with the block
   diffusion objective (block-causal attention, no logit shift, masked
   tokens weighted by 1/t), block sizes 4 / 8 / 16 drawn per step, for far
   fewer steps than the pre-training.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from diffcore.train import Run, TrainConfig, TrainingCard, run_stages, train
from difftext.ar import ARRecipe, LMObjective, Windows, make_model, perplexity, stream_nll, token_stream
from difftext.corpus import load_documents, split_documents
from difftext.tokenizer import train_tokenizer

WEIGHTS = Path(__file__).resolve().parent / "weights"


def _ship(model: torch.nn.Module, tok, dest: Path, card: TrainingCard) -> Path:
    """Save the model in float16 (half the bytes; it is loaded back as float32), its tokenizer and its card."""
    dest.mkdir(parents=True, exist_ok=True)
    model.to(torch.float16).save_pretrained(dest, safe_serialization=True)
    tok.save_pretrained(dest)
    card.write(dest)
    return dest


def _card(
    what: str, data: str, model: torch.nn.Module, cfg: TrainConfig, run: Run, stage: str, metrics: dict, **details: object
) -> TrainingCard:
    """The card of one stage: the shared keys, ``details``, the loop's config and the float16 storage."""
    details["storage_dtype"] = "float16"
    return run.card(stage, model=what, data=data, config=cfg, parameters=model, metrics=metrics, **details)


def train_ar(recipe: ARRecipe, run: Run) -> Path:
    """Stage ``ar``: the tokenizer, then the AR pre-training."""
    splits = split_documents(load_documents(run.data))
    tok = train_tokenizer(splits["train"], recipe.vocab_size)
    train_stream, val_stream = token_stream(tok, splits["train"]), token_stream(tok, splits["val"])
    model = make_model(recipe, len(tok), tok.pad_token_id, tok.bos_token_id, tok.eos_token_id)
    cfg = TrainConfig(
        steps=recipe.steps,
        batch_size=recipe.batch,
        lr=recipe.lr,
        warmup_steps=recipe.warmup,
        weight_decay=0.1,
        seed=recipe.seed,
        ema_decay=None,
    )
    ds = Windows(train_stream, recipe.window, recipe.steps * recipe.batch, recipe.seed)
    result = train(
        LMObjective(model),
        ds,
        cfg,
        run.out / "ar",
        eval_fn=lambda o, s: {"val_nll": stream_nll(o.model, val_stream)},
        eval_every=recipe.eval_every,
    )
    final = result.objective.model.half().float()  # the metrics are those of the shipped float16 weights
    nll = stream_nll(final, val_stream)
    corpus = run.data or "pydoc_data.topics"
    card = _card(
        "difftext AR (transformers LlamaForCausalLM)",
        f"{corpus}: {len(train_stream)} training tokens, {len(val_stream)} validation tokens (split by document)",
        final,
        cfg,
        run,
        "ar",
        {"val_nll": round(nll, 4), "val_ppl": round(perplexity(nll), 2)},
        corpus=corpus,
        documents={k: len(v) for k, v in splits.items()},
        train_tokens=len(train_stream),
        val_tokens=len(val_stream),
        recipe=asdict(recipe),
    )
    return _ship(final, tok, run.weights / "ar", card)


def train_sdar(recipe: ARRecipe, run: Run) -> Path:
    """Stage ``sdar``: the block-diffusion conversion of the AR weights under ``run.weights / "ar"``."""
    from transformers import LlamaForCausalLM

    from difftext.limits import BLOCK_SIZES
    from difftext.sdar import BlockDiffusionObjective, nll_bound
    from difftext.tokenizer import load_tokenizer

    src = run.weights / "ar"
    tok = load_tokenizer(src)
    model = LlamaForCausalLM.from_pretrained(src, use_safetensors=True, dtype=torch.float32)
    splits = split_documents(load_documents(run.data))
    train_stream, val_stream = token_stream(tok, splits["train"]), token_stream(tok, splits["val"])
    cfg = TrainConfig(
        steps=recipe.sdar_steps,
        batch_size=recipe.batch,
        lr=recipe.sdar_lr,
        warmup_steps=min(50, recipe.sdar_steps // 10),
        weight_decay=0.1,
        seed=recipe.seed,
        checkpoint_every=100,
        ema_decay=None,
    )
    ds = Windows(train_stream, recipe.window, recipe.sdar_steps * recipe.batch, recipe.seed + 1)
    obj = BlockDiffusionObjective(model, blocks=BLOCK_SIZES, mask_id=tok.mask_token_id)
    mask_id = tok.mask_token_id
    result = train(
        obj,
        ds,
        cfg,
        run.out / "sdar",
        eval_fn=lambda o, s: {"val_bound_b4": nll_bound(o.model, val_stream, block=4, mask_id=mask_id)},
        eval_every=recipe.eval_every,
    )
    final = result.objective.model.half().float()
    bounds = {
        f"val_nll_bound_block{b}": round(nll_bound(final, val_stream, block=b, mask_id=tok.mask_token_id), 4) for b in BLOCK_SIZES
    }
    corpus = run.data or "pydoc_data.topics"
    card = _card(
        "difftext SDAR (block diffusion from the AR weights; transformers LlamaForCausalLM)",
        f"{corpus}: {len(train_stream)} training tokens, {len(val_stream)} validation tokens (split by document)",
        final,
        cfg,
        run,
        "sdar",
        {**bounds, "val_ar_nll_of_the_ar_model": TrainingCard.read(src).metrics["val_nll"]},
        corpus=corpus,
        train_tokens=len(train_stream),
        val_tokens=len(val_stream),
        ar_steps=recipe.steps,
        conversion_to_pretraining_steps=round(cfg.steps / recipe.steps, 3),
        recipe=asdict(recipe),
    )
    return _ship(final, tok, run.weights / "sdar", card)


STAGES = {"ar": train_ar, "sdar": train_sdar}


def main(argv: list[str] | None = None) -> None:
    """``diffcore train text``: the tokenizer and AR pre-training, then the SDAR conversion (every stage by default)."""
    run_stages(argv, "text", ARRecipe(), STAGES, WEIGHTS)


if __name__ == "__main__":
    main()
