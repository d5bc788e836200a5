"""Training recipe of the shipped text models: ``diffcore train text [--stage ar|sdar]``.

1. ``ar`` — byte-level BPE on the training documents, then a small Llama
   pre-trained with next-token prediction (the AR model, shipped).
2. ``sdar`` — the conversion: the AR weights, continued with the block
   diffusion objective (block-causal attention, no logit shift, masked
   tokens weighted by 1/t), block sizes 4 / 8 / 16 drawn per step, for far
   fewer steps than the pre-training.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

import torch

from difftext.ar import ARRecipe, LMObjective, Windows, make_model, perplexity, stream_nll, token_stream
from difftext.corpus import load_documents, split_documents
from difftext.tokenizer import train_tokenizer

WEIGHTS = Path(__file__).resolve().parent / "weights"


def _logged_seconds(run: Path) -> float:
    from diffcore.prior.recipe import _logged_seconds as seconds

    return seconds(run)


def _machine() -> str:
    from diffcore.bench.report import machine_info

    m = machine_info()
    return m.get("gpu") or f"{m['cpu']}, {m['cores']} cores"


def _ship(model, tok, dest: Path, card: dict) -> None:
    """Save the model in float16 (half the bytes; it is loaded back as float32), its tokenizer and its card."""
    dest.mkdir(parents=True, exist_ok=True)
    model.to(torch.float16).save_pretrained(dest, safe_serialization=True)
    tok.save_pretrained(dest)
    (dest / "training_card.json").write_text(json.dumps(card, indent=2) + "\n")


def train_ar(recipe: ARRecipe, out: Path, weights: Path, data: str | None = None) -> Path:
    from diffcore.train import TrainConfig, train

    splits = split_documents(load_documents(data))
    tok = train_tokenizer(splits["train"], recipe.vocab_size)
    train_stream, val_stream = token_stream(tok, splits["train"]), token_stream(tok, splits["val"])
    model = make_model(recipe, len(tok), tok.pad_token_id, tok.bos_token_id, tok.eos_token_id)
    cfg = TrainConfig(
        steps=recipe.steps, batch_size=recipe.batch, lr=recipe.lr, warmup_steps=recipe.warmup, weight_decay=0.1,
        seed=recipe.seed, checkpoint_every=250, log_every=25, ema_decay=None,
    )  # fmt: skip
    run = out / "ar"
    ds = Windows(train_stream, recipe.window, recipe.steps * recipe.batch, recipe.seed)
    result = train(
        LMObjective(model),
        ds,
        cfg,
        run,
        eval_fn=lambda o, s: {"val_nll": stream_nll(o.model, val_stream)},
        eval_every=recipe.eval_every,
    )
    final = result.objective.model.half().float()  # the metrics are those of the shipped float16 weights
    nll = stream_nll(final, val_stream)
    card = {
        "model": "difftext AR (transformers LlamaForCausalLM)",
        "data": {
            "corpus": data or "pydoc_data.topics",
            "documents": {k: len(v) for k, v in splits.items()},
            "train_tokens": len(train_stream),
            "val_tokens": len(val_stream),
        },
        "steps": cfg.steps,
        "seed": recipe.seed,
        "wall_time_s": round(_logged_seconds(run), 1),
        "machine": _machine(),
        "parameters": sum(p.numel() for p in final.parameters()),
        "metrics": {"val_nll": round(nll, 4), "val_ppl": round(perplexity(nll), 2)},
        "config": asdict(cfg),
        "recipe": asdict(recipe),
        "command": f"diffcore train text --stage ar --seed {recipe.seed}",
    }
    dest = weights / "ar"
    _ship(final, tok, dest, card)
    return dest


def train_sdar(recipe: ARRecipe, out: Path, weights: Path, data: str | None = None) -> Path:
    from transformers import LlamaForCausalLM

    from diffcore.train import TrainConfig, train
    from difftext.sdar import BLOCK_SIZES, BlockDiffusionObjective, nll_bound
    from difftext.tokenizer import load_tokenizer

    src = weights / "ar"
    tok = load_tokenizer(src)
    model = LlamaForCausalLM.from_pretrained(src, use_safetensors=True, dtype=torch.float32)
    splits = split_documents(load_documents(data))
    train_stream, val_stream = token_stream(tok, splits["train"]), token_stream(tok, splits["val"])
    cfg = TrainConfig(
        steps=recipe.sdar_steps, batch_size=recipe.batch, lr=recipe.sdar_lr, warmup_steps=min(50, recipe.sdar_steps // 10),
        weight_decay=0.1, seed=recipe.seed, checkpoint_every=100, log_every=25, ema_decay=None,
    )  # fmt: skip
    run = out / "sdar"
    ds = Windows(train_stream, recipe.window, recipe.sdar_steps * recipe.batch, recipe.seed + 1)
    obj = BlockDiffusionObjective(model, blocks=BLOCK_SIZES, mask_id=tok.mask_token_id)
    mask_id = tok.mask_token_id
    result = train(
        obj, ds, cfg, run, eval_fn=lambda o, s: {"val_bound_b4": nll_bound(o.model, val_stream, block=4, mask_id=mask_id)},
        eval_every=recipe.eval_every,
    )  # fmt: skip
    final = result.objective.model.half().float()
    bounds = {
        f"val_nll_bound_block{b}": round(nll_bound(final, val_stream, block=b, mask_id=tok.mask_token_id), 4) for b in BLOCK_SIZES
    }
    card = {
        "model": "difftext SDAR (block diffusion from the AR weights; transformers LlamaForCausalLM)",
        "data": {"corpus": data or "pydoc_data.topics", "train_tokens": len(train_stream), "val_tokens": len(val_stream)},
        "steps": cfg.steps,
        "ar_steps": recipe.steps,
        "conversion_to_pretraining_steps": round(cfg.steps / recipe.steps, 3),
        "seed": recipe.seed,
        "wall_time_s": round(_logged_seconds(run), 1),
        "machine": _machine(),
        "metrics": {
            **bounds,
            "val_ar_nll_of_the_ar_model": json.loads((src / "training_card.json").read_text())["metrics"]["val_nll"],
        },
        "config": asdict(cfg),
        "command": f"diffcore train text --stage sdar --seed {recipe.seed}",
    }
    dest = weights / "sdar"
    _ship(final, tok, dest, card)
    return dest


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="diffcore train text", description="Train the text models (resumable).")
    p.add_argument("--stage", choices=("ar", "sdar", "all"), default="all")
    p.add_argument("--out", type=Path, default=Path("runs/text"))
    p.add_argument("--weights", type=Path, default=WEIGHTS)
    p.add_argument("--data", default=None, help="a folder of .txt / .md files instead of pydoc_data")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--smoke", action="store_true")
    a = p.parse_args(argv)
    recipe = ARRecipe(seed=a.seed)
    if a.smoke:
        recipe = ARRecipe(
            seed=a.seed, hidden=32, layers=1, heads=2, ffn=64, steps=4, batch=2, window=32, warmup=1, eval_every=2, sdar_steps=2
        )  # fmt: skip
    for stage in ("ar", "sdar") if a.stage == "all" else (a.stage,):
        t0 = time.perf_counter()
        dest = (train_ar if stage == "ar" else train_sdar)(recipe, a.out, a.weights, a.data)
        print(f"text stage {stage} done in {time.perf_counter() - t0:.0f} s -> {dest}")


if __name__ == "__main__":
    main()
