"""diffcore.validate (the one seed rule), diffcore.cli_errors (the one error line) and diffcore.testing's corruptions."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch

from diffcore.cli_errors import USAGE_ERROR, report_error, run_command
from diffcore.errors import DataError, InvalidInputError
from diffcore.testing import BAD_SEEDS, break_json, flip_header_bits, truncate, wrong_json_types
from diffcore.validate import SEED_LIMIT, check_count, check_seed, count_arg, seed_arg


@pytest.mark.parametrize("seed", [0, 1, SEED_LIMIT - 1, np.int64(7), np.uint32(2**32 - 1)])
def test_good_seeds_come_back_as_ints_both_generators_take(seed):
    s = check_seed(seed)
    assert type(s) is int and s == int(seed)
    assert np.random.default_rng(s).integers(10) == np.random.default_rng(int(seed)).integers(10)
    torch.Generator().manual_seed(s)


@pytest.mark.parametrize("seed", (*BAD_SEEDS, np.True_, 2**63, -(2**31)))
def test_bad_seeds_are_refused_naming_the_value(seed):
    with pytest.raises(InvalidInputError, match=r"seed must be an integer in \[0, 2\*\*32\), got ") as e:
        check_seed(seed)
    assert repr(seed) in str(e.value)


def test_the_name_is_the_callers():
    with pytest.raises(InvalidInputError, match=r"^--seed \+ --episodes must be .* got 4294967296$"):
        check_seed(SEED_LIMIT, "--seed + --episodes")


def test_seed_arg_is_argparse_s_usage_error(capsys):
    p = argparse.ArgumentParser(prog="tool")
    p.add_argument("--seed", type=seed_arg, default=0)
    assert p.parse_args(["--seed", "4294967295"]).seed == SEED_LIMIT - 1
    for bad in ("-1", "4294967296", "1.5", "x"):
        with pytest.raises(SystemExit) as e:
            p.parse_args(["--seed", bad])
        assert e.value.code == USAGE_ERROR == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert err.startswith("tool: error: argument --seed: ") and bad in err


def test_run_command_reports_typed_errors_in_argparse_s_format(capsys):
    def fail() -> int:
        raise DataError("no images in ~/photos")

    assert run_command("tool", fail) == 2
    assert capsys.readouterr().err == "tool: error: no images in ~/photos\n"
    assert run_command("tool", lambda: 0) == 0
    with pytest.raises(ZeroDivisionError):  # a bug is not the user's mistake: it keeps its traceback
        run_command("tool", lambda: 1 // 0)
    assert run_command("tool", lambda: (_ for _ in ()).throw(OSError("disk full")), catch=(OSError,)) == 2
    assert capsys.readouterr().err == "tool: error: disk full\n"
    assert report_error("tool", "plain words") == 2 and capsys.readouterr().err == "tool: error: plain words\n"


def test_corruptions_break_what_they_say(tmp_path):
    from safetensors import SafetensorError
    from safetensors.torch import load_file, save_file

    f = tmp_path / "m.safetensors"
    save_file({"w": torch.arange(64, dtype=torch.float32)}, str(f))
    size = f.stat().st_size
    truncate(f)
    assert f.stat().st_size == size // 2
    with pytest.raises(SafetensorError):
        load_file(str(f))
    save_file({"w": torch.arange(64, dtype=torch.float32)}, str(f))
    flip_header_bits(f)
    with pytest.raises(SafetensorError):
        load_file(str(f))
    c = tmp_path / "config.json"
    c.write_text(json.dumps({"layers": 2, "width": 32}))
    wrong_json_types(c)
    assert json.loads(c.read_text()) == {"layers": "nonsense", "width": "nonsense"}
    break_json(c)
    with pytest.raises(json.JSONDecodeError):
        json.loads(c.read_text())


@pytest.mark.parametrize("value", [0, 101, -1, True, 2.0, "3", None, np.float32(2)])
def test_check_count_refuses_what_is_not_an_int_in_range(value):
    with pytest.raises(InvalidInputError, match=r"steps must be an integer in \[1, 100\]"):
        check_count(value, "steps", high=100)


@pytest.mark.parametrize("value", [1, 100, np.int64(7)])
def test_check_count_returns_a_plain_int(value):
    out = check_count(value, "steps", high=100)
    assert out == int(value) and type(out) is int


def test_count_arg_is_argparses_usage_error(capsys):
    p = argparse.ArgumentParser(prog="x")
    p.add_argument("--steps", type=count_arg("--steps", low=0, high=50))
    assert p.parse_args(["--steps", "0"]).steps == 0
    for bad in ("51", "-1", "2.5", "many"):
        with pytest.raises(SystemExit):
            p.parse_args(["--steps", bad])
        assert "error: argument --steps: " in capsys.readouterr().err
