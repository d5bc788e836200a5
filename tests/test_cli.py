"""The ``diffcore`` command."""

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from diffcore.cli import main


def test_list_shows_prior(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("prior") and "benchmarks: prior" in out


def test_unknown_benchmark_is_a_clear_error(capsys):
    assert main(["bench", "nope"]) == 2
    assert "no benchmark 'nope'; available: prior" in capsys.readouterr().err


def test_console_scripts_installed():
    out = subprocess.run([sys.executable, "-m", "diffcore.cli", "list"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "prior" in out.stdout


@pytest.mark.parametrize("argv", [["--port", "99999"], ["--port", "0"], ["--port", "http"]])
def test_bad_ports_are_refused_at_once(argv):
    """Before, ``diffsuite --port 99999`` built every demo (~40 s) and then printed a raw traceback."""
    for command in (["diffsuite"], ["diffcore", "serve"]):
        t = time.perf_counter()
        out = _run_script(command + argv)
        assert out.returncode == 2 and "error: argument --port" in out.stderr and "Traceback" not in out.stderr
        assert time.perf_counter() - t < 10


def test_a_port_in_use_is_one_line_before_any_demo_is_built():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        t = time.perf_counter()
        out = _run_script(["diffsuite", "--port", str(port)])
    assert (
        out.returncode == 2
        and out.stderr == f"diffsuite: error: 127.0.0.1:{port} is already in use: stop what runs there or pick another --port\n"
    )
    assert time.perf_counter() - t < 10


def _run_script(argv: list[str]) -> subprocess.CompletedProcess:
    """A console script of this environment, as a user runs it."""
    exe = Path(sys.executable).with_name(argv[0])
    return subprocess.run([str(exe), *argv[1:]], capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_quick_prior_benchmark_writes_report(tmp_path):
    assert main(["bench", "prior", "--quick", "--out", str(tmp_path)]) == 0
    md = (tmp_path / "prior.md").read_text()
    assert "Autoencoder reconstruction" in md and "Machine:" in md
    assert (tmp_path / "prior.json").exists()
    assert (tmp_path / "prior_denoiser.png").stat().st_size > 1000
    assert (tmp_path / "prior_samples.png").stat().st_size > 1000


@pytest.mark.slow
def test_quick_accel_benchmark_writes_report(tmp_path):
    """Every row of the acceleration benchmark runs; DeepCache ours vs the PyPI package agree in the report."""
    import json

    assert main(["bench", "accel", "--quick", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "accel.json").read_text())["results"]
    ddim = next(rows for title, rows in data.items() if title.startswith("tinysd UNet, ddim"))
    by_name = {r["variant"]: r for r in ddim}
    for n in (2, 3, 5):
        ours, peer = by_name[f"DeepCache N={n} (ours)"], by_name[f"DeepCache N={n} (PyPI DeepCache)"]
        assert ours["latent rel. L2"] == peer["latent rel. L2"] > 0
    assert by_name["full compute"]["latent rel. L2"] == 0
    dit = next(rows for title, rows in data.items() if title.startswith("tinydit"))
    assert {"FirstBlockCache(0.05)", "TeaCache(0.05)"} <= {r["variant"] for r in dit}
    assert (tmp_path / "accel_pareto.png").stat().st_size > 1000
    assert (tmp_path / "accel_search.png").stat().st_size > 1000
