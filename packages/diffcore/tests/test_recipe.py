"""``diffcore train prior`` end to end, tiny: both stages, cards, loadable weights, user folders."""

import json

import numpy as np
import pytest
from PIL import Image

from diffcore.cli import main
from diffcore.data import load_pool
from diffcore.prior.generate import generate
from diffcore.zoo import load_tinydit, load_tinysd

pytestmark = pytest.mark.slow


def test_train_prior_on_a_user_folder_writes_loadable_weights(tmp_path):
    photo = next(im for im in load_pool("train") if im.name == "astronaut").pixels
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(5):  # 5 files: 4 train, 1 holdout (every fifth)
        Image.fromarray(np.ascontiguousarray(photo[i * 60 : i * 60 + 96, i * 50 : i * 50 + 128])).save(folder / f"p{i}.png")
    out, work = tmp_path / "weights", tmp_path / "work"
    argv = [
        "train",
        "prior",
        "--data",
        str(folder),
        "--weights",
        str(out),
        "--out",
        str(work),
        "--ae-steps",
        "3",
        "--ae-batch",
        "2",
        "--unet-steps",
        "3",
        "--unet-batch",
        "2",
        "--dit-steps",
        "2",
        "--dit-batch",
        "2",
        "--eval-every",
        "2",
    ]
    assert main(argv) == 0
    card = json.loads((out / "autoencoder" / "training_card.json").read_text())
    assert card["steps"] == 3 and card["batch"] == 2 and card["seed"] == 0 and card["parameters"] > 1_000_000
    assert card["details"]["holdout_images"] == ["p4"]
    assert card["details"]["train_images"] == ["p0", "p1", "p2", "p3"]  # a user folder: no video frames
    assert (
        card["command"] == f"diffcore train prior --stage autoencoder --seed 0 --ae-steps 3 --ae-batch 2 --unet-steps 3 "
        f"--unet-batch 2 --dit-steps 2 --dit-batch 2 --eval-every 2 --data {folder}"
    )
    assert "holdout_ms_ssim" not in card["metrics"]  # 96 px photos: too small for 5-scale MS-SSIM
    assert (out / "unet" / "training_card.md").exists() and (out / "scheduler" / "scheduler_config.json").exists()
    assert json.loads((out / "dit" / "training_card.json").read_text())["steps"] == 2
    log = [json.loads(line) for line in (work / "autoencoder" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "eval" in r] == [2, 3]
    sd = load_tinysd(path=out)
    assert generate(sd, sampler="ddim", steps=2, n=1, size=64).images.shape == (1, 64, 64, 3)
    assert load_tinydit(path=out).config.num_layers == 6
