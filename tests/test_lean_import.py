"""Importing any package is lean: no gradio, no CUDA initialisation, no model loaded."""

import subprocess
import sys

CHECK = """
import sys, torch
import diffcore, diffcore.sampling, diffcore.train, diffcore.data, diffcore.metrics
import diffcore.bench, diffcore.checkpoint, diffcore.plugins, diffcore.zoo, diffcore.cli, diffcore.hub
import diffcore.cache, diffcore.cache.search, diffcore.quant, diffcore.hooks, diffcore.lab.variants
import diffcodec, diffcodec.bench, diffcodec.cli, diffcodec.codec, diffcodec.domain, diffcodec.train
import diffdrive, diffdrive.bench, diffdrive.cli, diffdrive.closed_loop, diffdrive.domain, diffdrive.planner, diffdrive.train
import difftext, difftext.bench, difftext.cli, difftext.domain, difftext.evaluate, difftext.lm, difftext.train
from diffcore.plugins import discover
for entry in discover().values():
    entry.load()  # every domain object, without building its demo
assert "gradio" not in sys.modules, "gradio was imported"
assert not diffcodec.codec._cache, "a codec was loaded"
assert diffdrive.planner._load.cache_info().currsize == 0, "a planner was loaded"
assert difftext.lm._load.cache_info().currsize == 0, "a text model was loaded"
assert "pygame" not in sys.modules, "pygame (highway-env's renderer) was imported"
assert not torch.cuda.is_initialized(), "CUDA was initialised"
print("lean")
"""


def test_importing_packages_is_lean():
    out = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "lean"
