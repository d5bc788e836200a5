"""``diffcore bench text``: SDAR block diffusion (with and without dKV-Cache) against AR decoding, in one run.

All on held-out text: prompts are windows of the ``test`` split's documents,
likelihoods are on the ``val`` split; no document of either was trained on.

- Quality: the AR model's validation NLL against the SDAR model's own NLL
  upper bound (block sizes 4 / 8 / 16); generative perplexity of every
  setting's samples scored by the AR model; distinct-2 / distinct-4 of each
  sample (repetition lowers them).
- Speed: model forward passes per generated token (the prompt's pass
  included, for every decoder), tokens per second and the ratio to AR decoding
  at the same temperature. At batch 1 every prompt is decoded by every setting
  in turn (the order rotating per prompt), so the settings share the
  machine's state; at batch 16 the settings are timed paired and interleaved.
- The cost of one forward pass by query length, with a cache behind it: on
  a CPU a pass over a block is not free.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from difftext import decode
from difftext.evaluate import SampleStats, prompts_from
from difftext.lm import ARLM, BlockDiffusionLM

if TYPE_CHECKING:
    from diffcore.bench.report import Report

PROMPTS, QUICK_PROMPTS = 16, 2
NEW_TOKENS, QUICK_NEW_TOKENS = 64, 8
THRESHOLDS = (0.1, 0.3, 0.5, 0.7, 0.9, 0.95, 0.99)
SAMPLED = 0.7  # the temperature of the sampled settings, AR and SDAR alike


@dataclass(frozen=True)
class Setting:
    label: str
    block: int = 0  # 0: AR
    threshold: float = 1.0
    temperature: float = 0.0
    dkv: bool = False
    refresh: int = 0
    steps: int | None = None  # denoising steps per block; None: the block size

    @property
    def ar(self) -> bool:
        return self.block == 0


def settings() -> list[Setting]:
    out = [Setting("AR greedy"), Setting(f"AR T={SAMPLED}", temperature=SAMPLED)]
    out += [Setting(f"SDAR b{b} thr {t}", b, t) for b in (4, 8, 16) for t in THRESHOLDS]
    out += [Setting(f"SDAR+dKV b4 thr {t}", 4, t, dkv=True) for t in THRESHOLDS]
    out += [Setting(f"SDAR+dKV b{b} thr 0.9", b, 0.9, dkv=True) for b in (8, 16)]
    out += [Setting("SDAR+dKV b4 thr 0.9 refresh 2", 4, 0.9, dkv=True, refresh=2)]
    out += [Setting(f"SDAR b{b} static {b // 2} steps", b, 1.0, steps=b // 2) for b in (4, 8, 16)]
    out += [Setting("SDAR b4 static 1 step", 4, 1.0, steps=1)]
    out += [
        Setting(f"SDAR b4 thr 0.9 T={SAMPLED}", 4, 0.9, SAMPLED),
        Setting(f"SDAR+dKV b4 thr 0.9 T={SAMPLED}", 4, 0.9, SAMPLED, True),
    ]
    return out


def _decoder(s: Setting, ar: ARLM, sdar: BlockDiffusionLM, prompts: list[list[int]], new: int, seed: int) -> decode.Decoder:
    tok = ar.tokenizer
    gen = torch.Generator().manual_seed(seed) if s.temperature > 0 else None
    if s.ar:
        return decode.ar(ar.model, prompts, max_new_tokens=new, eos_id=tok.eos_token_id, temperature=s.temperature, generator=gen)
    kw = dict(
        max_new_tokens=new,
        block=s.block,
        mask_id=tok.mask_token_id,
        eos_id=tok.eos_token_id,
        threshold=s.threshold,
        temperature=s.temperature,
        steps=s.steps,
        generator=gen,
    )
    if s.dkv:
        return decode.blocks_dkv(sdar.model, prompts[0], refresh=s.refresh, **kw)
    return decode.blocks(sdar.model, prompts, **kw)


def batch1_rows(ar: ARLM, sdar: BlockDiffusionLM, prompts: list[list[int]], new: int) -> tuple[list[dict[str, Any]], dict]:
    sets = settings()
    for s in sets:  # warm-up: lazy imports, allocator
        decode.run(_decoder(s, ar, sdar, prompts[:1], 4, 0))
    stats = {s.label: SampleStats() for s in sets}
    examples = {}
    for i, p in enumerate(prompts):
        order = sets[i % len(sets) :] + sets[: i % len(sets)]
        for s in order:
            g = decode.run(_decoder(s, ar, sdar, [p], new, seed=i))
            stats[s.label].add(ar.model, p, g.tokens[0], g.forwards, g.seconds, g.steps_per_block)
            if i == 0:
                examples[s.label] = ar.tokenizer.decode(g.tokens[0])
    rows = []
    base = {0.0: stats["AR greedy"].summary(), SAMPLED: stats[f"AR T={SAMPLED}"].summary()}
    for s in sets:
        row = {
            "setting": s.label,
            "block": s.block or "–",
            "threshold": s.threshold if not s.ar else "–",
            "temperature": s.temperature,
            "dKV": "yes" if s.dkv else "no",
            **stats[s.label].summary(),
        }
        row["speed vs AR (same T)"] = row["tokens / s"] / base[s.temperature]["tokens / s"]
        row["gen-ppl vs AR (same T)"] = row["gen-ppl (AR-scored)"] / base[s.temperature]["gen-ppl (AR-scored)"]
        if s.ar:
            row["steps / block"] = "–"
        rows.append(row)
    return rows, examples


def batch_rows(ar: ARLM, sdar: BlockDiffusionLM, prompts: list[list[int]], new: int, repeats: int) -> list[dict[str, Any]]:
    from diffcore.bench.timing import time_paired

    sets = [Setting("AR greedy")] + [Setting(f"SDAR b{b} thr {t}", b, t) for b, t in ((4, 0.5), (4, 0.9), (8, 0.9), (16, 0.9))]
    sets.append(Setting("SDAR b4 static 2 steps", 4, 1.0, steps=2))
    runs: dict[str, decode.Generation] = {}

    def work(s: Setting):
        return lambda: runs.__setitem__(s.label, decode.run(_decoder(s, ar, sdar, prompts, new, 0)))

    timing = time_paired({s.label: work(s) for s in sets}, baseline="AR greedy", repeats=repeats, warmup=1)
    rows = []
    for s in sets:
        g, t = runs[s.label], timing[s.label]
        longest = max(len(x) for x in g.tokens)
        tokens = sum(len(x) for x in g.tokens)
        rows.append(
            {
                "setting": s.label,
                "batch": len(prompts),
                "forwards / token": g.forwards / max(longest, 1),
                "tokens / s": tokens / t.seconds,
                "seconds (median)": t.seconds,
                "speed vs AR": 1 / t.ratio,
                "ratio IQR": f"{t.ratio_iqr[0]:.3f}–{t.ratio_iqr[1]:.3f}",
            }
        )
    return rows


@torch.no_grad()
def forward_cost_rows(model, repeats: int) -> list[dict[str, Any]]:
    """Time of one forward pass of ``q`` query tokens over a 96-token cache, paired against ``q = 1``."""
    from transformers import DynamicCache

    from diffcore.bench.timing import time_paired

    past = torch.randint(10, 1000, (1, 96))
    cache = DynamicCache()
    model(input_ids=past, cache=cache, use_cache=True)

    def step(q: int):
        def f():
            attn = torch.ones(1, 1, q, 96 + q, dtype=torch.bool)
            model(
                input_ids=torch.full((1, q), 5),
                attention_mask=attn,
                position_ids=torch.arange(96, 96 + q)[None],
                cache=cache,
                use_cache=True,
            )
            cache.crop(-q)

        return f

    qs = (1, 2, 4, 8, 16, 32)
    timing = time_paired({f"q={q}": step(q) for q in qs}, baseline="q=1", repeats=repeats, warmup=3)
    return [{"query tokens": q, "ms (median)": timing[f"q={q}"].seconds * 1e3, "time / q=1": timing[f"q={q}"].ratio} for q in qs]


@torch.no_grad()
def confidence_rows(ar: ARLM, sdar: BlockDiffusionLM, prompts: list[list[int]], new: int, block: int = 4) -> list[dict[str, Any]]:
    """How confident each model is on AR-greedy continuations of the prompts: what a confidence threshold sees.

    AR: the probability of its greedy next token. SDAR: with a block wholly masked behind the clean text before it,
    the top probability at each position of the block (position 1 is where AR would predict; the later ones are
    predicted in parallel).
    """
    from difftext.decode import block_causal

    tok = ar.tokenizer
    ar_p: list[float] = []
    pos_p: list[list[float]] = [[] for _ in range(block)]
    for p in prompts:
        cut = len(p) // block * block
        g = decode.run(decode.ar(ar.model, [p[:cut]], max_new_tokens=new, eos_id=tok.eos_token_id)).tokens[0]
        ids = p[:cut] + g
        probs = torch.softmax(ar.model(input_ids=torch.tensor([ids])).logits[0, cut - 1 : -1].float(), -1)
        ar_p += probs.max(-1).values.tolist()
        for s in range(cut, cut + len(g) // block * block, block):
            x = torch.tensor([ids[:s] + [tok.mask_token_id] * block])
            logits = sdar.model(input_ids=x, attention_mask=block_causal(s + block, block)[None, None]).logits[0, s:]
            for i, c in enumerate(torch.softmax(logits.float(), -1).max(-1).values.tolist()):
                pos_p[i].append(c)

    def row(name: str, xs: list[float]) -> dict[str, Any]:
        t = torch.tensor(xs)
        return {
            "model": name,
            "n": len(xs),
            "mean": float(t.mean()),
            **{f"> {q}": float((t > q).float().mean()) for q in (0.5, 0.9, 0.99)},
        }

    return [row("AR, its greedy next token", ar_p)] + [
        row(f"SDAR block {block}, position {i + 1} (block all masked)", xs) for i, xs in enumerate(pos_p)
    ]


def likelihood_rows(ar: ARLM, sdar: BlockDiffusionLM, quick: bool) -> list[dict[str, Any]]:
    from difftext.ar import perplexity, stream_nll, token_stream
    from difftext.corpus import load_documents, split_documents
    from difftext.limits import BLOCK_SIZES
    from difftext.sdar import nll_bound

    val = token_stream(ar.tokenizer, split_documents(load_documents())["val"])
    if quick:
        val = val[:1024]
    nll = stream_nll(ar.model, val)
    rows = [{"model": "AR (exact NLL)", "val NLL (nats/token)": nll, "val perplexity": perplexity(nll)}]
    for b in BLOCK_SIZES:
        bound = nll_bound(sdar.model, val, block=b, mask_id=ar.tokenizer.mask_token_id, samples=1 if quick else 4)
        rows.append(
            {"model": f"SDAR block {b} (upper bound)", "val NLL (nats/token)": bound, "val perplexity": perplexity(bound)}
        )
    return rows


def check_goals(report: Report, b1: list[dict[str, Any]], bn: list[dict[str, Any]]) -> None:
    """The issue's goals, checked against this run's numbers, into the report's goals section; the rest as notes."""
    r = {x["setting"]: x for x in b1}
    main, dkv = r["SDAR b4 thr 0.9"], r["SDAR+dKV b4 thr 0.9"]
    sampled, ar_s = r[f"SDAR b4 thr 0.9 T={SAMPLED}"], r[f"AR T={SAMPLED}"]
    fpt = main["forwards / token"]
    gap = sampled["gen-ppl (AR-scored)"] / ar_s["gen-ppl (AR-scored)"] - 1
    report.goal("forward passes per token < 0.6 (threshold 0.9, block 4)", f"{fpt:.3f}", fpt < 0.6)
    report.goal(
        f"generative perplexity within 15% of AR sampling (T={SAMPLED}, threshold 0.9, block 4)",
        f"{sampled['gen-ppl (AR-scored)']:.1f} vs {ar_s['gen-ppl (AR-scored)']:.1f} ({gap:+.1%})",
        abs(gap) <= 0.15,
    )
    lines = [
        f"- dKV-Cache at block 4, threshold 0.9: {dkv['tokens / s'] / main['tokens / s']:.2f}x the tokens/s of the exact "
        f"decoder, generative perplexity {dkv['gen-ppl (AR-scored)']:.1f} vs {main['gen-ppl (AR-scored)']:.1f} "
        f"({dkv['gen-ppl (AR-scored)'] / main['gen-ppl (AR-scored)'] - 1:+.1%}), forward passes per token "
        f"{dkv['forwards / token']:.3f} vs {fpt:.3f}.",
    ]
    wins = [x["setting"] for x in b1 if not x["setting"].startswith("AR") and x["speed vs AR (same T)"] > 1]
    lines.append(f"- batch 1: settings faster than AR at the same temperature: {', '.join(wins) or 'none'}.")
    for x in bn:
        if x["setting"] != "AR greedy":
            lines.append(f"- batch {x['batch']}: {x['setting']} runs at {x['speed vs AR']:.2f}x AR greedy's speed.")
    report.text("Speed against AR", "\n".join(lines))


def _inline(text: str) -> str:
    return text.replace("\n", " ").replace("`", "'")


def _plots(report, b1: list[dict[str, Any]]) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    # threshold sweeps only (no static schedules, no refresh), greedy
    greedy = [x for x in b1 if x["temperature"] == 0 and "static" not in x["setting"] and "refresh" not in x["setting"]]
    for label, pick in [(f"SDAR block {b}", lambda x, b=b: x["block"] == b and x["dKV"] == "no") for b in (4, 8, 16)] + [
        ("SDAR+dKV block 4", lambda x: x["block"] == 4 and x["dKV"] == "yes")
    ]:
        pts = sorted((x["forwards / token"], x["gen-ppl (AR-scored)"]) for x in greedy if pick(x))
        ax.plot(*zip(*pts, strict=True), "o-", label=label)
    static = [x for x in b1 if "static" in x["setting"]]
    ax.plot([x["forwards / token"] for x in static], [x["gen-ppl (AR-scored)"] for x in static], "v", label="SDAR static top-k")
    ar = next(x for x in b1 if x["setting"] == "AR greedy")
    ax.plot([ar["forwards / token"]], [ar["gen-ppl (AR-scored)"]], "k*", ms=12, label="AR greedy")
    ax.set_xlabel("forward passes per token")
    ax.set_yscale("log")
    ax.set_ylabel("generative perplexity (AR-scored, log scale)")
    ax.set_title(f"Greedy decoding, batch 1 (thresholds {THRESHOLDS[0]}–{THRESHOLDS[-1]})")
    ax.legend()
    fig.tight_layout()
    paths.append(report.plot_path("frontier"))
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for b in (4, 8, 16):
        pts = sorted((x["threshold"], x["tokens / s"]) for x in greedy if x["block"] == b and x["dKV"] == "no")
        ax.plot(*zip(*pts, strict=True), "o-", label=f"SDAR block {b}")
    pts = sorted(
        (x["threshold"], x["tokens / s"])
        for x in greedy
        if x["block"] == 4 and x["dKV"] == "yes" and "refresh" not in x["setting"]
    )
    ax.plot(*zip(*pts, strict=True), "s--", label="SDAR+dKV block 4")
    ax.axhline(ar["tokens / s"], color="k", ls=":", label="AR greedy")
    ax.set_xlabel("confidence threshold")
    ax.set_ylabel("tokens / s (batch 1)")
    ax.legend()
    fig.tight_layout()
    paths.append(report.plot_path("speed"))
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths


def run(
    out_dir: str | Path = "docs/results", *, quick: bool = False, command: str | None = None, weights: Path | None = None
) -> Path:
    """``diffcore bench text``: likelihood, decoding and speed; ``command`` is the command line the report names."""
    from diffcore.bench.report import Report

    torch.manual_seed(0)
    ar = ARLM.load(path=weights)
    sdar = BlockDiffusionLM.load(path=weights)
    n, new = (QUICK_PROMPTS, QUICK_NEW_TOKENS) if quick else (PROMPTS, NEW_TOKENS)
    prompts = prompts_from(ar.tokenizer, "test", n=max(n, 16))
    report = Report(
        name="text",
        title="Text diffusion: SDAR block decoding and dKV-Cache vs AR decoding",
        out_dir=Path(out_dir),
        command=command,
        quick=quick,
        intro=__doc__.split("\n\n", 1)[1].strip(),
    )
    note = "The SDAR model's number is its block-diffusion NLL upper bound (Monte Carlo over mask draws)."
    report.table("Likelihood (validation split)", likelihood_rows(ar, sdar, quick), note=note)
    b1, examples = batch1_rows(ar, sdar, prompts[:n], new)
    report.table(
        "Decoding at batch 1 (test prompts)",
        b1,
        note=f"{n} prompts of {len(prompts[0])} tokens, up to {new} new tokens each. Speed ratios are tokens/s against AR "
        "at the same temperature (greedy against greedy).",
    )
    batch = prompts[:2] if quick else prompts[:16]
    bn = batch_rows(ar, sdar, batch, new, repeats=1 if quick else 3)
    report.table(
        f"Decoding at batch {len(batch)} (exact decoders)", bn, note="Paired, interleaved timing; ratios are against AR greedy."
    )
    report.table(
        "Confidence on AR-greedy continuations",
        confidence_rows(ar, sdar, prompts[:n], new),
        note="Fractions of positions whose top probability passes each threshold: a block commits in one step only "
        "when every position passes.",
    )
    report.table("One forward pass by query length (96 cached tokens)", forward_cost_rows(sdar.model, 3 if quick else 30))
    check_goals(report, b1, bn)
    report.text(
        "Samples (first prompt)",
        "Prompt: `"
        + _inline(ar.tokenizer.decode(prompts[0]))
        + "`\n\n"
        + "\n".join(f"- {k}: `{_inline(v)}`" for k, v in examples.items()),
    )
    for p in _plots(report, b1):
        report.image(p.stem.split("_", 1)[1].title(), p)
    return report.write()
