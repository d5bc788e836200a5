"""The training recipe runs end to end (a few steps per stage) and writes loadable weights with cards."""

from __future__ import annotations

import numpy as np
import pytest

from diffcodec import Codec
from diffcodec.train import CodecRecipe, main
from diffcore.train import TrainingCard


@pytest.mark.slow
def test_smoke_recipe_writes_weights_every_codec_loads(tmp_path):
    weights = tmp_path / "w"
    main(["--smoke", "--out", str(tmp_path / "run"), "--weights", str(weights)])
    cards = sorted(weights.rglob("training_card.json"))
    assert len(cards) == 9  # oscar hyper + lora, 3 rdeic hypers + lora, 3 baselines
    smoke = CodecRecipe().smoke()
    for card in cards:
        c = TrainingCard.read(card.parent)
        assert c.seed == 0 and c.parameters > 0 and c.metrics, card
        stage = c.command.split(" --stage ")[1].split()[0]
        assert c.command == f"diffcore train codec --stage {stage} --seed 0 --smoke"
        steps, batch = {
            "oscar-hyper": (smoke.hyper_steps, smoke.hyper_batch),
            "oscar-lora": (smoke.lora_steps, smoke.lora_batch),
            "rdeic-hyper": (smoke.rdeic_steps, smoke.rdeic_batch),
            "rdeic-lora": (smoke.relay_steps, smoke.relay_batch),
            "baseline": (smoke.base_steps, smoke.base_batch),
        }[stage]
        assert (c.steps, c.batch) == (steps, batch), card
    img = np.random.default_rng(0).integers(0, 256, (40, 52, 3), dtype=np.uint8)
    for method in ("oscar", "rdeic", "hyperprior"):
        codec = Codec.load(method, path=weights)
        assert codec.decompress(codec.compress(img, rate=0)).size == (52, 40)
