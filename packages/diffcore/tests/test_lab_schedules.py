"""``diffcore train lab``: the shipped schedules' card, and the smoke fit on the stage runner."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from diffcore.cache.search import CacheSchedule
from diffcore.lab.schedules import SCHEDULES_DIR, LabRecipe, list_schedules, main, schedules_card
from diffcore.train import TrainingCard
from diffcore.zoo import WEIGHTS


def test_the_shipped_card_is_the_schedules_own_metadata():
    assert SCHEDULES_DIR == WEIGHTS / "tinysd-v2" / "schedules"
    card = TrainingCard.read(SCHEDULES_DIR)
    assert list(list_schedules()) == ["ddim50_dp", "ddim50_evolved_n5", "dpmpp20_dp"]  # the card is no schedule
    assert schedules_card(SCHEDULES_DIR, LabRecipe(), machine=card.machine, command=card.command) == card
    # fitted while v1 was still the default, hence the explicit --prior (the same run as today's default)
    assert card.command == "diffcore train lab --stage schedules --seed 0 --prior tinysd-v2"
    assert card.details["recipe"]["prior"] == LabRecipe().prior == "tinysd-v2"
    assert (card.steps, card.batch, card.parameters) == (6, 4, 50 + 50 + 20)
    assert card.metrics["ddim50_dp_recomputes"] == 17 and card.metrics["ddim50_evolved_n5_error"] == 0.1019


@pytest.mark.slow
def test_smoke_fit_writes_schedules_and_card_outside_the_shipped_folder(tmp_path):
    shipped = {p.name: p.read_bytes() for p in SCHEDULES_DIR.iterdir()}
    main(["--smoke", "--out", str(tmp_path)])
    out = tmp_path / "weights" / "tinysd-v2" / "schedules"
    card = TrainingCard.read(out)
    assert (card.steps, card.batch, card.parameters) == (1, 1, 120)
    assert card.command == "diffcore train lab --stage schedules --seed 0 --smoke"
    for name, path in list_schedules(out).items():
        s = CacheSchedule.load(path)
        assert s.meta["calibration_seeds"] == "1 latents from torch seed 1000"
        assert card.metrics[f"{name}_recomputes"] == sum(s.recompute)
    assert {p.name: p.read_bytes() for p in SCHEDULES_DIR.iterdir()} == shipped


def test_schedules_are_bound_to_the_unet_they_were_fitted_on():
    """The shipped schedules run on tinysd-v2's UNet and are refused, by hash, on any other weights."""
    from diffcore import cache
    from diffcore.checkpoint import model_hash
    from diffcore.errors import ArtifactMismatchError
    from diffcore.zoo import load_tinysd

    unet = load_tinysd("tinysd-v2").unet
    assert TrainingCard.read(SCHEDULES_DIR).details["model_hash"] == model_hash(unet)
    other = copy.deepcopy(unet)
    with torch.no_grad():
        next(other.parameters()).view(-1)[0] += 1e-3  # one weight off: another model
    for path in list_schedules().values():
        with cache.apply(unet, CacheSchedule.load(path)):
            pass
        with pytest.raises(ArtifactMismatchError, match="hash"):
            cache.apply(other, CacheSchedule.load(path))


def test_retired_v1_is_refused_as_a_prior_to_fit():
    from diffcore.errors import UnknownNameError
    from diffcore.lab.schedules import fit_all

    with pytest.raises(UnknownNameError, match="no shipped tinysd 'tinysd' to fit schedules for; shipped: tinysd-v2"):
        fit_all(Path("unused"), LabRecipe(prior="tinysd"))
