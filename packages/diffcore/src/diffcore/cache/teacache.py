"""TeaCache (Liu et al., CVPR 2025, "Timestep Embedding Tells: It's Time to Cache").

At every model call TeaCache measures how much the first block's
timestep-modulated input changed since the previous call (relative L1,
paper eq. 4: ``δ_t = ‖m_t − m_{t−1}‖₁ / ‖m_{t−1}‖₁``), maps it through a
polynomial fitted to predict the change of the output (eq. 6: ``f(δ)``), and
accumulates. While the sum stays below the threshold ``τ`` (eq. 5) the whole
transformer-block stack is skipped: its output is the input plus the residual
(stack output − stack input) of the last call that computed it. A computed
call resets the sum to 0.

diffusers has no TeaCache (its FirstBlockCache is the dynamic skip it ships),
so this is our own, on diffusers hooks: one hook per block of the model's
``transformer_blocks`` (``BasicTransformerBlock`` with adaLN, as DiT and
PixArt use). Everything a run remembers lives in the session's
:class:`~diffcore.cache.core.CallState`: concurrent runs never share it.
:func:`fit_teacache` fits the polynomial on calibration runs of the model.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from diffusers.hooks import ModelHook
from diffusers.models.attention import BasicTransformerBlock

from diffcore.cache.core import CacheHandle, apply, register_cache
from diffcore.errors import InvalidInputError

#: key of TeaCache's per-session state in ``CallState.extra``
_KEY = "teacache"
#: the adaLN norms whose first output is the modulated input TeaCache watches
_ADA_NORMS = ("ada_norm_zero", "ada_norm", "ada_norm_continuous")


@dataclass(frozen=True)
class TeaCacheConfig:
    """TeaCache settings.

    Args:
        threshold: τ (eq. 5): the stack is skipped while the accumulated
            rescaled change stays below it; 0 computes every call (exact).
        coefficients: the rescaling polynomial ``f`` (eq. 6), highest degree
            first (numpy's ``polyval`` order); ``(1.0, 0.0)`` is the identity.
            Fit it with :func:`fit_teacache`.
        max_skips: at most this many consecutive skipped calls (``None``: no cap).
    """

    threshold: float = 0.1
    coefficients: tuple[float, ...] = (1.0, 0.0)
    max_skips: int | None = None

    def __post_init__(self) -> None:
        t = self.threshold
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t < 0:
            raise InvalidInputError(f"threshold must be a finite float >= 0 (0 = exact), got {t!r}")
        coef = self.coefficients
        if not isinstance(coef, (tuple, list)) or not coef:
            raise InvalidInputError(f"coefficients must be a non-empty tuple of floats (highest degree first), got {coef!r}")
        if not all(isinstance(c, (int, float)) and not isinstance(c, bool) and math.isfinite(c) for c in coef):
            raise InvalidInputError(f"coefficients must be finite floats, got {coef!r}")
        object.__setattr__(self, "coefficients", tuple(float(c) for c in coef))  # lists -> hashable, JSON-able
        m = self.max_skips
        if m is not None and (isinstance(m, bool) or not isinstance(m, int) or m < 1):
            raise InvalidInputError(f"max_skips must be an int >= 1 or None, got {m!r}")

    def rescale(self, delta: float) -> float:
        """``f(δ)``, clipped at 0: a change is never negative (a fitted polynomial can dip below 0)."""
        return max(0.0, float(np.polyval(self.coefficients, delta)))


@dataclass
class _Calibration:
    """Pairs (input change δ, output change) gathered by :func:`fit_teacache`."""

    pairs: list[tuple[float, float]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _rel_l1(now: torch.Tensor, before: torch.Tensor) -> float:
    """Relative L1 change ``‖now − before‖₁ / ‖before‖₁`` (eq. 4)."""
    return float((now - before).abs().mean() / before.abs().mean().clamp_min(1e-12))


def transformer_blocks(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The model's ``transformer_blocks``, checked to be adaLN ``BasicTransformerBlock`` s TeaCache can read."""
    blocks = getattr(model, "transformer_blocks", None)
    if not isinstance(blocks, torch.nn.ModuleList) or len(blocks) == 0:
        raise InvalidInputError(
            f"TeaCache needs a DiT-style model with a `transformer_blocks` ModuleList; {type(model).__name__} has none"
        )
    first = blocks[0]
    if not isinstance(first, BasicTransformerBlock) or getattr(first, "norm_type", None) not in _ADA_NORMS:
        raise InvalidInputError(
            f"TeaCache reads the timestep-modulated input of adaLN BasicTransformerBlocks (DiT, PixArt); "
            f"{type(model).__name__}'s first block is {type(first).__name__} "
            f"(norm {getattr(first, 'norm_type', None)!r}). Use FirstBlockCacheConfig for other transformers."
        )
    return list(blocks)


def _modulated_input(block: BasicTransformerBlock, hidden: torch.Tensor, kwargs: dict[str, Any]) -> torch.Tensor:
    """The first block's adaLN-modulated input ``norm(x)·(1 + scale(t)) + shift(t)``, (B, N, D)."""
    t, labels = kwargs.get("timestep"), kwargs.get("class_labels")
    if block.norm_type == "ada_norm_zero":
        return block.norm1(hidden, t, labels, hidden_dtype=hidden.dtype)[0]
    if block.norm_type == "ada_norm":
        return block.norm1(hidden, t)
    return block.norm1(hidden, kwargs["added_cond_kwargs"]["pooled_text_emb"])


class _TeaCacheBlockHook(ModelHook):
    """On every transformer block; the first decides, the last records the stack residual.

    ``calibration`` (fitting only) makes every call compute and records
    (input change, stack-output change) pairs.
    """

    def __init__(
        self,
        handle: CacheHandle,
        config: TeaCacheConfig,
        name: str,
        *,
        first: bool,
        last: bool,
        block_names: frozenset[str],
        calibration: _Calibration | None = None,
    ) -> None:
        super().__init__()
        self.handle, self.config, self.name = handle, config, name
        self.first, self.last, self.block_names, self.calibration = first, last, block_names, calibration

    def new_forward(self, module: torch.nn.Module, *args: Any, **kwargs: Any) -> Any:
        hidden = args[0] if args else kwargs["hidden_states"]  # (B, N, D)
        st = self.handle.state()
        tc = st.extra.setdefault(_KEY, {"acc": 0.0, "skips": 0, "skip": False})
        if self.first:
            self._decide(st, tc, module, hidden, kwargs)
        if tc["skip"]:
            # the stack's output = its input + the residual of the last computed call
            return hidden + tc["residual"] if self.first else hidden
        if self.first:
            tc["stack_in"] = hidden
        out = self.fn_ref.original_forward(*args, **kwargs)  # (B, N, D)
        if self.last:
            tc["residual"] = out - tc.pop("stack_in")
            if self.calibration is not None:
                prev_out, tc["out"] = tc.get("out"), out
                if prev_out is not None and tc.get("delta") is not None:
                    with self.calibration.lock:
                        self.calibration.pairs.append((tc["delta"], _rel_l1(out, prev_out)))
        return out

    def _decide(self, st: Any, tc: dict, module: torch.nn.Module, hidden: torch.Tensor, kwargs: dict) -> None:
        cfg = self.config
        with torch.no_grad():
            mod = _modulated_input(module, hidden, kwargs)  # (B, N, D)
        prev, tc["mod"] = tc.get("mod"), mod
        tc["delta"] = None if prev is None or prev.shape != mod.shape else _rel_l1(mod, prev)
        residual = tc.get("residual")
        last_call = st.num_calls is not None and st.calls == st.num_calls - 1
        can_skip = (
            self.calibration is None
            and cfg.threshold > 0
            and tc["delta"] is not None
            and residual is not None
            and residual.shape == hidden.shape
            and not last_call  # TeaCache always computes the final step
            and (cfg.max_skips is None or tc["skips"] < cfg.max_skips)
        )
        if can_skip:
            tc["acc"] += cfg.rescale(tc["delta"])
        tc["skip"] = can_skip and tc["acc"] < cfg.threshold
        if tc["skip"]:
            tc["skips"] += 1
        else:
            tc["acc"], tc["skips"] = 0.0, 0
        st.log.append(self.block_names if tc["skip"] else frozenset())
        st.calls += 1


def _attach(model: torch.nn.Module, config: TeaCacheConfig, handle: CacheHandle, calibration: _Calibration | None) -> None:
    blocks = transformer_blocks(model)
    names = [f"transformer_blocks.{i}" for i in range(len(blocks))]
    every = frozenset(names)
    for i, (name, block) in enumerate(zip(names, blocks, strict=True)):
        hook = _TeaCacheBlockHook(
            handle, config, name, first=i == 0, last=i == len(blocks) - 1, block_names=every, calibration=calibration
        )
        handle.add_hook(block, hook)


@register_cache(TeaCacheConfig)
def _apply(model: torch.nn.Module, config: TeaCacheConfig, handle: CacheHandle) -> None:
    _attach(model, config, handle, None)


@dataclass(frozen=True)
class _CalibrationConfig:
    """Full compute that records (δ, output change) pairs; only :func:`fit_teacache` applies it."""

    calibration: _Calibration


@register_cache(_CalibrationConfig)
def _apply_calibration(model: torch.nn.Module, config: _CalibrationConfig, handle: CacheHandle) -> None:
    _attach(model, TeaCacheConfig(threshold=0.0), handle, config.calibration)


def calibration_pairs(model: torch.nn.Module, run_fn: Callable[[torch.nn.Module], Any]) -> np.ndarray:
    """(input change δ, stack-output change) per consecutive pair of calls in ``run_fn``'s runs, (P, 2).

    ``run_fn(model)`` samples with the model (every call is computed: the
    calibration cache never skips), e.g.
    ``lambda m: sample(m, "ddim", noise, steps=25, progress=False)``; each
    sampling run is one session, and pairs never straddle two runs.
    """
    cal = _Calibration()
    with apply(model, _CalibrationConfig(cal)):
        run_fn(model)
    if len(cal.pairs) < 2:
        raise InvalidInputError(
            f"calibration gathered {len(cal.pairs)} (input, output) change pairs; run_fn must sample with the model "
            "through diffcore.sampling.sample (or a cache session) for at least 3 model calls"
        )
    return np.asarray(cal.pairs, dtype=np.float64)


def fit_polynomial(pairs: np.ndarray, degree: int = 4) -> tuple[float, ...]:
    """Least-squares polynomial ``f`` with ``f(δ_in) ≈ δ_out`` (eq. 6), highest degree first."""
    if isinstance(degree, bool) or not isinstance(degree, int) or degree < 1:
        raise InvalidInputError(f"degree must be an int >= 1, got {degree!r}")
    if len(pairs) <= degree:
        raise InvalidInputError(f"a degree-{degree} fit needs more than {degree} pairs, got {len(pairs)}")
    return tuple(float(c) for c in np.polyfit(pairs[:, 0], pairs[:, 1], degree))


def fit_teacache(model: torch.nn.Module, run_fn: Callable[[torch.nn.Module], Any], degree: int = 4) -> tuple[float, ...]:
    """Fit TeaCache's rescaling polynomial (eq. 6) on calibration runs of ``model``.

    Runs ``run_fn(model)`` with full compute, records per consecutive pair of
    calls the relative L1 change of the first block's modulated input and of
    the transformer stack's output, and fits a degree-``degree`` polynomial
    mapping the first to the second.

    Returns:
        The coefficients, highest degree first: pass them to
        ``TeaCacheConfig(threshold, coefficients)``.
    """
    return fit_polynomial(calibration_pairs(model, run_fn), degree)


def polynomial_error(coefficients: Sequence[float], pairs: np.ndarray) -> float:
    """Mean squared error of ``f(δ_in)`` against ``δ_out`` on ``pairs`` (P, 2)."""
    return float(np.mean((np.polyval(coefficients, pairs[:, 0]) - pairs[:, 1]) ** 2))
