"""``quantize``: post-training fake quantization of a diffusers model in one call.

>>> handle = quantize(unet, QuantConfig(weight_bits=8, act_bits=8, timestep_groups=4), calibrate=run_some_sampling)
>>> x0 = sample(unet, "ddim", noise, steps=20)    # runs quantized
>>> handle.save("unet-w8a8"); handle.remove()       # bit-exact float model again
>>> handle = load_quantized(unet, "unet-w8a8")      # same quantization, no calibration

Weights of every ``nn.Conv2d`` / ``nn.Linear`` are replaced by their fake-quantized
copies (the originals are kept and put back by :meth:`QuantHandle.remove`);
layer inputs are fake-quantized by diffusers ``ModelHook``s, with scales chosen
per timestep group from activations recorded while ``calibrate()`` runs.
``calibrate`` is the caller's: a few full sampling loops (PTQ4DM: calibrate on
the model's own denoising states, see :func:`~diffcore.quant.calibset.calibration_timesteps`),
possibly with a feature cache on — calibrating on cached trajectories is how
cache and quantization are made to work together (CacheQuant, Liu et al. 2025:
calibrating without the cache, then caching, compounds both errors).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import torch
from diffusers.hooks import HookRegistry, ModelHook

from diffcore.checkpoint import model_hash
from diffcore.errors import CheckpointError, InvalidInputError
from diffcore.hooks import remove_hook
from diffcore.quant.calibrators import RangeObserver
from diffcore.quant.config import QuantConfig
from diffcore.quant.fake import ActQuant, LayerQuant, quantize_weight
from diffcore.quant.io import read_state, write_state
from diffcore.quant.split import concat_splits
from diffcore.quant.timestep import CURRENT, TIMESTEP_HOOK, TimestepHook

LAYER_HOOK = "diffcore_quant"
QUANTIZABLE = (torch.nn.Conv2d, torch.nn.Linear)


def _group() -> tuple[int, bool]:
    """``(timestep group, collect)`` of the model call in progress; group 0 outside a hooked model."""
    state = CURRENT.get()
    return (0, True) if state is None else (state.group, state.collect)


class _ObserveHook(ModelHook):
    """Calibration: records a layer's input per timestep group (and per concat segment)."""

    def __init__(self, observers: list[list[RangeObserver]], split: int | None) -> None:
        super().__init__()
        self.observers = observers  # [group][segment]
        self.split = split

    def pre_forward(self, module: torch.nn.Module, *args: Any, **kwargs: Any) -> tuple[tuple, dict]:
        group, collect = _group()
        if args and collect:
            x = args[0]  # (B, C, H, W) or (…, C)
            if self.split is None:
                self.observers[group][0].observe(x)
            else:
                self.observers[group][0].observe(x[:, : self.split])
                self.observers[group][1].observe(x[:, self.split :])
        return args, kwargs


class _ActQuantHook(ModelHook):
    """Fake-quantizes a layer's input with its timestep group's scales."""

    def __init__(self, act: ActQuant) -> None:
        super().__init__()
        self.act = act

    def pre_forward(self, module: torch.nn.Module, *args: Any, **kwargs: Any) -> tuple[tuple, dict]:
        if not args:
            return args, kwargs
        return (self.act(args[0], _group()[0]), *args[1:]), kwargs


def _registry(module: torch.nn.Module) -> HookRegistry:
    return HookRegistry.check_if_exists_or_initialize(module)


def is_quantized(model: torch.nn.Module) -> bool:
    """Whether ``quantize`` / ``load_quantized`` is applied to ``model`` now."""
    registry = getattr(model, "_diffusers_hook", None)
    return registry is not None and registry.get_hook(TIMESTEP_HOOK) is not None


class QuantHandle:
    """Quantization applied to a model: undo it, save it, read its per-layer report.

    Use as a context manager to remove it on exit.
    """

    def __init__(self, model: torch.nn.Module, config: QuantConfig, layers: dict[str, LayerQuant], float_hash: str) -> None:
        self.model = model
        self.config = config
        self.layers = layers  # {module name: LayerQuant}
        self.model_hash = float_hash  # of the float model
        self._originals: dict[str, torch.nn.Parameter] = {}

    @property
    def active(self) -> bool:
        return bool(self._originals)

    def _attach_weights(self) -> None:
        for name, layer in self.layers.items():
            module = self.model.get_submodule(name)
            original = module.weight
            module.weight = torch.nn.Parameter(layer.weight.dequantize(original.dtype).to(original.device), requires_grad=False)
            self._originals[name] = original

    def _attach_acts(self) -> None:
        for name, layer in self.layers.items():
            if layer.act is not None:
                _registry(self.model.get_submodule(name)).register_hook(_ActQuantHook(layer.act), LAYER_HOOK)

    def remove(self) -> None:
        """Put the float weights back and remove every hook: the model is bit-exact its float self again."""
        for name, original in self._originals.items():
            module = self.model.get_submodule(name)
            module.weight = original
            remove_hook(module, LAYER_HOOK)
        self._originals.clear()
        remove_hook(self.model, TIMESTEP_HOOK)

    def __enter__(self) -> QuantHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def report(self) -> dict[str, dict]:
        """Per layer: kind, weight shape and bits, activation bits / groups / split, weight relative error."""
        return {name: layer.info() for name, layer in self.layers.items()}

    def save(self, path: str | Path) -> Path:
        """Write ``quant.safetensors`` + ``quant.json`` into folder ``path`` (see :mod:`diffcore.quant.io`)."""
        return write_state(
            path, config=self.config, layers=self.layers, model_class=type(self.model).__name__, model_hash=self.model_hash
        )

    def __repr__(self) -> str:
        n_act = sum(layer.act is not None for layer in self.layers.values())
        state = "active" if self.active else "removed"
        return f"QuantHandle({self.config.name}, {len(self.layers)} layers, {n_act} with quantized inputs, {state})"


def _check_model(model: Any) -> None:
    if not isinstance(model, torch.nn.Module):
        raise InvalidInputError(f"model must be a torch.nn.Module (a diffusers model), got {type(model).__name__}")
    if is_quantized(model):
        raise InvalidInputError("model is already quantized; call handle.remove() first (or keep using that handle)")


def _targets(model: torch.nn.Module, keep_float: tuple[str, ...]) -> dict[str, torch.nn.Module]:
    return {
        name: m
        for name, m in model.named_modules()
        if isinstance(m, QUANTIZABLE) and not any(fnmatch.fnmatchcase(name, pat) for pat in keep_float)
    }


def _nearest_seen(seen: list[int], g: int) -> int:
    return min(seen, key=lambda s: (abs(s - g), s))


def quantize(
    model: torch.nn.Module,
    config: QuantConfig | None = None,
    *,
    calibrate: Callable[[], Any] | None = None,
    collect_timesteps: Collection[int] | None = None,
) -> QuantHandle:
    """Fake-quantize ``model``'s ``nn.Conv2d`` and ``nn.Linear`` layers in place (PTQ, Q-Diffusion style).

    Args:
        model: any diffusers denoiser (``UNet2DModel``, ``UNet2DConditionModel``, DiT
            …) called as ``model(x, timestep, …)``; any ``nn.Module`` with
            ``timestep_groups=1``.
        config: what to quantize and how (default ``QuantConfig()``: W8A8, MSE calibration).
        calibrate: ``calibrate()`` runs the model forward passes whose layer inputs
            set the activation scales (e.g. a few sampling loops, possibly with a
            feature cache on). Required unless ``config.act_bits`` is None;
            it runs under ``torch.no_grad()`` with the weights already quantized,
            so activations are those the quantized model will see.
        collect_timesteps: record only calls at these (rounded) timesteps, e.g.
            :func:`~diffcore.quant.calibset.calibration_timesteps`; None records every call.

    Returns:
        A :class:`QuantHandle`: ``remove()``, ``save(path)``, ``report()``; a context manager.
    """
    config = QuantConfig() if config is None else config
    if not isinstance(config, QuantConfig):
        raise InvalidInputError(f"config must be a QuantConfig, got {type(config).__name__}")
    _check_model(model)
    quant_inputs = config.act_bits is not None
    if quant_inputs and not callable(calibrate):
        raise InvalidInputError(
            f"{config.name} quantizes activations and needs calibrate=fn, a function running the model "
            "(e.g. a few sampling loops); for weight-only quantization pass QuantConfig(act_bits=None)"
        )
    targets = _targets(model, config.keep_float)
    if not targets:
        raise InvalidInputError(
            f"{type(model).__name__} has no nn.Conv2d / nn.Linear left to quantize (keep_float={config.keep_float})"
        )
    float_hash = model_hash(model)
    splits = concat_splits(model) if config.split_concat else {}

    layers: dict[str, LayerQuant] = {}
    for name, m in targets.items():
        qw = quantize_weight(m.weight, bits=config.weight_bits, method=config.calibrator, percentile=config.percentile)
        err = float((qw.dequantize() - m.weight.detach().float()).norm() / m.weight.detach().float().norm().clamp_min(1e-12))
        layers[name] = LayerQuant(
            kind="Conv2d" if isinstance(m, torch.nn.Conv2d) else "Linear", weight=qw, act=None, weight_rel_err=err
        )
    handle = QuantHandle(model, config, layers, float_hash)
    timestep_hook = TimestepHook(config.timestep_groups, config.num_train_timesteps, collect_timesteps)
    handle._attach_weights()
    _registry(model).register_hook(timestep_hook, TIMESTEP_HOOK)
    if not quant_inputs:
        return handle

    try:
        observers = {
            name: [[RangeObserver(seed=g) for _ in range(2 if name in splits else 1)] for g in range(config.timestep_groups)]
            for name in targets
        }
        for name, obs in observers.items():
            _registry(targets[name]).register_hook(_ObserveHook(obs, splits.get(name)), LAYER_HOOK)
        with torch.no_grad():
            calibrate()
        for name in targets:
            remove_hook(targets[name], LAYER_HOOK)
    except BaseException:
        handle.remove()
        raise
    timestep_hook.collect = None

    for name, obs in observers.items():
        seen = [g for g, segments in enumerate(obs) if all(o.seen for o in segments)]
        if not seen:
            continue  # never ran during calibration: its input stays float (report says act_bits None)
        params = [
            [
                o.qparams(method=config.calibrator, bits=config.act_bits, percentile=config.percentile)
                for o in obs[_nearest_seen(seen, g)]
            ]
            for g in range(config.timestep_groups)
        ]  # [group][segment] -> (scale, zero_point)
        act = ActQuant(
            scale=torch.tensor([[s for s, _ in row] for row in params], dtype=torch.float32),
            zero_point=torch.tensor([[z for _, z in row] for row in params], dtype=torch.int32),
            bits=config.act_bits,
            split=splits.get(name),
        )
        layer = layers[name]
        layers[name] = LayerQuant(kind=layer.kind, weight=layer.weight, act=act, weight_rel_err=layer.weight_rel_err)
    if all(layer.act is None for layer in layers.values()):
        handle.remove()
        raise InvalidInputError(
            "calibrate() recorded no activations: it must call the model (e.g. sample(model, …)), "
            "and collect_timesteps must include timesteps it runs"
        )
    handle._attach_acts()
    return handle


def load_quantized(model: torch.nn.Module, path: str | Path) -> QuantHandle:
    """Re-apply quantized state saved by :meth:`QuantHandle.save` to the float ``model``, without calibrating.

    Refused with a :class:`~diffcore.errors.CheckpointError` when the state was
    made for another model (class, :func:`~diffcore.checkpoint.model_hash` or layer shapes differ).
    """
    _check_model(model)
    config, layers, meta = read_state(path)
    if meta["model_class"] != type(model).__name__:
        raise CheckpointError(f"quantized state at {path} is for a {meta['model_class']}, not a {type(model).__name__}")
    if meta["model_hash"] != model_hash(model):
        raise CheckpointError(
            f"quantized state at {path} was calibrated for other weights (model hash {meta['model_hash'][:12]}… ≠ "
            f"{model_hash(model)[:12]}…); load it onto the model it was made from, or quantize this one with quantize(…)"
        )
    modules = dict(model.named_modules())
    for name, layer in layers.items():
        m = modules.get(name)
        cls = torch.nn.Conv2d if layer.kind == "Conv2d" else torch.nn.Linear
        if not isinstance(m, cls) or tuple(m.weight.shape) != tuple(layer.weight.q.shape):
            raise CheckpointError(f"quantized state at {path} names layer {name} ({layer.kind}), which this model lacks")
    handle = QuantHandle(model, config, layers, meta["model_hash"])
    handle._attach_weights()
    _registry(model).register_hook(TimestepHook(config.timestep_groups, config.num_train_timesteps), TIMESTEP_HOOK)
    handle._attach_acts()
    return handle
