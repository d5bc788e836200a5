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


@pytest.mark.parametrize(("collision", "progress", "speedup", "met"), [(0.1, 0.95, 7.0, True), (0.3, 0.85, 4.0, False)])
def test_goals_go_into_the_report(tmp_path, collision, progress, speedup, met):
    from diffcore.bench.report import Report
    from diffdrive.bench import BASELINE, SCENARIOS, check_goals

    dd = "DiffusionDrive (2 steps)"
    cl = [{"scenario": s, "driver": dd, "collision rate": collision, "progress vs expert": progress} for s in SCENARIOS]
    cl += [{"scenario": s, "driver": BASELINE, "collision rate": 0.2, "progress vs expert": 0.9} for s in SCENARIOS]
    ol = [{"planner": dd, "mode diversity (m)": 2.0}, {"planner": "regression", "mode diversity (m)": 0.0}]
    report = Report("drive", "Drive", tmp_path)
    check_goals(report, cl, ol, [{"planner": dd, "batch": 1, "speed-up": speedup}])
    assert [g.met for g in report.goals] == [met] * (2 * len(SCENARIOS) + 1) + [True]
    assert report.goals[0].measured == f"{collision:.3f} vs 0.200"
    assert f"| planning latency at batch 1 ≥ 5× lower than vanilla 20-step | {speedup:.1f}× lower |" in report.write().read_text()
