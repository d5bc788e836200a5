"""Importing any package is lean: no gradio, no CUDA initialisation, no model (a module with weights) built or loaded.

The modules checked are derived from what is installed: every module of every
package that registers a domain (``discover()``), except the Gradio UI modules
(``ui``), which are allowed to import gradio when they are built.
"""

import subprocess
import sys

CHECK = """
import gc, importlib, pkgutil, sys
import torch
from diffcore.plugins import discover

packages = {"diffcore"} | {e.entry_point.module.split(".")[0] for e in discover().values()}
names = []
for pkg in sorted(packages):
    mod = importlib.import_module(pkg)
    names += [pkg] + [m.name for m in pkgutil.walk_packages(mod.__path__, pkg + ".")]
skipped = {n for n in names if n.rsplit(".", 1)[-1] in ("ui", "offline_gradio")}
for n in sorted(set(names) - skipped):
    importlib.import_module(n)
for entry in discover().values():
    entry.load()  # every declaration, without resolving its callables
assert "gradio" not in sys.modules, "gradio was imported"
assert "pygame" not in sys.modules, "pygame (highway-env's renderer) was imported"
assert not torch.cuda.is_initialized(), "CUDA was initialised"
# libraries keep parameter-free singletons (transformers' activation table); a model has weights
models = [type(o).__name__ for o in gc.get_objects() if isinstance(o, torch.nn.Module) and any(True for _ in o.parameters())]
assert not models, f"models were built at import time: {sorted(set(models))}"
print(len(names) - len(skipped), "modules lean")
"""


def test_importing_packages_is_lean():
    out = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith("modules lean") and int(out.stdout.split()[0]) > 50, out.stdout


CLI_CHECK = """
import importlib, importlib.util, sys
from diffcore.plugins import discover

packages = sorted({e.entry_point.module.split(".")[0] for e in discover().values()} - {"diffcore"})
for pkg in packages:
    importlib.import_module(pkg)
    for name in (f"{pkg}.cli", f"{pkg}.errors", f"{pkg}.limits"):
        if importlib.util.find_spec(name) is not None:  # a package may have no limits of its own
            importlib.import_module(name)
heavy = sorted(m for m in ("torch", "diffusers", "transformers", "compressai", "gymnasium") if m in sys.modules)
assert not heavy, f"importing {packages} and their CLIs pulled in {heavy}"
print(" ".join(packages))
"""


def test_packages_and_their_clis_import_without_torch():
    """``import diffcodec`` (and its CLI, errors, limits) must not cost torch: ``--help`` answers in well under 2 s."""
    out = subprocess.run([sys.executable, "-c", CLI_CHECK], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert len(out.stdout.split()) >= 3, out.stdout
