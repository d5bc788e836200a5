"""``diffcore bench drive``: DiffusionDrive against its baselines, in closed loop and open loop, in one run.

Drivers, all on the same held-out episodes (``eval`` seeds, never used for
training data) of every scenario:

- DiffusionDrive: truncated diffusion from the k-means anchors, 2 steps;
- the vanilla diffusion policy (same network, no anchors, pure noise) at 20 and 2 steps;
- the single-mode regression planner (same network, one query, no noise);
- highway-env's IDM/MOBIL expert (the demonstrator);
- constant velocity.

The learned planners replan every 0.5 s and are tracked by the same controller.
Open-loop metrics come from the ``test`` split of expert demonstrations.
Planning latency is measured side by side (paired, interleaved repeats, median
of per-pair ratios against the vanilla 20-step policy) at batch 1 and 16, with
FLOPs from ``torch.utils.flop_counter``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from diffdrive.closed_loop import ConstantVelocityDriver, ExpertDriver, PlannerDriver, evaluate, run_episode
from diffdrive.data import DriveData, load_split, split_seeds
from diffdrive.planner import Planner
from diffdrive.scenarios import SCENARIOS
from diffdrive.train import open_loop

if TYPE_CHECKING:
    from diffcore.bench.report import Report

EPISODES, QUICK_EPISODES = 30, 2
#: (label, planner name, steps)
PLANNER_VARIANTS = (
    ("DiffusionDrive (2 steps)", "diffusiondrive", 2),
    ("vanilla diffusion (20 steps)", "vanilla", 20),
    ("vanilla diffusion (2 steps)", "vanilla", 2),
    ("regression", "regression", 1),
)
BASELINE = "vanilla diffusion (20 steps)"


def _planners(weights: Path | None, device: str = "cpu") -> dict[str, Planner]:
    return {label: Planner.load(name, path=weights, steps=steps, device=device) for label, name, steps in PLANNER_VARIANTS}


def closed_loop_rows(planners: dict[str, Planner], episodes: int, progress: bool = True) -> list[dict[str, Any]]:
    drivers = [PlannerDriver(p, label) for label, p in planners.items()] + [ExpertDriver(), ConstantVelocityDriver()]
    rows = []
    for scenario in SCENARIOS:
        seeds = split_seeds("eval", episodes)
        for d in drivers:
            agg, _ = evaluate(d, scenario, seeds, progress=progress)
            rows.append(
                {
                    "scenario": scenario,
                    "driver": d.name,
                    "episodes": episodes,
                    "collision rate": agg["collision_rate"],
                    "progress (m)": agg["progress_m"],
                    "time on road": agg["on_road"],
                    "mean speed (m/s)": agg["mean_speed"],
                    "jerk (m/s³)": agg["jerk"],
                    "duration (s)": agg["seconds"],
                }
            )
    expert = {r["scenario"]: r["progress (m)"] for r in rows if r["driver"] == ExpertDriver.name}
    for r in rows:
        r["progress vs expert"] = r["progress (m)"] / expert[r["scenario"]] if expert[r["scenario"]] else float("nan")
    return rows


def open_loop_rows(planners: dict[str, Planner], test: DriveData) -> list[dict[str, Any]]:
    rows = []
    for label, p in planners.items():
        m = open_loop(p.model, test, steps=p.steps)
        rows.append(
            {
                "planner": label,
                "modes": p.model.config.num_modes,
                "minADE (m)": m["min_ade"],
                "minFDE (m)": m["min_fde"],
                "ADE chosen (m)": m["ade"],
                "FDE chosen (m)": m["fde"],
                "mode diversity (m)": m["diversity"],
            }
        )
    # constant velocity, open loop: the straight line at the current speed
    v = test.scenes[:, 0]
    ts = 0.5 * np.arange(1, test.futures.shape[1] + 1)
    err = np.hypot(test.futures[..., 0] - v[:, None] * ts, test.futures[..., 1])
    ade, fde = float(err.mean()), float(err[:, -1].mean())
    rows.append(
        {
            "planner": "constant velocity",
            "modes": 1,
            "minADE (m)": ade,
            "minFDE (m)": fde,
            "ADE chosen (m)": ade,
            "FDE chosen (m)": fde,
            "mode diversity (m)": 0.0,
        }
    )
    return rows


def latency_rows(
    planners: dict[str, Planner], scenes: np.ndarray, repeats: int, batches: tuple[int, ...] = (1, 16), sync=None
) -> list[dict[str, Any]]:
    from diffcore.bench.flops import count_flops
    from diffcore.bench.timing import time_paired

    rows = []
    for batch in batches:
        x = scenes[:batch]
        variants = {label: (lambda p=p, x=x: p.plan_batch(x, seed=0)) for label, p in planners.items()}
        timing = time_paired(variants, baseline=BASELINE, repeats=repeats, warmup=3, sync=sync)
        for label, p in planners.items():
            t = timing[label]
            rows.append(
                {
                    "planner": label,
                    "batch": batch,
                    "latency (ms, median)": t.seconds * 1000,
                    "planning rate (Hz)": batch / t.seconds,
                    f"time / {BASELINE}": t.ratio,
                    "speed-up": t.speedup,
                    "ratio IQR": f"{t.ratio_iqr[0]:.3f}–{t.ratio_iqr[1]:.3f}",
                    "MFLOPs": count_flops(lambda p=p, x=x: p.plan_batch(x, seed=0)) / 1e6,
                }
            )
    return rows


def _plots(report, cl_rows: list[dict[str, Any]], lat_rows: list[dict[str, Any]]) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    drivers = list(dict.fromkeys(r["driver"] for r in cl_rows))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for ax, key in zip(axes, ("collision rate", "progress vs expert", "jerk (m/s³)")):
        w = 0.8 / len(SCENARIOS)
        for j, sc in enumerate(SCENARIOS):
            vals = [next(r[key] for r in cl_rows if r["driver"] == d and r["scenario"] == sc) for d in drivers]
            ax.bar(np.arange(len(drivers)) + j * w, vals, w, label=sc)
        ax.set_xticks(np.arange(len(drivers)) + w / 2, drivers, rotation=35, ha="right", fontsize=8)
        ax.set_title(key)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    p = report.plot_path("closed_loop")
    fig.savefig(p, dpi=110)
    plt.close(fig)
    paths.append(p)

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for label in dict.fromkeys(r["planner"] for r in lat_rows):
        ms = next(r["latency (ms, median)"] for r in lat_rows if r["planner"] == label and r["batch"] == 1)
        coll = np.mean([r["collision rate"] for r in cl_rows if r["driver"] == label])
        ax.scatter(ms, coll, s=60)
        ax.annotate(label, (ms, coll), textcoords="offset points", xytext=(5, 5), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("planning latency, batch 1 (ms, log)")
    ax.set_ylabel("collision rate (all scenarios)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    p = report.plot_path("latency")
    fig.savefig(p, dpi=110)
    plt.close(fig)
    paths.append(p)
    return paths


def _frames(report, planners: dict[str, Planner]) -> Path:
    """One highway moment, side by side: DiffusionDrive's and the vanilla policy's candidates."""
    from PIL import Image

    frames = []
    for label in ("DiffusionDrive (2 steps)", BASELINE):
        ep = run_episode("highway", PlannerDriver(planners[label], label), split_seeds("eval", 1)[0], render=True, max_steps=8)
        frames.append(ep.frames[min(6, len(ep.frames) - 2)])
    p = report.plot_path("candidates")
    Image.fromarray(np.concatenate(frames, 0)).save(p)
    return p


def check_goals(report: Report, cl: list[dict[str, Any]], ol: list[dict[str, Any]], lat: list[dict[str, Any]]) -> None:
    """The issue's goals, checked against this run's numbers, into the report's goals section."""
    dd, van = "DiffusionDrive (2 steps)", BASELINE
    for sc in SCENARIOS:
        row = {r["driver"]: r for r in cl if r["scenario"] == sc}
        c_dd, c_v = row[dd]["collision rate"], row[van]["collision rate"]
        report.goal(f"{sc}: collision rate ≤ vanilla 20-step's", f"{c_dd:.3f} vs {c_v:.3f}", c_dd <= c_v)
        prog = row[dd]["progress vs expert"]
        report.goal(f"{sc}: progress within 10% of the expert's", f"{prog:.1%} of the expert's", prog >= 0.9)
    sp = next(r["speed-up"] for r in lat if r["planner"] == dd and r["batch"] == 1)
    report.goal("planning latency at batch 1 ≥ 5× lower than vanilla 20-step", f"{sp:.1f}× lower", sp >= 5)
    div = {r["planner"]: r["mode diversity (m)"] for r in ol}
    report.goal(
        "mode diversity above the regression planner's",
        f"{div[dd]:.2f} m vs {div['regression']:.2f} m",
        div[dd] > div["regression"],
    )


def run(
    out_dir: str | Path = "docs/results",
    *,
    quick: bool = False,
    command: str | None = None,
    weights: Path | None = None,
    data_dir: str | Path = "runs/drive/data",
) -> Path:
    """``diffcore bench drive``: closed loop, open loop and latency; ``command`` is the command line the report names."""
    from diffcore.bench.report import Report

    torch.manual_seed(0)
    episodes = QUICK_EPISODES if quick else EPISODES
    planners = _planners(weights)
    # the quick run (a smoke test) scores 2 test episodes per scenario
    test = load_split(data_dir, "test", episodes_table={s: {"test": 2} for s in SCENARIOS} if quick else None)
    report = Report(
        name="drive",
        title="Driving planner: DiffusionDrive vs vanilla diffusion, regression, expert",
        out_dir=Path(out_dir),
        command=command,
        quick=quick,
        intro=__doc__.split("\n\n", 1)[1].strip(),
    )
    cl = closed_loop_rows(planners, episodes)
    report.table(
        "Closed loop (held-out episodes)",
        cl,
        note=f"{episodes} episodes per scenario (seeds {split_seeds('eval', 1)[0]}…), the same for every driver. Progress is "
        "metres along the lane until the episode ends (time limit, end of road or collision).",
    )
    ol = open_loop_rows(planners, test)
    report.table(
        "Open loop (test split of expert demonstrations)", ol, note=f"{len(test)} scenes. minADE/minFDE over the K modes."
    )
    lat = latency_rows(planners, test.scenes, repeats=5 if quick else 30)
    report.table("Planning latency (side by side)", lat, note=f"Ratios against {BASELINE}, paired and interleaved.")
    check_goals(report, cl, ol, lat)
    for p in _plots(report, cl, lat):
        report.image(p.stem.split("_", 1)[1].replace("_", " ").title(), p)
    report.image(
        "Candidates",
        _frames(report, planners),
        "DiffusionDrive (top) and vanilla 20-step (bottom): candidates in blue, chosen in red.",
    )
    return report.write()


def run_cuda(
    out_dir: str | Path = "docs/results",
    *,
    quick: bool = False,
    command: str | None = None,
    weights: Path | None = None,
    data_dir: str | Path = "runs/drive/data",
    device: str = "cuda",
) -> Path:
    """``diffcore bench drive-cuda``: the planning-latency table on a GPU (batch 1, 16 and 256)."""
    from diffcore.bench.report import Report
    from diffcore.errors import InvalidInputError

    if device == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError("bench drive-cuda needs a CUDA GPU; this machine has none")
    planners = _planners(weights, device)
    test = load_split(data_dir, "test", episodes_table={s: {"test": 2} for s in SCENARIOS} if quick else None)
    sync = torch.cuda.synchronize if device == "cuda" else None
    rows = latency_rows(planners, test.scenes, repeats=5 if quick else 30, batches=(1, 16) if quick else (1, 16, 256), sync=sync)
    report = Report(
        name="drive_cuda",
        title="Driving planner: planning latency on a GPU",
        out_dir=Path(out_dir),
        command=command,
        quick=quick,
        intro=f"Device: {torch.cuda.get_device_name() if device == 'cuda' else device}. Same planners and protocol as the "
        "latency table of `diffcore bench drive` (paired, interleaved repeats; the clock is read after "
        "`torch.cuda.synchronize()`).",
    )
    report.table("Planning latency (side by side)", rows, note=f"Ratios against {BASELINE}.")
    return report.write()
