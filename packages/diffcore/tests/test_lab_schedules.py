"""``diffcore train lab``: the shipped schedules' card, and the smoke fit on the stage runner."""

from __future__ import annotations

import pytest

from diffcore.cache.search import CacheSchedule
from diffcore.lab.schedules import SCHEDULES_DIR, LabRecipe, list_schedules, main, schedules_card
from diffcore.train import TrainingCard


def test_the_shipped_card_is_the_schedules_own_metadata():
    card = TrainingCard.read(SCHEDULES_DIR)
    assert list(list_schedules()) == ["ddim50_dp", "ddim50_evolved_n5", "dpmpp20_dp"]  # the card is no schedule
    assert schedules_card(SCHEDULES_DIR, LabRecipe(), machine=card.machine, command=card.command) == card
    assert card.command == "diffcore train lab --stage schedules --seed 0"
    assert (card.steps, card.batch, card.parameters) == (6, 4, 50 + 50 + 20)
    assert card.metrics["ddim50_dp_recomputes"] == 17 and card.metrics["ddim50_evolved_n5_error"] == 0.0571


@pytest.mark.slow
def test_smoke_fit_writes_schedules_and_card_outside_the_shipped_folder(tmp_path):
    shipped = {p.name: p.read_bytes() for p in SCHEDULES_DIR.iterdir()}
    main(["--smoke", "--out", str(tmp_path)])
    out = tmp_path / "weights" / "tinysd" / "schedules"
    card = TrainingCard.read(out)
    assert (card.steps, card.batch, card.parameters) == (1, 1, 120)
    assert card.command == "diffcore train lab --stage schedules --seed 0 --smoke"
    for name, path in list_schedules(out).items():
        s = CacheSchedule.load(path)
        assert s.meta["calibration_seeds"] == "1 latents from torch seed 1000"
        assert card.metrics[f"{name}_recomputes"] == sum(s.recompute)
    assert {p.name: p.read_bytes() for p in SCHEDULES_DIR.iterdir()} == shipped


def test_a_v1_schedule_is_refused_on_the_v2_unet():
    """Schedules are bound to the weights they were fitted on: v1's never silently run on v2's UNet; v2 has its own."""
    from diffcore import cache
    from diffcore.errors import ArtifactMismatchError
    from diffcore.zoo import WEIGHTS, load_tinysd

    v2 = load_tinysd("tinysd-v2")
    for path in list_schedules(WEIGHTS / "tinysd" / "schedules").values():
        with pytest.raises(ArtifactMismatchError, match="hash"):
            cache.apply(v2.unet, CacheSchedule.load(path))
    own = list_schedules(WEIGHTS / "tinysd-v2" / "schedules")
    assert set(own) == set(list_schedules(WEIGHTS / "tinysd" / "schedules"))
    for path in own.values():
        with cache.apply(v2.unet, CacheSchedule.load(path)):
            pass
