"""``difftext``: train the AR model, convert it to SDAR, generate, evaluate.

    difftext train-ar [--data FOLDER] [--seed 0] [--weights DIR]
    difftext convert [--weights DIR]                     # the AR weights -> SDAR block diffusion
    difftext generate "The import statement" [--model sdar|ar] [--block-size 4] [--threshold 0.9] [--dkv]
    difftext eval [--prompts 16] [--max-new-tokens 64] [--block-size 4] [--threshold 0.9] [--json OUT]

Errors a user can cause (empty prompt, bad block size or threshold, missing
weights) print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from diffcore.errors import DiffcoreError, InvalidInputError


def _train(stage: str, a: argparse.Namespace) -> int:
    from difftext.train import main

    argv = ["--stage", stage, "--out", str(a.out), "--seed", str(a.seed)]
    argv += ["--weights", str(a.weights)] if a.weights else []
    argv += ["--data", a.data] if a.data else []
    argv += ["--smoke"] if a.smoke else []
    main(argv)
    return 0


def _positive(name: str):
    def parse(v: str) -> int:
        n = int(v)
        if n < 1:
            raise argparse.ArgumentTypeError(f"{name} must be >= 1, got {n}")
        return n

    return parse


def _models(a: argparse.Namespace):
    from difftext.lm import ARLM, BlockDiffusionLM

    root = Path(a.weights) if a.weights else None
    return ARLM.load(None if root is None else root / "ar"), BlockDiffusionLM.load(None if root is None else root / "sdar")


def _generate(a: argparse.Namespace) -> int:
    ar, sdar = _models(a)
    if a.model == "ar":
        r = ar.generate(a.prompt, a.max_new_tokens, temperature=a.temperature, seed=a.seed)
    else:
        r = sdar.generate(a.prompt, a.max_new_tokens, block_size=a.block_size, threshold=a.threshold,
                          temperature=a.temperature, seed=a.seed, dkv=a.dkv, refresh=a.refresh, steps=a.steps)  # fmt: skip
    stats = {"model": a.model, "tokens": len(r.tokens), "forwards": r.forwards,
             "forwards_per_token": round(r.forwards_per_token, 4), "seconds": round(r.seconds, 4)}  # fmt: skip
    if a.json:
        print(json.dumps({"text": r.text, **stats}))
    else:
        print(a.prompt + r.text)
        print(" ".join(f"{k}={v}" for k, v in stats.items()), file=sys.stderr)
    return 0


def _eval(a: argparse.Namespace) -> int:
    import torch

    from difftext import decode
    from difftext.evaluate import SampleStats, prompts_from

    ar, sdar = _models(a)
    sdar.check_block(a.block_size)
    decode.check_params(a.threshold, a.temperature, a.max_new_tokens)
    decode.check_steps(a.block_size, a.steps)
    tok = ar.tokenizer
    prompts = prompts_from(tok, a.split, n=a.prompts, data=a.data)
    stats = {"ar": SampleStats(), "sdar": SampleStats()}
    for i, p in enumerate(prompts):
        gen = lambda: torch.Generator().manual_seed(a.seed + i) if a.temperature > 0 else None  # noqa: E731
        kw = dict(max_new_tokens=a.max_new_tokens, eos_id=tok.eos_token_id, temperature=a.temperature)
        g = decode.run(decode.ar(ar.model, [p], generator=gen(), **kw))
        stats["ar"].add(ar.model, p, g.tokens[0], g.forwards, g.seconds)
        kw.update(block=a.block_size, mask_id=tok.mask_token_id, threshold=a.threshold, steps=a.steps, generator=gen())
        dec = decode.blocks_dkv(sdar.model, p, refresh=a.refresh, **kw) if a.dkv else decode.blocks(sdar.model, [p], **kw)
        g = decode.run(dec)
        stats["sdar"].add(ar.model, p, g.tokens[0], g.forwards, g.seconds, g.steps_per_block)
    out = {
        "split": a.split, "prompts": len(prompts), "max_new_tokens": a.max_new_tokens, "block_size": a.block_size,
        "threshold": a.threshold, "steps": a.steps, "temperature": a.temperature, "dkv": a.dkv, "seed": a.seed,
        "models": {k: v.summary() for k, v in stats.items()},
    }  # fmt: skip
    for k, v in out["models"].items():
        print(f"{k:5s} " + "  ".join(f"{m}={x:.3f}" if isinstance(x, float) else f"{m}={x}" for m, x in v.items()))
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="difftext", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    for name, help_ in (("train-ar", "pre-train the tokenizer and the AR model"), ("convert", "convert the AR model to SDAR")):
        s = sub.add_parser(name, help=help_)
        s.add_argument("--out", type=Path, default=Path("runs/text"), help="run folder (checkpoints, logs)")
        s.add_argument("--weights", default=None, help="where the models go (default: the package's weights)")
        s.add_argument("--seed", type=int, default=0)
        s.add_argument("--smoke", action="store_true", help="a tiny model and a few steps: checks the recipe runs")
        s.add_argument("--data", default=None, help="a folder of .txt / .md files instead of pydoc_data (the same for both)")
    for name in ("generate", "eval"):
        s = sub.add_parser(
            name, help="generate a continuation" if name == "generate" else "score both models on held-out prompts"
        )
        if name == "generate":
            s.add_argument("prompt")
            s.add_argument("--model", choices=("sdar", "ar"), default="sdar")
            s.add_argument("--json", action="store_true", help="print the text and the counts as one JSON object")
        else:
            s.add_argument("--split", choices=("val", "test"), default="test")
            s.add_argument("--prompts", type=_positive("--prompts"), default=16)
            s.add_argument("--json", default=None, help="write the results to this file")
            s.add_argument("--data", default=None, help="the corpus the models were trained on, if not pydoc_data")
        s.add_argument("--max-new-tokens", type=_positive("--max-new-tokens"), default=64)
        s.add_argument("--block-size", type=int, default=4)
        s.add_argument("--threshold", type=float, default=0.9)
        s.add_argument("--temperature", type=float, default=0.0)
        s.add_argument("--seed", type=int, default=0)
        s.add_argument("--steps", type=int, default=None, help="denoising steps per block (default: the block size)")
        s.add_argument("--dkv", action="store_true", help="dKV-Cache: delayed caching inside the block")
        s.add_argument("--refresh", type=int, default=0, help="with --dkv: recompute the block every N steps (0: never)")
        s.add_argument("--weights", default=None, help="a folder with ar/ and sdar/ (default: the shipped models)")
    return p


def main(argv: list[str] | None = None) -> int:
    a = _parser().parse_args(argv)
    try:
        if a.cmd in ("train-ar", "convert"):
            return _train("ar" if a.cmd == "train-ar" else "sdar", a)
        if a.seed < 0:
            raise InvalidInputError(f"--seed must be >= 0, got {a.seed}")
        if a.refresh and not a.dkv:
            raise InvalidInputError("--refresh applies to dKV-Cache decoding only: add --dkv")
        return _generate(a) if a.cmd == "generate" else _eval(a)
    except DiffcoreError as e:
        print(f"difftext {a.cmd}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
