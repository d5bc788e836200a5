"""diffcore.bench.report: escaped tables, the goals section, the command line; ``diffcore bench`` passes what was typed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from diffcore.bench import Report, format_table
from diffcore.cli import main


def test_table_escapes_pipes_and_newlines_and_formats_numbers():
    rows = [
        {"name": "a|b", "x": 1 / 3, "ok": True, "note": "two\nlines"},
        {"name": "c", "x": float("nan"), "ok": False, "extra": 123456.0},
    ]
    lines = format_table(rows).splitlines()
    assert lines[0] == "| name | x | ok | note | extra |"  # every key, in order of first appearance
    assert lines[1] == "|---|---|---|---|---|"
    assert lines[2] == "| a\\|b | 0.3333 | yes | two lines |  |"
    assert lines[3] == "| c | n/a | no |  | 1.235e+05 |"
    assert format_table([{"a|b": 1}]).splitlines()[0] == "| a\\|b |"
    assert format_table([]) == "(no rows)"


def test_table_section_and_json_rows(tmp_path):
    r = Report("demo", "Demo", tmp_path, command="diffcore bench demo --quick")
    r.table("Speed", [{"variant": "x|y", "ratio": 0.5}], "Paired.", key="speed")
    md = r.write().read_text()
    assert "## Speed\n\nPaired.\n\n| variant | ratio |\n|---|---|\n| x\\|y | 0.5 |" in md
    data = json.loads((tmp_path / "demo.json").read_text())
    assert data["results"]["speed"] == [{"variant": "x|y", "ratio": 0.5}]


def test_goals_section_first_with_measured_values_and_verdicts(tmp_path):
    r = Report("demo", "Demo", tmp_path)
    r.text("Later", "body")
    r.goal("PSNR ≥ bicubic + 1 dB", "29.1 vs 28.7 dB (+0.4)", 29.1 >= 28.7 + 1.0)
    r.goal("MS-SSIM ≥ 0.965", 0.97, True)
    r.goal("decode ≤ 2× the baseline's", "n/a", None, note="baseline not in this run")
    md = r.write().read_text()
    goals = md.index("## Goals")
    assert goals < md.index("## Later")
    assert "1 of 2 checked goals met (1 not checked in this run)." in md
    assert "| PSNR ≥ bicubic + 1 dB | 29.1 vs 28.7 dB (+0.4) | **not met** |  |" in md
    assert "| MS-SSIM ≥ 0.965 | 0.97 | met |  |" in md
    assert "| decode ≤ 2× the baseline's | n/a | not checked | baseline not in this run |" in md
    data = json.loads((tmp_path / "demo.json").read_text())
    assert [g["met"] for g in data["goals"]] == [False, True, None]
    assert data["goals"][1] == {"goal": "MS-SSIM ≥ 0.965", "measured": 0.97, "met": True, "note": ""}


def test_no_goals_no_goals_section(tmp_path):
    assert "## Goals" not in Report("demo", "Demo", tmp_path).write().read_text()


@pytest.mark.parametrize(
    ("kwargs", "command"),
    [
        ({"command": "diffcore bench codec --quick --out /tmp/x"}, "diffcore bench codec --quick --out /tmp/x"),
        ({"quick": True}, "diffcore bench accel-cuda --quick"),
        ({}, "diffcore bench accel-cuda"),
    ],
)
def test_command_is_printed_and_recorded(tmp_path, kwargs, command):
    md = Report("accel_cuda", "T", tmp_path, **kwargs).write().read_text()
    assert f"Produced by `{command}`." in md
    data = json.loads((tmp_path / "accel_cuda.json").read_text())
    assert data["command"] == command and data["quick"] == kwargs.get("quick", False)
    assert ("A quick run" in md) == kwargs.get("quick", False)


def test_bench_cli_passes_the_typed_command(tmp_path, monkeypatch, capsys):
    calls = []

    def fake_run(out_dir: Path, quick: bool = False, command: str | None = None) -> Path:
        calls.append((Path(out_dir), quick, command))
        return Report("fake", "Fake", out_dir, command=command, quick=quick).write()

    monkeypatch.setattr("diffcore.plugins.find_benchmark", lambda name: (None, fake_run))
    assert main(["bench", "fake", "--quick", "--out", str(tmp_path / "a b")]) == 0
    assert calls == [(tmp_path / "a b", True, f"diffcore bench fake --quick --out '{tmp_path / 'a b'}'")]
    assert f"wrote {tmp_path / 'a b' / 'fake.md'}" in capsys.readouterr().out
    monkeypatch.chdir(tmp_path)  # the default --out, docs/results, is relative
    assert main(["bench", "fake"]) == 0
    assert calls[1] == (Path("docs/results"), False, "diffcore bench fake")
    assert "Produced by `diffcore bench fake`." in (tmp_path / "docs/results/fake.md").read_text()
