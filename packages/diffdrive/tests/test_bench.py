import json

import pytest


@pytest.mark.slow
def test_quick_bench_writes_the_report(tmp_path):
    from diffdrive.bench import run

    md = run(tmp_path, quick=True, data_dir=tmp_path / "data")
    text = md.read_text()
    for section in ("Closed loop", "Open loop", "Planning latency", "Goals"):
        assert f"## {section}" in text
    data = json.loads((tmp_path / "drive.json").read_text())
    lat = {(r["planner"], r["batch"]): r for r in data["results"]["Planning latency (side by side)"]}
    # 2 denoising steps against 20: the FLOP count is what the step count says, whatever the machine's timing
    assert lat[("DiffusionDrive (2 steps)", 1)]["MFLOPs"] < 0.2 * lat[("vanilla diffusion (20 steps)", 1)]["MFLOPs"]
    for name in ("closed_loop", "latency", "candidates"):
        assert (tmp_path / f"drive_{name}.png").stat().st_size > 1000
