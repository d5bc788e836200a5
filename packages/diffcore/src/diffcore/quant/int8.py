"""Real int8 on CPU: ``nn.Linear`` layers through PyTorch's dynamic quantization, sensitive ones left float.

``torch.ao.quantization.quantize_dynamic`` (Jacob et al. 2018; fbgemm/x86
kernels) stores a Linear's weight as int8 per tensor and quantizes its input on
the fly per call, so the matmul runs in int8 with no calibration. Some layers
lose too much this way (wide-range inputs, outlier channels: LLM.int8(),
Dettmers et al. 2022), so each Linear is quantized alone first and its effect
on a probe output measured; layers above ``max_rel_err`` stay float, and if
the survivors together still exceed it the worst are put back one at a time.

``torch.ao.quantization`` is deprecated in favour of torchao, which this
workspace does not depend on; it still works, and its deprecation warnings
are silenced only around our calls.
"""

from __future__ import annotations

import contextlib
import copy
import statistics
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from diffcore.errors import InvalidInputError

#: ``probe(model) -> output``: runs the model on fixed inputs
Probe = Callable[[torch.nn.Module], torch.Tensor]


@contextlib.contextmanager
def _quiet_ao() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"torch\.ao\.quantization is deprecated")
        warnings.filterwarnings("ignore", message=r"torch\.quantize_per_tensor.*deprecated")
        yield


def _int8_linear(linear: torch.nn.Linear) -> torch.nn.Module:
    """A dynamic-int8 copy of one ``nn.Linear``."""
    with _quiet_ao():
        wrapped = torch.ao.quantization.quantize_dynamic(
            torch.nn.Sequential(copy.deepcopy(linear)), {torch.nn.Linear}, dtype=torch.qint8
        )
    return wrapped[0]


def _rel_err(y: torch.Tensor, ref: torch.Tensor) -> float:
    return float((y.float() - ref.float()).norm() / ref.float().norm().clamp_min(1e-12))


@torch.no_grad()
def _run(probe: Probe, model: torch.nn.Module) -> torch.Tensor:
    with _quiet_ao():
        out = probe(model)
    if not isinstance(out, torch.Tensor):
        raise InvalidInputError(f"probe(model) must return a tensor (e.g. model(x, t).sample), got {type(out).__name__}")
    return out


@dataclass(frozen=True)
class Int8Report:
    """What :func:`int8_dynamic` did, and the error it measured on the probe."""

    int8: tuple[str, ...]  # layers now int8
    kept_float: tuple[str, ...]  # layers left float (too sensitive)
    layer_errors: dict[str, float]  # probe relative error with that layer alone int8
    rel_err: float  # probe relative error of the returned model
    max_rel_err: float


def int8_dynamic(model: torch.nn.Module, probe: Probe, *, max_rel_err: float = 0.02) -> tuple[torch.nn.Module, Int8Report]:
    """An int8 copy of ``model`` (CPU): every ``nn.Linear`` whose error on ``probe`` stays within ``max_rel_err``.

    Args:
        model: a float32 model on CPU; it is not modified.
        probe: ``probe(model) -> tensor`` on fixed inputs, e.g. ``lambda m: m(x, t).sample``.
        max_rel_err: the largest relative error ``‖y − y_float‖ / ‖y_float‖`` of the
            probe output allowed, per layer and for the whole model. Default 0.02.

    Returns:
        ``(int8_model, report)``.
    """
    if not isinstance(model, torch.nn.Module):
        raise InvalidInputError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not callable(probe):
        raise InvalidInputError("probe must be a function probe(model) -> output tensor on fixed inputs")
    if isinstance(max_rel_err, bool) or not isinstance(max_rel_err, (int, float)) or max_rel_err <= 0:
        raise InvalidInputError(f"max_rel_err must be a positive number (e.g. 0.02 = 2 %), got {max_rel_err!r}")
    params = list(model.parameters())
    if any(p.device.type != "cpu" or p.dtype != torch.float32 for p in params):
        raise InvalidInputError("int8_dynamic runs on CPU in float32: pass model.to('cpu', torch.float32)")
    work = copy.deepcopy(model).eval()
    linears = {name: m for name, m in work.named_modules() if type(m) is torch.nn.Linear}
    if not linears:
        raise InvalidInputError(f"{type(model).__name__} has no nn.Linear layers for dynamic int8")
    ref = _run(probe, work)

    errors: dict[str, float] = {}
    for name, linear in linears.items():
        work.set_submodule(name, _int8_linear(linear))
        errors[name] = _rel_err(_run(probe, work), ref)
        work.set_submodule(name, linear)
    chosen = sorted((n for n, e in errors.items() if e <= max_rel_err), key=errors.__getitem__)
    for name in chosen:
        work.set_submodule(name, _int8_linear(linears[name]))
    err = _rel_err(_run(probe, work), ref)
    while chosen and err > max_rel_err:  # errors compound: put the worst back until the total fits
        worst = chosen.pop()
        work.set_submodule(worst, linears[worst])
        err = _rel_err(_run(probe, work), ref)
    report = Int8Report(
        int8=tuple(n for n in linears if n in chosen),
        kept_float=tuple(n for n in linears if n not in chosen),
        layer_errors=errors,
        rel_err=err,
        max_rel_err=float(max_rel_err),
    )
    return work, report


@torch.no_grad()
def paired_speedup(reference: torch.nn.Module, candidate: torch.nn.Module, probe: Probe, *, repeats: int = 9) -> float:
    """Median over interleaved repeats of ``time(reference) / time(candidate)`` on ``probe`` (> 1: candidate faster)."""
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise InvalidInputError(f"repeats must be a positive int, got {repeats!r}")
    _run(probe, reference), _run(probe, candidate)  # warm-up
    ratios = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        _run(probe, reference)
        t1 = time.perf_counter()
        _run(probe, candidate)
        t2 = time.perf_counter()
        ratios.append((t1 - t0) / max(t2 - t1, 1e-9))
    return statistics.median(ratios)
