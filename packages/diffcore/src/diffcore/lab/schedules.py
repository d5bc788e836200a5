"""Searched cache schedules shipped with tinysd, and the command that refits them.

``diffcore train lab`` (one stage, ``schedules``, on diffcore's stage runner
:func:`diffcore.train.run_stages`) profiles tinysd on calibration seeds (never
the benchmark's evaluation seeds), runs the DP schedule and the evolutionary
search, and writes JSON artifacts to ``weights/<prior>/schedules/`` (``--prior``
a shipped tinysd version, default the default one; ``--weights ROOT``:
``ROOT/<prior>/schedules``) — each bound to that tinysd's weight hash, sampler
and step count — with one :class:`~diffcore.train.TrainingCard` for all of them.
The card's ``steps`` are the evolutionary search's generations, its ``batch``
the calibration latents and its ``parameters`` the recompute flags fitted; the
per-schedule numbers are its metrics (``<schedule>_error`` …).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from diffcore.cache import DeepCacheConfig, search
from diffcore.errors import UnknownNameError
from diffcore.train import Run, TrainingCard, detect_machine, run_stages
from diffcore.train.card import CARD_JSON
from diffcore.zoo import DEFAULT_TINYSD, TINYSD_NAMES, WEIGHTS, load_tinysd

#: the schedules of the default tinysd (what the lab and the accel benchmark offer)
SCHEDULES_DIR = WEIGHTS / DEFAULT_TINYSD / "schedules"
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


@dataclass(frozen=True)
class LabRecipe:
    """How the schedules are searched (defaults: the shipped fit)."""

    seed: int = 0  # of the evolutionary search
    prior: str = DEFAULT_TINYSD  # the shipped tinysd version the schedules are fitted for
    calibration_latents: int = 4  # drawn from torch seed CALIB_SEED
    population: int = 12
    generations: int = 6

    def smoke(self) -> LabRecipe:
        """One calibration latent, one small generation: checks the fit end to end."""
        return dataclasses.replace(self, calibration_latents=1, population=4, generations=1)


def list_schedules(root: Path = SCHEDULES_DIR) -> dict[str, Path]:
    """Shipped schedule name -> path (the training card beside them is not a schedule)."""
    return {p.stem: p for p in sorted(root.glob("*.json")) if p.name != CARD_JSON}


def fit_all(out: Path = SCHEDULES_DIR, recipe: LabRecipe = LabRecipe()) -> list[Path]:
    """Fit every schedule of :data:`FITS` on the tinysd ``recipe.prior``; returns the written paths."""
    if recipe.prior not in TINYSD_NAMES:
        raise UnknownNameError(f"no shipped tinysd {recipe.prior!r} to fit schedules for; shipped: {', '.join(TINYSD_NAMES)}")
    sd = load_tinysd(recipe.prior)
    calib = torch.randn(recipe.calibration_latents, 4, 16, 16, generator=torch.Generator().manual_seed(CALIB_SEED))
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
            front = search.evolve_schedules(
                sd.unet, prof, population=recipe.population, generations=recipe.generations, seed=recipe.seed
            )
            budget = prof.flops_ratio(uniform)
            sched = min((s for s in front if s.meta["flops_ratio"] <= budget + 1e-9), key=lambda s: s.meta["error"])
        error = search.schedule_error(sd.unet, prof, sched.recompute)
        meta = {
            **sched.meta,
            "calibration_error": error,
            "uniform_error": search.schedule_error(sd.unet, prof, uniform),
            "calibration_seeds": f"{recipe.calibration_latents} latents from torch seed {CALIB_SEED}",
            "fit_seconds": round(time.perf_counter() - t0, 1),
        }
        sched = search.CacheSchedule(**{**sched.__dict__, "meta": meta})
        written.append(sched.save(out / f"{fit.name}.json"))
        print(f"{fit.name}: {sum(sched.recompute)} recomputes, error {error:.4f} (uniform {meta['uniform_error']:.4f})")
    return written


def schedules_card(root: Path, recipe: LabRecipe, *, machine: str, command: str) -> TrainingCard:
    """The training card of the schedules under ``root``, from their own metadata (fit times included)."""
    schedules = {name: search.CacheSchedule.load(path) for name, path in list_schedules(root).items()}
    metrics: dict[str, float] = {}
    for name, s in schedules.items():
        m = s.meta
        metrics |= {
            f"{name}_error": round(m["calibration_error"], 4),
            f"{name}_uniform_error": round(m["uniform_error"], 4),
            f"{name}_flops_ratio": round(m["flops_ratio"], 3),
            f"{name}_recomputes": sum(s.recompute),
        }
    return TrainingCard(
        model="cache schedules for tinysd's UNet (which sampler calls recompute, DeepCache-style reuse)",
        data=f"{recipe.calibration_latents} calibration latents from torch seed {CALIB_SEED}, "
        "disjoint from the benchmark's evaluation seeds",
        steps=recipe.generations,
        batch=recipe.calibration_latents,
        seed=recipe.seed,
        parameters=sum(s.num_calls for s in schedules.values()),
        seconds=round(sum(s.meta["fit_seconds"] for s in schedules.values()), 1),
        machine=machine,
        command=command,
        metrics=metrics,
        details={
            "error": "relative L2 of the final latents against full compute on the calibration latents; "
            "uniform: DeepCache with the same FLOPs",
            "schedules": {
                name: {"sampler": s.sampler, "steps": s.steps, "method": s.meta["method"]} for name, s in schedules.items()
            },
            "model_hash": next(iter(schedules.values())).model_hash,
            "recipe": asdict(recipe),
        },
    )


def fit_schedules(recipe: LabRecipe, run: Run) -> Path:
    """Stage ``schedules``: fit every schedule into ``run.weights / recipe.prior / "schedules"`` and write its card."""
    out = run.weights / recipe.prior / "schedules"
    fit_all(out, recipe)
    return schedules_card(out, recipe, machine=detect_machine(), command=run.command("schedules")).write(out)


def main(argv: list[str] | None = None) -> None:
    """``diffcore train lab``: refit the shipped schedules (seeded; minutes on 2 cores)."""
    run_stages(argv, "lab", LabRecipe(), {"schedules": fit_schedules}, WEIGHTS)
