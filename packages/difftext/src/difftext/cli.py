"""``difftext``: train the AR model and convert it to SDAR, generate, evaluate.

    difftext train [ARGS...]                             # = diffcore train text ARGS (--stage ar|sdar|all, --weights ROOT …)
    difftext generate "The import statement" [--model sdar|ar] [--block-size 4] [--threshold 0.9] [--dkv] [--json OUT]
    difftext eval [--prompts 16] [--max-new-tokens 64] [--block-size 4] [--threshold 0.9] [--json OUT]

``--weights ROOT`` is a folder laid out like the shipped weights (``ar/`` and
``sdar/``), as ``difftext train --weights ROOT`` writes it. Errors a user can
cause (empty prompt, bad block size, threshold or seed, missing weights) print
``difftext: error: …`` and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from diffcore.cli_errors import run_command
from diffcore.errors import InvalidInputError
from diffcore.validate import count_arg, seed_arg
from difftext.limits import BLOCK_SIZES, MAX_NEW_TOKENS, MAX_PROMPTS, check_params, check_prompt, check_refresh, check_steps


def _train(args: list[str]) -> int:
    from difftext.train import main

    main(args)
    return 0


def _models(a: argparse.Namespace):
    from difftext.lm import ARLM, BlockDiffusionLM

    return ARLM.load(path=a.weights), BlockDiffusionLM.load(path=a.weights)


def _generate(a: argparse.Namespace) -> int:
    ar, sdar = _models(a)
    if a.model == "ar":
        r = ar.generate(a.prompt, a.max_new_tokens, temperature=a.temperature, seed=a.seed)
    else:
        r = sdar.generate(
            a.prompt,
            a.max_new_tokens,
            block_size=a.block_size,
            threshold=a.threshold,
            temperature=a.temperature,
            seed=a.seed,
            dkv=a.dkv,
            refresh=a.refresh,
            steps=a.steps,
        )
    stats = {
        "model": a.model,
        "tokens": len(r.tokens),
        "forwards": r.forwards,
        "forwards_per_token": round(r.forwards_per_token, 4),
        "seconds": round(r.seconds, 4),
    }
    print(a.prompt + r.text)
    print(" ".join(f"{k}={v}" for k, v in stats.items()), file=sys.stderr)
    if a.json:
        a.json.write_text(json.dumps({"prompt": a.prompt, "text": r.text, **stats}, indent=2) + "\n")
    return 0


def _eval(a: argparse.Namespace) -> int:
    import torch

    from difftext import decode
    from difftext.evaluate import SampleStats, prompts_from

    ar, sdar = _models(a)
    sdar.check_block(a.block_size)
    tok = ar.tokenizer
    prompts = prompts_from(tok, a.split, n=a.prompts, data=a.data)
    stats = {"ar": SampleStats(), "sdar": SampleStats()}
    for i, p in enumerate(prompts):
        gen = lambda i=i: torch.Generator().manual_seed(a.seed + i) if a.temperature > 0 else None  # noqa: E731
        kw = dict(max_new_tokens=a.max_new_tokens, eos_id=tok.eos_token_id, temperature=a.temperature)
        g = decode.run(decode.ar(ar.model, [p], generator=gen(), **kw))
        stats["ar"].add(ar.model, p, g.tokens[0], g.forwards, g.seconds)
        kw.update(block=a.block_size, mask_id=tok.mask_token_id, threshold=a.threshold, steps=a.steps, generator=gen())
        dec = decode.blocks_dkv(sdar.model, p, refresh=a.refresh, **kw) if a.dkv else decode.blocks(sdar.model, [p], **kw)
        g = decode.run(dec)
        stats["sdar"].add(ar.model, p, g.tokens[0], g.forwards, g.seconds, g.steps_per_block)
    out = {
        "split": a.split,
        "prompts": len(prompts),
        "max_new_tokens": a.max_new_tokens,
        "block_size": a.block_size,
        "threshold": a.threshold,
        "steps": a.steps,
        "temperature": a.temperature,
        "dkv": a.dkv,
        "seed": a.seed,
        "models": {k: v.summary() for k, v in stats.items()},
    }
    for k, v in out["models"].items():
        print(f"{k:5s} " + "  ".join(f"{m}={x:.3f}" if isinstance(x, float) else f"{m}={x}" for m, x in v.items()))
    if a.json:
        a.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="difftext", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    # handled before parsing (its arguments go to difftext.train:main); listed here for --help
    sub.add_parser("train", help="retrain the shipped weights: ARGS go to difftext.train (= `diffcore train text ARGS`)")
    for name in ("generate", "eval"):
        s = sub.add_parser(
            name, help="generate a continuation" if name == "generate" else "score both models on held-out prompts"
        )
        if name == "generate":
            s.add_argument("prompt")
            s.add_argument("--model", choices=("sdar", "ar"), default="sdar")
            s.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the text and counts here")
        else:
            s.add_argument("--split", choices=("val", "test"), default="test")
            s.add_argument("--prompts", type=count_arg("--prompts", high=MAX_PROMPTS), default=16)
            s.add_argument("--json", type=Path, default=None, metavar="PATH", help="write the results to this file")
            s.add_argument("--data", default=None, help="the corpus the models were trained on, if not pydoc_data")
        s.add_argument("--max-new-tokens", type=count_arg("--max-new-tokens", high=MAX_NEW_TOKENS), default=64)
        s.add_argument("--block-size", type=int, choices=BLOCK_SIZES, default=4)
        s.add_argument("--threshold", type=float, default=0.9)
        s.add_argument("--temperature", type=float, default=0.0)
        s.add_argument("--seed", type=seed_arg, default=0)
        s.add_argument("--steps", type=int, default=None, help="denoising steps per block (default: the block size)")
        s.add_argument("--dkv", action="store_true", help="dKV-Cache: delayed caching inside the block")
        s.add_argument("--refresh", type=int, default=0, help="with --dkv: recompute the block every N steps (0: never)")
        s.add_argument(
            "--weights", type=Path, default=None, metavar="ROOT", help="a weights root with ar/ and sdar/ (default: shipped)"
        )
    return p


def _run(a: argparse.Namespace) -> int:
    if a.refresh and not a.dkv:
        raise InvalidInputError("--refresh applies to dKV-Cache decoding only: add --dkv")
    # every argument is checked before a model is loaded (seconds): a mistake is refused at once
    if a.cmd == "generate":
        check_prompt(a.prompt)
    check_params(a.threshold, a.temperature, a.max_new_tokens)
    check_steps(a.block_size, a.steps)
    check_refresh(a.refresh)
    return _generate(a) if a.cmd == "generate" else _eval(a)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["train"]:
        return run_command("difftext", lambda: _train(argv[1:]))
    a = _parser().parse_args(argv)
    return run_command("difftext", lambda: _run(a))


if __name__ == "__main__":
    sys.exit(main())
