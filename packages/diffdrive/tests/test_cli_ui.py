import json

import numpy as np
import pytest

from diffcore.errors import InvalidInputError
from diffdrive.cli import main
from diffdrive.render import write_video


def test_eval_writes_json(tmp_path, capsys):
    out = tmp_path / "r.json"
    rc = main(["eval", "--planner", "expert", "--scenario", "merge", "--episodes", "1", "--json", str(out)])
    assert rc == 0
    data = json.loads(out.read_text())
    ep = data["scenarios"]["merge"]["episodes"][0]
    assert ep["seed"] == 300_000 and ep["collided"] == 0.0
    assert "collision_rate" in data["scenarios"]["merge"]["mean"]


@pytest.mark.slow
def test_drive_renders_a_video(tmp_path):
    out = tmp_path / "ep.mp4"
    assert main(["drive", "--scenario", "merge", "--render", str(out)]) == 0
    assert out.stat().st_size > 10_000
    import imageio.v3 as iio

    frames = iio.imread(out)
    assert frames.shape[1:] == (224, 896, 3) and len(frames) > 10


@pytest.mark.parametrize(
    "argv, msg",
    [
        (["eval", "--scenario", "racetrack", "--episodes", "1"], "unknown scenario"),
        (["drive", "--render", "out.avi"], "must end in .mp4 or .gif"),
        (["eval", "--planner", "expert", "--episodes", "2", "--seed", str(2**32 - 1)], "last episode seed"),
    ],
)
def test_bad_arguments_are_clear_errors(argv, msg, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("diffdrive: error: ") and msg in err


def test_train_forwards_its_arguments_and_reports_errors(monkeypatch, capsys):
    """``diffdrive train ARGS`` is ``diffcore train drive ARGS``: the arguments reach diffdrive.train.main as given."""
    import diffdrive.train
    from diffcore.errors import DataError

    seen = []
    monkeypatch.setattr(diffdrive.train, "main", seen.append)
    assert main(["train", "--stage", "vanilla", "--smoke"]) == 0
    assert seen == [["--stage", "vanilla", "--smoke"]]

    def fail(argv):
        raise DataError("no demonstrations under runs/drive")

    monkeypatch.setattr(diffdrive.train, "main", fail)
    assert main(["train"]) == 2
    assert capsys.readouterr().err == "diffdrive: error: no demonstrations under runs/drive\n"


def test_write_video_checks(tmp_path):
    with pytest.raises(InvalidInputError, match="no frames"):
        write_video([], tmp_path / "a.mp4")
    gif = write_video([np.zeros((8, 8, 3), np.uint8)] * 2, tmp_path / "a.gif")
    assert gif.stat().st_size > 0


@pytest.mark.slow
def test_ui_drives_side_by_side():
    from diffdrive.ui import COMPARE, DRIVER_CHOICES, drive

    video, other, rows, note = drive("merge", 300_001, next(iter(DRIVER_CHOICES)), True)
    assert video.endswith(".mp4") and other.endswith(".mp4")
    assert [r[0] for r in rows] == ["DiffusionDrive (2 steps)", "Vanilla diffusion (20 steps)"]
    assert "held-out" in note
    video, other, rows, _ = drive("merge", 5, COMPARE, True)
    assert other is None and len(rows) == 1
    with pytest.raises(InvalidInputError, match="seed"):
        drive("merge", 1.5, COMPARE, False)


def test_demo_builds():
    import gradio as gr

    from diffdrive.ui import build_demo

    assert isinstance(build_demo(), gr.Blocks)
