"""The training recipe runs end to end (a few steps per stage) and writes loadable weights with cards."""

from __future__ import annotations

import json

import numpy as np
import pytest

from diffcodec import Codec
from diffcodec.train import main


@pytest.mark.slow
def test_smoke_recipe_writes_weights_every_codec_loads(tmp_path):
    weights = tmp_path / "w"
    main(["--smoke", "--out", str(tmp_path / "run"), "--weights", str(weights)])
    cards = sorted(weights.rglob("training_card.json"))
    assert len(cards) == 9  # oscar hyper + lora, 3 rdeic hypers + lora, 3 baselines
    for card in cards:
        c = json.loads(card.read_text())
        assert {"data", "steps", "seed", "wall_time_s", "metrics", "command", "machine"} <= c.keys(), card
    img = np.random.default_rng(0).integers(0, 256, (40, 52, 3), dtype=np.uint8)
    for method in ("oscar", "rdeic", "hyperprior"):
        codec = Codec.load(method, path=weights)
        assert codec.decompress(codec.compress(img, rate=0)).size == (52, 40)
