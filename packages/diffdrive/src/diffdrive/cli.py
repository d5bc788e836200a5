"""``diffdrive``: collect demonstrations, train, evaluate in closed loop, render an episode.

diffdrive collect [--out runs/drive]
diffdrive train [ARGS...]        # = diffcore train drive ARGS (--stage, --weights ROOT, --seed, --smoke …)
diffdrive eval --episodes 20 --seed 300000 --json results.json [--planner diffusiondrive] [--scenario highway]
diffdrive drive --render episode.mp4 [--planner diffusiondrive] [--scenario merge] [--seed 0]

``--weights ROOT`` is a folder laid out like the shipped weights (one sub-folder
per planner), as ``diffdrive train --weights ROOT`` writes it. Bad input prints
``diffdrive: error: …`` and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from diffcore.cli_errors import run_command
from diffcore.validate import check_seed, count_arg, seed_arg
from diffdrive.limits import MAX_EPISODES, MAX_STEPS

DRIVERS = ("diffusiondrive", "vanilla", "regression", "expert", "constant-velocity")


def _driver(name: str, steps: int | None, weights: Path | None):
    from diffdrive.closed_loop import ConstantVelocityDriver, ExpertDriver, PlannerDriver
    from diffdrive.planner import Planner

    if name == "expert":
        return ExpertDriver()
    if name == "constant-velocity":
        return ConstantVelocityDriver()
    return PlannerDriver(Planner.load(name, path=weights, steps=steps))


def _add_driver_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--planner", choices=DRIVERS, default="diffusiondrive")
    p.add_argument(
        "--steps",
        type=count_arg("--steps", high=MAX_STEPS),
        default=None,
        help=f"denoising steps, at most {MAX_STEPS} (default: 2 for diffusiondrive, 20 for vanilla)",
    )
    p.add_argument(
        "--weights", type=Path, default=None, metavar="ROOT", help="a weights root written by `diffdrive train --weights ROOT`"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="diffdrive", description="DiffusionDrive on highway-env (headless).")
    sub = p.add_subparsers(dest="cmd", required=True)

    c = sub.add_parser("collect", help="collect expert demonstrations of every scenario and split (cached)")
    c.add_argument("--out", type=Path, default=Path("runs/drive"))

    # handled before parsing (its arguments go to diffdrive.train:main); listed here for --help
    sub.add_parser("train", help="retrain the shipped weights: ARGS go to diffdrive.train (= `diffcore train drive ARGS`)")

    e = sub.add_parser("eval", help="closed-loop evaluation on held-out seeds")
    _add_driver_args(e)
    e.add_argument("--scenario", default="all", help="highway, merge or all")
    e.add_argument("--episodes", type=count_arg("--episodes", high=MAX_EPISODES), default=20, help=f"at most {MAX_EPISODES}")
    e.add_argument("--seed", type=seed_arg, default=300_000, help="first episode seed (default: the held-out eval seeds)")
    e.add_argument("--json", type=Path, default=None, help="write per-episode and mean metrics here")

    d = sub.add_parser("drive", help="drive one episode and render it with the candidate trajectories drawn")
    _add_driver_args(d)
    d.add_argument("--scenario", default="highway")
    d.add_argument("--seed", type=seed_arg, default=300_000)
    d.add_argument("--render", type=Path, required=True, help="output video (.mp4 or .gif)")

    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["train"]:
        return run_command("diffdrive", lambda: _train(argv[1:]))
    a = p.parse_args(argv)
    return run_command("diffdrive", lambda: _run(a))


def _train(args: list[str]) -> int:
    from diffdrive.train import main as train_main

    train_main(args)
    return 0


def _run(a: argparse.Namespace) -> int:
    from diffcore.errors import InvalidInputError

    if a.cmd == "collect":
        from diffdrive.train import main as train_main

        train_main(["--stage", "data", "--out", str(a.out)])
        return 0
    from diffdrive.closed_loop import evaluate, run_episode
    from diffdrive.scenarios import SCENARIOS, get_scenario

    if a.cmd == "eval":
        check_seed(a.seed + a.episodes - 1, "the last episode seed (--seed + --episodes - 1)")
        scenarios = list(SCENARIOS) if a.scenario == "all" else [get_scenario(a.scenario).name]
        driver = _driver(a.planner, a.steps, a.weights)
        out = {"driver": driver.name, "seed": a.seed, "episodes": a.episodes, "scenarios": {}}
        for sc in scenarios:
            agg, eps = evaluate(driver, sc, list(range(a.seed, a.seed + a.episodes)))
            out["scenarios"][sc] = {"mean": agg, "episodes": [{"seed": e.seed, **e.metrics()} for e in eps]}
            print(f"{sc}: " + ", ".join(f"{k} {v:.3f}" for k, v in agg.items()))
        if a.json:
            a.json.parent.mkdir(parents=True, exist_ok=True)
            a.json.write_text(json.dumps(out, indent=2) + "\n")
            print(f"wrote {a.json}")
        return 0
    from diffdrive.render import write_video

    if a.render.suffix.lower() not in (".mp4", ".gif"):
        raise InvalidInputError(f"--render must end in .mp4 or .gif, got {a.render.name!r}")
    scenario = get_scenario(a.scenario).name
    driver = _driver(a.planner, a.steps, a.weights)
    ep = run_episode(scenario, driver, a.seed, render=True)
    write_video(ep.frames, a.render)
    print(f"{a.scenario} seed {a.seed}, {driver.name}: " + ", ".join(f"{k} {v:.3f}" for k, v in ep.metrics().items()))
    print(f"wrote {a.render}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
