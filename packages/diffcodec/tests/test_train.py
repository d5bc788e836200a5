"""The training recipe runs end to end (a few steps per stage) and writes loadable weights with cards."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from diffcodec import Codec
from diffcodec.train import CodecRecipe, main
from diffcodec.train.data import PairedCrops, pixel_loss
from diffcore.data.pool import PoolImage
from diffcore.errors import CheckpointError
from diffcore.train import TrainingCard


@pytest.mark.slow
def test_smoke_recipe_writes_weights_every_codec_loads(tmp_path):
    weights = tmp_path / "w"
    main(["--smoke", "--out", str(tmp_path / "run"), "--weights", str(weights)])
    cards = sorted(weights.rglob("training_card.json"))
    assert len(cards) == 9  # oscar hyper + lora (both from oscar-joint), 3 rdeic hypers + lora, 3 baselines
    smoke = CodecRecipe().smoke()
    for card in cards:
        c = TrainingCard.read(card.parent)
        assert c.seed == 0 and c.parameters > 0 and c.metrics, card
        stage = c.command.split(" --stage ")[1].split()[0]
        assert c.command == f"diffcore train codec --stage {stage} --seed 0 --smoke"
        steps, batch = {
            "oscar-hyper": (smoke.hyper_steps, smoke.hyper_batch),
            "oscar-joint": (smoke.joint_steps, smoke.joint_batch),
            "rdeic-hyper": (smoke.rdeic_steps, smoke.rdeic_batch),
            "rdeic-lora": (smoke.relay_steps, smoke.relay_batch),
            "baseline": (smoke.base_steps, smoke.base_batch),
        }[stage]
        assert (c.steps, c.batch) == (steps, batch), card
    assert (tmp_path / "run" / "oscar-hyper" / "hyper" / "training_card.json").is_file()  # stage 1, not shipped
    assert len(list((tmp_path / "run").glob("latents-*.pt"))) == 1  # encoded once, shared by the stages
    img = np.random.default_rng(0).integers(0, 256, (40, 52, 3), dtype=np.uint8)
    for method in ("oscar", "rdeic", "hyperprior"):
        codec = Codec.load(method, path=weights)
        assert codec.decompress(codec.compress(img, rate=0)).size == (52, 40)


def test_joint_stage_needs_stage_one(tmp_path):
    with pytest.raises(CheckpointError, match="--stage oscar-hyper"):
        main(["--smoke", "--stage", "oscar-joint", "--out", str(tmp_path)])


def test_paired_crops_align_latent_and_pixel_crops():
    """Latent pixel (i, j) covers image pixels 4i…4i+3, 4j…4j+3, mirrored pairs included: checked with a 'latent'
    that is the image's own 4×4 average (so any misalignment shows)."""
    rng = np.random.default_rng(0)
    px = rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)  # sides not multiples of 4

    def pool(a):
        x = torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1).float() / 127.5 - 1
        return F.avg_pool2d(x[None, :, : a.shape[0] // 4 * 4, : a.shape[1] // 4 * 4], 4)[0]

    maps = [pool(px), pool(px[:, ::-1])]
    ds = PairedCrops([PoolImage("x", "x", px)], maps, size=8, length=40, seed=3)
    for i in range(len(ds)):
        z, x = ds[i]
        assert z.shape == (3, 8, 8) and x.shape == (3, 32, 32)
        torch.testing.assert_close(z, F.avg_pool2d(x[None], 4)[0])
    assert ds[5][0].equal(PairedCrops([PoolImage("x", "x", px)], maps, size=8, length=40, seed=3)[5][0])


def test_pixel_loss_sees_structure_and_adapts_its_scales():
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    loss, parts = pixel_loss(x, x, 0.5)
    assert loss.item() == pytest.approx(0.0, abs=1e-5) and parts["ms_ssim"].item() == pytest.approx(1.0, abs=1e-5)
    blurred = F.avg_pool2d(x, 3, 1, 1)
    loss_blur, parts = pixel_loss(blurred, x, 0.5)
    assert parts["ms_ssim"] < 0.9 and loss_blur.item() == pytest.approx((parts["l1"] + 0.5 * (1 - parts["ms_ssim"])).item())
    assert pixel_loss(blurred, x, 0.0)[0].item() == pytest.approx(F.l1_loss(blurred, x).item(), rel=1e-5)
