"""Data-parallel training on 2 CPU processes (gloo) equals training on 1 process.

``ddp_run.py`` trains a tiny deterministic regression with ``diffcore.train``
(global batch 8, 30 steps, cosine LR, grad clipping, EMA off, seed 0). It is
launched twice with ``accelerate launch``:

* 1 process: ``--cpu --num_processes 1``;
* 2 processes: ``--multi_gpu --num_processes 2`` with ``ACCELERATE_USE_CPU=true``
  and no visible GPU. ``--cpu --num_processes 2`` does *not* work without MPI:
  accelerate's simple launcher then starts a single process. Through torchrun,
  each worker sees LOCAL_RANK and ``cpu=True`` and accelerate picks MULTI_CPU
  with the gloo backend; the test asserts that it did.

Both runs see the same global batches (the loop's fixed batch schedule), and
DDP averages the two half-batch gradients, so the runs differ only by float32
summation order. Tolerances: per-step loss within 1e-5 relative, final weights
within 1e-6 absolute (weights are O(1)). Measured on 2 CPU cores: max loss
difference 3.0e-8 absolute (2.1e-7 relative), max weight difference 6.0e-8.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

pytestmark = pytest.mark.multiproc

SCRIPT = Path(__file__).with_name("ddp_run.py")
STEPS, GLOBAL_BATCH = 30, 8
LOSS_RTOL, WEIGHT_ATOL = 1e-5, 1e-6
TIMEOUT_S = 300


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(flags: list[str], out_dir: Path, hf_home: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env.update(
        OMP_NUM_THREADS="1",
        CUDA_VISIBLE_DEVICES="",  # CPU even on a GPU machine
        ACCELERATE_USE_CPU="true",
        HF_HOME=str(hf_home),  # no user accelerate config file can change the flags
        HF_HUB_OFFLINE="1",
    )
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        *flags,
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        str(SCRIPT),
        str(out_dir),
        "--steps",
        str(STEPS),
        "--batch-size",
        str(GLOBAL_BATCH),
    ]
    # A session of its own, so a hung run is killed with all its workers, not just the launcher.
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"{' '.join(flags)} did not finish in {TIMEOUT_S} s:\n{output[-4000:]}")
    assert proc.returncode == 0, f"{' '.join(flags)} failed ({proc.returncode}):\n{output[-4000:]}"


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[int, Path]:
    root = tmp_path_factory.mktemp("ddp")
    out = {1: root / "one", 2: root / "two"}
    _launch(["--cpu", "--num_processes", "1"], out[1], root / "hf")
    _launch(
        [
            "--multi_gpu",
            "--num_processes",
            "2",
            "--main_process_ip",
            "127.0.0.1",
            "--main_process_port",
            str(_free_loopback_port()),
        ],
        out[2],
        root / "hf",
    )
    return out


def _log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def test_two_processes_really_ran_on_gloo(runs):
    seen = [json.loads((runs[2] / f"rank_{r}.json").read_text()) for r in (0, 1)]
    assert [s["rank"] for s in seen] == [0, 1]
    for s in seen:
        assert s["world"] == 2 and s["distributed_type"] == "DistributedType.MULTI_CPU" and s["backend"] == "gloo"
        assert s["steps"] == STEPS
    single = json.loads((runs[1] / "rank_0.json").read_text())
    assert single["world"] == 1
    ckpt = runs[2] / "checkpoint"
    assert json.loads((ckpt / "state.json").read_text()) == {"step": STEPS, "world_size": 2}
    assert (ckpt / "rng_0.pt").is_file() and (ckpt / "rng_1.pt").is_file()


def test_loss_curves_match(runs):
    one, two = _log(runs[1]), _log(runs[2])
    assert [r["step"] for r in one] == [r["step"] for r in two] == list(range(1, STEPS + 1))
    for a, b in zip(one, two):
        assert b["loss"] == pytest.approx(a["loss"], rel=LOSS_RTOL), a["step"]
        assert b["lr"] == pytest.approx(a["lr"], rel=1e-12), a["step"]
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=LOSS_RTOL), a["step"]
    assert one[-1]["loss"] < 0.5 * one[0]["loss"]  # it did learn (measured 0.61 -> 0.12)


def test_final_weights_match(runs):
    w1, w2 = load_file(str(runs[1] / "final.safetensors")), load_file(str(runs[2] / "final.safetensors"))
    assert w1.keys() == w2.keys()
    for k in w1:
        diff = (w1[k] - w2[k]).abs().max().item()
        assert diff <= WEIGHT_ATOL, (k, diff)
    # The end-of-run checkpoint holds the same weights as the returned module.
    ck = load_file(str(runs[2] / "checkpoint" / "model.safetensors"))
    assert all((ck[k] == w2[k]).all() for k in w2)
