"""diffcore.train: the shared loop on a tiny deterministic regression.

The objective has no randomness in ``forward`` and the data are a fixed table,
so two runs of the same config give bit-identical weights; that is what the
resume and EMA tests rely on.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import asdict

import pytest
import torch
from safetensors.torch import load_file
from torch import nn
from torch.utils.data import Dataset

from diffcore.errors import InvalidInputError
from diffcore.train import TrainConfig, TrainResult, train


class Regression(nn.Module):
    """Fit a fixed smooth map R⁴ → R² with a 4-16-2 MLP; batch rows are (x, y), (B, 6)."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.net = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 2))

    def forward(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        x, y = batch[:, :4], batch[:, 4:]  # (B, 4), (B, 2)
        err = self.net(x) - y
        return {"loss": err.pow(2).mean(), "mae": err.abs().mean()}


class Table(Dataset):
    """A fixed synthetic table; ``fail_at`` raises on that item, like a job killed mid-run."""

    def __init__(self, n: int, *, fail_at: int | None = None, nan_at: int | None = None) -> None:
        g = torch.Generator().manual_seed(1234)
        a = torch.randn(4, 2, generator=g)  # drawn first: the target map does not depend on n
        x = torch.randn(n, 4, generator=g)
        self.rows = torch.cat([x, torch.sin(x @ a)], dim=1)  # (n, 6)
        self.fail_at, self.nan_at = fail_at, nan_at

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> torch.Tensor:
        if i == self.fail_at:
            raise RuntimeError(f"simulated kill while loading item {i}")
        if i == self.nan_at:
            return torch.full((6,), float("nan"))
        return self.rows[i]


def _config(**kw) -> TrainConfig:
    base = dict(steps=10, batch_size=4, lr=1e-2, ema_decay=None, checkpoint_every=0, log_every=1, progress=False)
    return TrainConfig(**{**base, **kw})


def _weights(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], atol: float = 0.0) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=atol, msg=k)


def _read_log(out) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def test_loss_decreases_and_log_has_step_loss_lr(tmp_path):
    cfg = _config(steps=40, lr_schedule="cosine", log_every=4)
    data = Table(160)
    before = Regression()(data.rows)["loss"].item()  # MSE over the whole table at the initial weights
    res = train(Regression(), data, cfg, tmp_path)
    assert isinstance(res, TrainResult) and res.steps == 40 and res.resumed_from == 0
    log = _read_log(tmp_path)
    assert log == res.log
    assert [r["step"] for r in log] == list(range(4, 41, 4))
    for r in log:
        assert {"step", "loss", "mae", "lr", "time_s", "grad_norm"} <= r.keys()
        # cosine: after s of S steps the LR is lr · ½(1 + cos(π s / S))
        assert r["lr"] == pytest.approx(1e-2 * 0.5 * (1 + math.cos(math.pi * r["step"] / 40)), abs=1e-12)
    assert log[-1]["lr"] == pytest.approx(0.0, abs=1e-12)
    with torch.no_grad():
        after = res.objective(data.rows)["loss"].item()
    assert after < 0.3 * before, (before, after)  # measured: 0.555 -> 0.105
    # The returned module is unwrapped, on CPU, in eval mode.
    assert isinstance(res.objective, Regression) and not res.objective.training
    assert next(res.objective.parameters()).device.type == "cpu"
    assert TrainConfig(**json.loads((tmp_path / "config.json").read_text())) == cfg


def test_logged_loss_is_the_loss_of_that_steps_batch(tmp_path):
    data = Table(8)
    expected = Regression()(data.rows[:4])  # step 1 sees items 0..3 at the initial weights
    res = train(Regression(), data, _config(steps=1, grad_clip=None), tmp_path)
    assert res.log[0]["step"] == 1
    assert res.log[0]["loss"] == pytest.approx(expected["loss"].item(), rel=1e-6)
    assert res.log[0]["mae"] == pytest.approx(expected["mae"].item(), rel=1e-6)
    assert "grad_norm" not in res.log[0]


def _snapshots(into: dict[int, dict]):
    def eval_fn(model: nn.Module, step: int) -> dict:
        into[step] = _weights(model)
        return {"step_seen": step}

    return eval_fn


def test_ema_is_the_diffusers_average_of_the_raw_trajectory(tmp_path):
    decay, steps = 0.5, 12
    raw, ema = {}, {}
    data = Table(steps * 4)
    cfg = _config(steps=steps, lr_schedule="constant")
    res_off = train(Regression(), data, cfg, tmp_path / "off", eval_fn=_snapshots(raw), eval_every=1)
    res_on = train(
        Regression(),
        data,
        _config(steps=steps, lr_schedule="constant", ema_decay=decay),
        tmp_path / "on",
        eval_fn=_snapshots(ema),
        eval_every=1,
    )
    assert sorted(raw) == sorted(ema) == list(range(1, steps + 1))
    assert [r["eval"]["step_seen"] for r in res_on.log if "eval" in r] == list(range(1, steps + 1))
    # diffusers EMAModel: decay 0 at the first update, then min((1 + n) / (10 + n), decay), n = step - 1.
    expected = raw[1]
    for s in range(2, steps + 1):
        d = min(s / (9 + s), decay)
        expected = {k: d * expected[k] + (1 - d) * raw[s][k] for k in expected}
        _assert_same(ema[s], expected, atol=1e-6)
    # EMA on vs off differ, and the EMA weights are what is returned ...
    _assert_same(_weights(res_on.objective), ema[steps])
    _assert_same(_weights(res_off.objective), raw[steps])
    diff = max((ema[steps][k] - raw[steps][k]).abs().max().item() for k in raw[steps])
    assert diff > 1e-3
    # ... while training itself follows the raw trajectory, which EMA does not change.
    _assert_same(load_file(str(tmp_path / "on" / "checkpoint" / "model.safetensors")), raw[steps])
    shadow = torch.load(tmp_path / "on" / "checkpoint" / "ema.pt", weights_only=True)["shadow_params"]
    _assert_same(dict(zip(ema[steps], shadow)), ema[steps])


def test_checkpoint_is_complete_and_atomic(tmp_path):
    train(Regression(), Table(40), _config(checkpoint_every=5), tmp_path)
    ckpt = tmp_path / "checkpoint"
    assert sorted(p.name for p in ckpt.iterdir()) == sorted(
        ["model.safetensors", "optimizer.pt", "lr_scheduler.pt", "rng_0.pt", "state.json"]
    )
    assert json.loads((ckpt / "state.json").read_text()) == {"step": 10, "world_size": 1}
    assert not (tmp_path / "checkpoint.tmp").exists()
    assert not (tmp_path / "checkpoint.old").exists()


@pytest.mark.parametrize("ema_decay", [None, 0.9], ids=["ema_off", "ema_on"])
def test_resume_after_a_kill_matches_an_uninterrupted_run(tmp_path, ema_decay):
    cfg = _config(steps=10, checkpoint_every=5, ema_decay=ema_decay)
    whole = train(Regression(), Table(40), cfg, tmp_path / "whole")

    # Step s uses items [4s, 4s + 4): dying on item 28 kills the job after 7 steps,
    # with the step-5 checkpoint on disk and log lines up to step 7.
    killed = tmp_path / "killed"
    with pytest.raises(RuntimeError, match="simulated kill"):
        train(Regression(), Table(40, fail_at=28), cfg, killed)
    assert json.loads((killed / "checkpoint" / "state.json").read_text())["step"] == 5
    assert [r["step"] for r in _read_log(killed)] == list(range(1, 8))
    assert not (killed / "checkpoint.tmp").exists()

    resumed = train(Regression(), Table(40), cfg, killed)  # a fresh process would build a fresh objective too
    assert resumed.resumed_from == 5 and resumed.steps == 10
    _assert_same(_weights(resumed.objective), _weights(whole.objective))
    _assert_same(
        load_file(str(killed / "checkpoint" / "model.safetensors")),
        load_file(str(tmp_path / "whole" / "checkpoint" / "model.safetensors")),
    )
    log_whole, log_resumed = _read_log(tmp_path / "whole"), _read_log(killed)
    assert [r["step"] for r in log_resumed] == list(range(1, 11))  # steps 6, 7 logged once, not twice
    assert [r["loss"] for r in log_resumed] == [r["loss"] for r in log_whole]


def test_resume_of_a_finished_run_does_nothing(tmp_path):
    cfg = _config(steps=6, checkpoint_every=3, ema_decay=0.9)
    first = train(Regression(), Table(24), cfg, tmp_path)
    again = train(Regression(), Table(24), cfg, tmp_path)
    assert again.resumed_from == 6 and again.steps == 6
    _assert_same(_weights(again.objective), _weights(first.objective))  # EMA weights both times
    assert _read_log(tmp_path) == first.log


def test_resume_false_starts_over(tmp_path):
    cfg = _config(steps=4)
    first = train(Regression(), Table(16), cfg, tmp_path)
    again = train(Regression(), Table(16), cfg, tmp_path, resume=False)
    assert again.resumed_from == 0
    _assert_same(_weights(again.objective), _weights(first.objective))


def test_a_stale_half_written_tmp_checkpoint_is_ignored(tmp_path):
    # A job killed while writing leaves checkpoint.tmp behind: resume must not read it.
    stale = tmp_path / "checkpoint.tmp"
    stale.mkdir(parents=True)
    (stale / "model.safetensors").write_bytes(b"\x00" * 10)
    res = train(Regression(), Table(16), _config(steps=4, checkpoint_every=2), tmp_path)
    assert res.resumed_from == 0
    assert not stale.exists()
    assert json.loads((tmp_path / "checkpoint" / "state.json").read_text())["step"] == 4


def test_kill_between_the_two_renames_still_resumes(tmp_path):
    cfg = _config(steps=10, checkpoint_every=5)
    with pytest.raises(RuntimeError, match="simulated kill"):
        train(Regression(), Table(40, fail_at=28), cfg, tmp_path)
    # The state a kill between os.replace(final, old) and os.replace(tmp, final) leaves:
    shutil.copytree(tmp_path / "checkpoint", tmp_path / "checkpoint.tmp")
    (tmp_path / "checkpoint").rename(tmp_path / "checkpoint.old")
    res = train(Regression(), Table(40), cfg, tmp_path)
    assert res.resumed_from == 5


def test_non_finite_loss_stops_the_run(tmp_path):
    with pytest.raises(FloatingPointError, match="step 1"):
        train(Regression(), Table(16, nan_at=5), _config(steps=4), tmp_path)


@pytest.mark.parametrize(
    "bad",
    [
        dict(steps=0),
        dict(batch_size=0),
        dict(lr=0.0),
        dict(lr=-1e-3),
        dict(ema_decay=1.0),
        dict(ema_decay=0.0),
        dict(grad_clip=0.0),
    ],
    ids=lambda d: "-".join(f"{k}={v}" for k, v in d.items()),
)
def test_bad_config_raises(bad):
    with pytest.raises(InvalidInputError):
        _config(**bad)


def test_log_every_zero_is_refused_at_construction(tmp_path):
    with pytest.raises(InvalidInputError):
        cfg = _config(steps=1, log_every=0)
        train(Regression(), Table(4), cfg, tmp_path)


def test_dataset_too_small_raises(tmp_path):
    with pytest.raises(InvalidInputError, match="need 40"):
        train(Regression(), Table(39), _config(steps=10, batch_size=4), tmp_path)


def test_config_is_json_serialisable():
    cfg = _config(grad_clip=None, ema_decay=0.99)
    assert TrainConfig(**json.loads(json.dumps(asdict(cfg)))) == cfg
