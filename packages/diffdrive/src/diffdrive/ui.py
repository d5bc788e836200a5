"""The hub's "Driving planner" tab: drive a held-out highway-env episode with a chosen planner and watch it.

*Drive* runs one episode of the chosen scenario and seed with the chosen driver
and shows it as a video with the candidate trajectories drawn (blue, more
opaque the more confident; the executed one in red), next to the same episode
driven by the vanilla 20-step diffusion policy, with both drivers' metrics.

Weights: the shipped ones, or — when the environment variable
``DIFFDRIVE_WEIGHTS`` is set — a folder written by ``diffcore train drive
--weights DIR`` (one sub-folder per planner).

Gradio is imported here only (the ``app`` extra).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from diffcore.errors import InvalidInputError
from diffcore.offline_gradio import gr, on, page, result_path
from diffcore.validate import check_seed
from diffdrive.closed_loop import ConstantVelocityDriver, Episode, ExpertDriver, PlannerDriver, run_episode
from diffdrive.data import SPLIT_SEEDS
from diffdrive.planner import Planner
from diffdrive.scenarios import SCENARIOS, get_scenario

#: label -> (planner name, steps), or a rule-based driver
DRIVER_CHOICES = {
    "DiffusionDrive — 2 steps from anchors": ("diffusiondrive", 2),
    "Vanilla diffusion — 20 steps from noise": ("vanilla", 20),
    "Vanilla diffusion — 2 steps from noise": ("vanilla", 2),
    "Regression — one mode": ("regression", 1),
    "IDM/MOBIL expert": ("expert", 0),
    "Constant velocity": ("constant-velocity", 0),
}
COMPARE = "Vanilla diffusion — 20 steps from noise"
MAX_STEPS = 80  # 40 s: longer than any scenario's episode


def _weights() -> Path | None:
    root = os.environ.get("DIFFDRIVE_WEIGHTS")
    return Path(root) if root else None


def _driver(label: str) -> Any:
    if label not in DRIVER_CHOICES:
        raise InvalidInputError(f"unknown driver {label!r}")
    name, steps = DRIVER_CHOICES[label]
    if name == "expert":
        return ExpertDriver()
    if name == "constant-velocity":
        return ConstantVelocityDriver()
    return PlannerDriver(
        Planner.load(name, path=_weights(), steps=steps), label.split(" — ")[0] + f" ({steps} steps)" * (steps > 1)
    )


def _row(ep: Episode) -> list[Any]:
    m = ep.metrics()
    lat = sorted(1000 * s for s in ep.plan_seconds)
    return [
        ep.driver,
        "yes" if ep.collided else "no",
        round(m["progress_m"], 1),
        round(m["on_road"], 3),
        round(m["mean_speed"], 2),
        round(m["jerk"], 3),
        round(m["seconds"], 1),
        round(lat[len(lat) // 2], 2) if lat else 0.0,
    ]


HEADERS = [
    "driver",
    "collided",
    "progress (m)",
    "time on road",
    "mean speed (m/s)",
    "jerk (m/s³)",
    "duration (s)",
    "plan ms (median)",
]


def drive(
    scenario: str, seed: int, label: str, compare: bool, progress: gr.Progress = gr.Progress()
) -> tuple[Any, Any, Any, str]:
    """Run the episode(s); returns (video, comparison video, metrics table, note)."""
    from diffdrive.render import write_video

    sc = get_scenario(scenario).name
    seed = check_seed(seed)
    labels = [label] + ([COMPARE] if compare and label != COMPARE else [])
    videos, rows = [], []
    for i, lab in enumerate(labels):
        progress(i / len(labels), desc=f"driving: {lab}")
        ep = run_episode(sc, _driver(lab), seed, render=True, max_steps=MAX_STEPS)
        videos.append(str(write_video(ep.frames, result_path("drive", f"episode-{i}.mp4"))))
        rows.append(_row(ep))
    held_out = seed >= SPLIT_SEEDS["eval"]
    note = (
        f"{sc}, seed {seed}"
        + (" (held-out evaluation seed)" if held_out else " (**seeds below 300000 include the training episodes**)")
        + f": {SCENARIOS[sc].description}"
    )
    return videos[0], (videos[1] if len(videos) > 1 else None), rows, note


#: the demo's opening text (Markdown)
INTRO = """\
### Driving planner — DiffusionDrive on highway-env
**DiffusionDrive** starts from 20 k-means trajectory anchors noised to a small timestep and denoises them in
**2 steps** with a cascade decoder that attends to the surrounding vehicles, lanes and the ego state; the most
confident trajectory is tracked by a controller, and the planner runs again every 0.5 s. The **vanilla
diffusion policy** is the same network starting from pure noise (20 steps). Blue: candidates (more opaque =
more confident); red: the executed plan.
"""


def build_demo() -> gr.Blocks:
    """The Driving planner demo."""
    with page("Driving planner", INTRO) as demo:
        with gr.Row():
            scenario = gr.Dropdown(list(SCENARIOS), value="highway", label="Scenario", elem_id="drive-scenario")
            seed = gr.Number(value=SPLIT_SEEDS["eval"], precision=0, label="Seed (300000+ are held out)", elem_id="drive-seed")
            label = gr.Dropdown(list(DRIVER_CHOICES), value=next(iter(DRIVER_CHOICES)), label="Driver", elem_id="drive-planner")
            compare = gr.Checkbox(value=True, label="Side by side with the vanilla 20-step policy", elem_id="drive-compare")
        run = gr.Button("Drive", variant="primary", elem_id="drive-run")
        note = gr.Markdown(elem_id="drive-note")
        with gr.Row():
            video = gr.Video(label="Chosen driver", autoplay=True, elem_id="drive-video")
            other = gr.Video(label="Vanilla 20-step policy", autoplay=True, elem_id="drive-compare-video")
        table = gr.Dataframe(headers=HEADERS, label="Episode metrics", interactive=False, elem_id="drive-metrics")
        on(run.click, drive, [scenario, seed, label, compare], [video, other, table, note], api_name="drive_episode")
    return demo
