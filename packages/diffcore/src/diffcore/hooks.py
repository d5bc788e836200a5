"""Removing a diffusers hook without breaking the hooks registered after it.

diffusers 0.42's ``HookRegistry.remove_hook`` points the *next* hook's
``forward`` at the removed hook's inner forward. When that next hook works
through ``new_forward`` (it calls ``fn_ref.original_forward`` itself, as
diffusers' FirstBlockCache and our quantizer's timestep hook do), this replaces
its ``new_forward`` by the inner forward, so the hook silently stops running,
and leaves its ``original_forward`` pointing at the removed hook. Layering a
cache and a quantizer and removing the first one applied then corrupts the
model. :func:`remove_hook` removes the hook and re-links the next one properly.
"""

from __future__ import annotations

import torch


def remove_hook(module: torch.nn.Module, name: str) -> None:
    """Remove hook ``name`` from ``module``'s own registry (not its children's); no-op if absent."""
    registry = getattr(module, "_diffusers_hook", None)
    if registry is None or name not in registry.hooks:
        return
    index = registry._hook_order.index(name)
    removed = registry._fn_refs[index]
    inner = removed.original_forward if removed.original_forward is not None else removed.forward
    nxt = registry._fn_refs[index + 1] if index + 1 < len(registry._fn_refs) else None
    nxt_forward = nxt.forward if nxt is not None else None
    registry.remove_hook(name, recurse=False)
    if nxt is not None and nxt.original_forward is not None:
        nxt.forward = nxt_forward  # keep calling the next hook's new_forward …
        nxt.original_forward = inner  # … which now wraps what the removed hook wrapped
