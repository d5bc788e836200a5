"""diffcore.checkpoint: safetensors round trip, training cards, refusing pickles.

A "pickle bomb" here is a file whose unpickling creates a marker file; every
refusal test asserts the marker was never created, i.e. nothing was unpickled.
"""

from __future__ import annotations

import dataclasses
import json
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from diffusers import UNet2DModel
from safetensors.torch import load_file, save_file

from diffcore.checkpoint import WEIGHTS, check_folder, load_card, load_model, save_model
from diffcore.errors import CheckpointError, PickleRefusedError
from diffcore.train.card import CARD_JSON, CARD_MD, TrainingCard

CARD = TrainingCard(
    model="tiny-unet",
    data="synthetic",
    steps=10,
    batch=2,
    seed=0,
    parameters=100,
    seconds=1.5,
    machine="test CPU, 2 cores",
    command="pytest",
    metrics={"psnr": 30.5, "ms_ssim": 0.91},
)


def _tiny_unet(seed: int = 0) -> UNet2DModel:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return UNet2DModel(
            sample_size=8,
            in_channels=1,
            out_channels=1,
            layers_per_block=1,
            block_out_channels=(8, 8),
            norm_num_groups=4,
            down_block_types=("DownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "UpBlock2D"),
        ).eval()


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    return save_model(_tiny_unet(), tmp_path_factory.mktemp("ckpt") / "unet", CARD)


class _Bomb:
    """Unpickling this creates ``marker`` (builtins.open in write mode)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_bomb_is_armed(tmp_path):
    # Guards the refusal tests below: unpickling this payload really leaves a trace.
    marker = tmp_path / "armed"
    pickle.loads(pickle.dumps(_Bomb(marker))).close()
    assert marker.exists()


def test_round_trip_is_exact(saved):
    original = _tiny_unet()
    loaded = load_model(UNet2DModel, saved)
    assert isinstance(loaded, UNet2DModel) and not loaded.training
    ref_state, got_state = original.state_dict(), loaded.state_dict()
    assert ref_state.keys() == got_state.keys()
    assert all(torch.equal(ref_state[k], got_state[k]) for k in ref_state)
    x = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(original(x, 10).sample, loaded(x, 10).sample)
    assert list(loaded.config.block_out_channels) == [8, 8]


def test_card_files_are_written(saved):
    assert sorted(p.name for p in saved.iterdir()) == sorted(["config.json", WEIGHTS, CARD_JSON, CARD_MD])
    assert not saved.with_name(saved.name + ".tmp").exists()
    assert load_card(saved) == CARD.to_dict()
    assert TrainingCard.read(saved) == CARD
    md = (saved / CARD_MD).read_text()
    assert md.startswith("# Training card: tiny-unet\n")
    assert "- **steps**: 10\n" in md
    assert "- **metrics**:\n  - psnr: 30.5\n  - ms_ssim: 0.91\n" in md


def test_save_overwrites_an_existing_checkpoint(tmp_path):
    path = tmp_path / "unet"
    save_model(_tiny_unet(0), path, CARD)
    save_model(_tiny_unet(1), path, dataclasses.replace(CARD, steps=20))
    loaded = load_model(UNet2DModel, path)
    assert torch.equal(loaded.conv_in.weight, _tiny_unet(1).conv_in.weight)
    assert load_card(path)["steps"] == 20
    assert sorted(p.name for p in tmp_path.iterdir()) == ["unet"]


def test_a_card_that_is_not_a_training_card_is_refused_before_writing(tmp_path):
    with pytest.raises(TypeError, match="TrainingCard"):
        save_model(_tiny_unet(), tmp_path / "unet", CARD.to_dict())
    assert list(tmp_path.iterdir()) == []


def test_missing_folder_and_missing_config(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_model(UNet2DModel, tmp_path / "nowhere")
    (tmp_path / "noconfig").mkdir()
    with pytest.raises(CheckpointError, match=r"no config.json"):
        load_model(UNet2DModel, tmp_path / "noconfig")
    with pytest.raises(CheckpointError, match="cannot read training card"):
        load_card(tmp_path / "noconfig")


def test_config_without_weights(saved, tmp_path):
    folder = tmp_path / "noweights"
    folder.mkdir()
    shutil.copy(saved / "config.json", folder)
    with pytest.raises(CheckpointError, match=r"no .safetensors"):
        check_folder(folder)


@pytest.mark.parametrize("name", ["diffusion_pytorch_model.bin", "model.pt", "model.ckpt", "weights.pkl"])
def test_pickle_only_folder_is_refused_unread(saved, tmp_path, name):
    folder, marker = tmp_path / "pickled", tmp_path / "UNPICKLED"
    folder.mkdir()
    shutil.copy(saved / "config.json", folder)
    (folder / name).write_bytes(pickle.dumps(_Bomb(marker)))
    with pytest.raises(PickleRefusedError, match="never unpickles") as err:
        load_model(UNet2DModel, folder)
    assert name in str(err.value)
    assert isinstance(err.value, CheckpointError)
    assert not marker.exists()


def test_pickle_next_to_a_stray_safetensors_is_not_unpickled(saved, tmp_path):
    # check_folder passes (a .safetensors exists) but the weights file is the pickle:
    # loading must still refuse rather than fall back to the .bin.
    folder, marker = tmp_path / "mixed", tmp_path / "UNPICKLED"
    folder.mkdir()
    shutil.copy(saved / "config.json", folder)
    (folder / "diffusion_pytorch_model.bin").write_bytes(pickle.dumps(_Bomb(marker)))
    save_file({"unrelated": torch.zeros(1)}, str(folder / "other.safetensors"))
    with pytest.raises(CheckpointError, match="corrupt or does not match"):
        load_model(UNet2DModel, folder)
    assert not marker.exists()


def _copy_with_weights(saved: Path, dest: Path, data: bytes) -> Path:
    shutil.copytree(saved, dest)
    (dest / WEIGHTS).write_bytes(data)
    return dest


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_corrupt_safetensors_raise_checkpoint_error(saved, tmp_path, damage):
    good = (saved / WEIGHTS).read_bytes()
    data = {"truncated": good[: len(good) // 2], "garbage": bytes(range(256)) * 4, "empty": b""}[damage]
    folder = _copy_with_weights(saved, tmp_path / damage, data)
    with pytest.raises(CheckpointError, match="corrupt or does not match UNet2DModel"):
        load_model(UNet2DModel, folder)


def test_config_that_does_not_match_the_weights(saved, tmp_path):
    folder = shutil.copytree(saved, tmp_path / "mismatch")
    config = json.loads((folder / "config.json").read_text())
    config["block_out_channels"] = [16, 16]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="expected shape"):
        load_model(UNet2DModel, folder)
    (folder / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not a valid JSON"):
        load_model(UNet2DModel, folder)


def test_weights_missing_a_tensor_raise(saved, tmp_path):
    state = load_file(str(saved / WEIGHTS))
    del state["conv_in.bias"]
    folder = shutil.copytree(saved, tmp_path / "incomplete")
    save_file(state, str(folder / WEIGHTS))
    with pytest.raises(CheckpointError):
        load_model(UNet2DModel, folder)


def test_fuzzed_weights_and_configs_only_raise_checkpoint_error(saved, tmp_path):
    """Seeded fuzz: random byte flips in the weights header/body, and in config.json,
    either load (a flip inside tensor data is still a valid file) or raise CheckpointError,
    never anything else."""
    import random

    rng = random.Random(0)
    good_w = (saved / WEIGHTS).read_bytes()
    good_c = (saved / "config.json").read_bytes()
    header_len = 8 + int.from_bytes(good_w[:8], "little")
    refused = 0
    for i in range(40):
        w, c = bytearray(good_w), bytearray(good_c)
        target = w if i % 2 == 0 else c
        limit = header_len if target is w and i % 4 == 0 else len(target)
        for _ in range(rng.randint(1, 8)):
            target[rng.randrange(limit)] = rng.randrange(256)
        folder = shutil.copytree(saved, tmp_path / f"fuzz{i}")
        (folder / WEIGHTS).write_bytes(bytes(w))
        (folder / "config.json").write_bytes(bytes(c))
        try:
            load_model(UNet2DModel, folder)
        except CheckpointError:
            refused += 1
    assert refused >= 20  # 35 of 40 measured: most header and config damage is caught, so the fuzz really exercises the errors
