"""Searched cache schedules shipped with tinysd, and the command that refits them.

``diffcore train lab`` profiles tinysd on calibration seeds (never the
benchmark's evaluation seeds), runs the DP schedule and the evolutionary
search, and writes JSON artifacts to ``weights/tinysd/schedules/`` — each bound
to tinysd's weight hash, sampler and step count.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from diffcore.cache import DeepCacheConfig, search
from diffcore.zoo import WEIGHTS, load_tinysd

SCHEDULES_DIR = WEIGHTS / "tinysd" / "schedules"
CALIB_SEED = 1000


@dataclass(frozen=True)
class Fit:
    """One shipped schedule: which run it is for and how it is searched."""

    name: str
    sampler: str
    steps: int
    method: str  # "dp" or "evolved"
    match_interval: int  # FLOPs budget: uniform DeepCache with this interval


FITS = (
    Fit("ddim50_dp", "ddim", 50, "dp", 3),
    Fit("ddim50_evolved_n5", "ddim", 50, "evolved", 5),
    Fit("dpmpp20_dp", "dpmpp_2m", 20, "dp", 3),
)


def list_schedules(root: Path = SCHEDULES_DIR) -> dict[str, Path]:
    """Shipped schedule name -> path."""
    return {p.stem: p for p in sorted(root.glob("*.json"))}


def fit_all(out: Path = SCHEDULES_DIR, *, seeds: int = 4, population: int = 12, generations: int = 6) -> list[Path]:
    """Fit every schedule of :data:`FITS` on tinysd; returns the written paths."""
    sd = load_tinysd()
    calib = torch.randn(seeds, 4, 16, 16, generator=torch.Generator().manual_seed(CALIB_SEED))
    profiles: dict[tuple[str, int], search.Profile] = {}
    written = []
    for fit in FITS:
        t0 = time.perf_counter()
        key = (fit.sampler, fit.steps)
        if key not in profiles:
            cal = search.Calibration(fit.sampler, fit.steps, calib, base_config=sd.scheduler_config)
            profiles[key] = search.profile(sd.unet, cal, DeepCacheConfig(branch=0))
        prof = profiles[key]
        uniform = search.uniform_mask(prof.num_calls, fit.match_interval)
        if fit.method == "dp":
            sched = search.dp_schedule(prof, sum(uniform))
        else:
            front = search.evolve_schedules(sd.unet, prof, population=population, generations=generations, seed=0)
            budget = prof.flops_ratio(uniform)
            sched = min((s for s in front if s.meta["flops_ratio"] <= budget + 1e-9), key=lambda s: s.meta["error"])
        error = search.schedule_error(sd.unet, prof, sched.recompute)
        meta = {
            **sched.meta,
            "calibration_error": error,
            "uniform_error": search.schedule_error(sd.unet, prof, uniform),
            "calibration_seeds": f"{seeds} latents from torch seed {CALIB_SEED}",
            "fit_seconds": round(time.perf_counter() - t0, 1),
        }
        sched = search.CacheSchedule(**{**sched.__dict__, "meta": meta})
        written.append(sched.save(out / f"{fit.name}.json"))
        print(f"{fit.name}: {sum(sched.recompute)} recomputes, error {error:.4f} (uniform {meta['uniform_error']:.4f})")
    write_card(out)
    return written


def write_card(root: Path = SCHEDULES_DIR) -> Path:
    """``training_card.md`` beside the schedules: how each was fitted and how well, from their own metadata."""
    lines = [
        "# Training card: tinysd cache schedules",
        "",
        "Fitted by `uv run diffcore train lab` (diffcore.lab.schedules) on tinysd's shipped weights,",
        "on calibration noise disjoint from the benchmark's evaluation seeds. Error: relative L2 of the",
        "final latents against full compute on the calibration seeds; uniform = DeepCache with the same FLOPs.",
        "",
        "| schedule | sampler | steps | method | recomputes | FLOP ratio | error | uniform error | calibration | fit s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, path in list_schedules(root).items():
        s = search.CacheSchedule.load(path)
        m = s.meta
        lines.append(
            f"| {name} | {s.sampler} | {s.steps} | {m['method']} | {sum(s.recompute)} | {m['flops_ratio']:.3f} | "
            f"{m['calibration_error']:.4f} | {m['uniform_error']:.4f} | {m['calibration_seeds']} | {m['fit_seconds']} |"
        )
    card = root / "training_card.md"
    card.write_text("\n".join(lines) + "\n")
    return card


def main(argv: list[str] | None = None) -> None:
    """``diffcore train lab``: refit the shipped schedules (seeded; minutes on 2 cores)."""
    p = argparse.ArgumentParser(prog="diffcore train lab", description=main.__doc__)
    p.add_argument("--out", type=Path, default=SCHEDULES_DIR, help="where the schedule JSON files go")
    p.add_argument("--generations", type=int, default=6)
    p.add_argument("--population", type=int, default=12)
    a = p.parse_args(argv)
    paths = fit_all(a.out, population=a.population, generations=a.generations)
    print(json.dumps([str(x) for x in paths], indent=1))
